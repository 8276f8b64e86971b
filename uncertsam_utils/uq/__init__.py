"""Uncertainty methods, selected by name: ``make_method(name, **hyperparameters)``.

Each method is a ``UQMethod`` subclass in its own module (the Laplace methods in the ``laplace``
package), listed once in ``METHODS`` below (the registry of ``registry.py``);
hyperparameters are explicit keyword arguments whose defaults are the paper's.
"""

from __future__ import annotations

from .base import UQMethod, UQResult, image_generator
from .baseline import Baseline
from .laplace import LaplaceExact, LaplacePaper, LaplaceUntempered
from .combined import ProductCombination, RankMeanCombination
from .prompt_perturbation import PromptPerturbation
from .registry import METHODS, make_method
from .temperature_scaling import TemperatureScaledBaseline
from .tta import TestTimeAugmentation
from .varnet import VarianceNetwork

METHODS.update({cls.name: cls for cls in (Baseline, TestTimeAugmentation, PromptPerturbation, VarianceNetwork)})
METHODS.update({cls.name: cls for cls in (RankMeanCombination, ProductCombination)})  # combinations of the above

METHODS.update({cls.name: cls for cls in (LaplaceExact, LaplacePaper)})  # last-layer Laplace (issue 6)
UQ_METHOD_NAMES = tuple(METHODS)  # the uncertainty methods proper (what `bench uq` times by default)
# References that cost what laplace and baseline cost: another posterior, the baseline's logits scaled
METHODS.update({cls.name: cls for cls in (LaplaceUntempered, TemperatureScaledBaseline)})

from ..refine.methods import REFINEMENT_METHODS  # noqa: E402  (they implement this package's interface)

METHODS.update({cls.name: cls for cls in REFINEMENT_METHODS})  # Table 1's refinement variants (refine/)
REFINEMENT_METHOD_NAMES = tuple(cls.name for cls in REFINEMENT_METHODS)


__all__ = ["METHODS", "REFINEMENT_METHOD_NAMES", "UQ_METHOD_NAMES", "UQMethod", "UQResult", "image_generator", "make_method"]
