"""The last-layer Laplace approximation of SAM's mask decoder, laid out like laplace-torch itself.

The way in is a method (``method.py``): ``LaplaceExact`` (``laplace``, the tempered posterior),
``LaplaceUntempered`` (``laplace-untempered``) and ``LaplacePaper`` (``laplace-paper``), built by name through ``uq.make_method`` with a fitted posterior. Behind them,
in the order a posterior is made and used:

* ``curvature.py``: the closed-form GGN of the treated layer, a laplace-torch curvature backend;
* ``structures.py``: laplace-torch's diag / kron / full posteriors, subclassed for SAM's per-pixel
  output (one base, laplace-torch's, and the structures as subclasses);
* ``features.py``: the fitting data, one item of treated-layer features per prompt;
* ``fitting.py``: the recipes (``tempered``, ``untempered``, ``paper``), the fit and the prior-precision search;
* ``derive.py``: the untempered posterior from the tempered one's curvature (or back), no second pass;
* ``tempering.py``: the tempered recipe's likelihood temperature chosen on fit/val by held-out
  predictive NLL (and the logit scale of the ``baseline-ts`` reference, by the same criterion);
* ``posterior.py``: ``LastLayerPosterior``, the fitted posterior, its safety checks and its file;
* ``predictive.py``: the per-pixel predictive, closed forms and the paper's Monte Carlo.

Every public name of these modules is importable from this package. laplace-torch takes seconds to
import, and only curvature, structures, posterior and fitting need it, so their names are loaded on
first use (``uq`` imports this package for the methods alone).
"""

from __future__ import annotations

import importlib

from .features import (
    CACHED_FIRST_ITEMS,
    FULL_BATCH,
    OBJECT_MODES,
    FitImage,
    PromptFeatures,
    cached_features,
    concatenate_items,
    feature_loader,
    synthetic_images,
)
from .method import MAPS, LaplaceExact, LaplacePaper, LaplaceUntempered, resolve_posterior
from .predictive import (
    LINKS,
    PAPER_CLIP_EPS,
    entropy_from_probabilities,
    expected_entropy,
    hyper_output_cholesky,
    mc_maps,
    mean_probability,
    pixel_logit_variance,
    predictive_maps,
    probability_std,
)

_LAZY = {  # name -> module that imports laplace-torch
    **dict.fromkeys(("ClosedFormGGN", "PIXEL_LIKELIHOODS", "full_ggn", "hyper_jacobians", "laplace_order",
                     "output_factors"), "curvature"),
    **dict.fromkeys(("HyperHead", "LAPLACE_CLASSES", "STRUCTURES", "SegDiagLaplace", "SegFullLaplace", "SegKronLaplace",
                     "make_laplace", "single_threaded"), "structures"),
    **dict.fromkeys(("FORMAT", "FORMAT_VERSION", "LastLayerPosterior", "PosteriorMismatchError", "model_identity"),
                    "posterior"),
    **dict.fromkeys(("MARGLIK_GRID", "PRIOR_METHODS", "RECIPES", "RECIPE_ALIASES", "Recipe", "benchmark_posterior", "fit_posterior",
                     "fit_seconds_per_image", "get_recipe", "marglik_curve", "marglik_search", "optimize_prior"),
                    "fitting"),
    "derive": "derive",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(
    ["CACHED_FIRST_ITEMS", "FULL_BATCH", "OBJECT_MODES", "FitImage", "PromptFeatures", "cached_features",
     "concatenate_items", "feature_loader", "synthetic_images", "MAPS", "LaplaceExact", "LaplacePaper",
     "LaplaceUntempered",
     "resolve_posterior", "LINKS", "PAPER_CLIP_EPS", "entropy_from_probabilities", "expected_entropy",
     "hyper_output_cholesky", "mc_maps", "mean_probability", "pixel_logit_variance", "predictive_maps",
     "probability_std"] + list(_LAZY))
