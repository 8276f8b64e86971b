"""Last-layer Laplace approximation on SAM's mask decoder: the ``laplace``, ``laplace-untempered`` and
``laplace-paper`` methods.

The posterior (``posterior.py``) is fitted once per model (``fitting.py``, ``uncertsam fit laplace``)
and passed in as ``posterior=`` (a file or a :class:`LastLayerPosterior`). Both methods then cost one
encoder pass and one decoder pass per image: the decoder's hooks give, per prompt, the treated
layer's input h and the upscaled embedding U (``decode(..., return_internals=True)``), and the
hypernetwork output's posterior covariance Σ_z (C × C) follows from h alone.

* ``laplace`` (the closed-form predictive, default): the per-pixel logit is N(μ_p, v_p) with μ_p the
  MAP logit and v_p = u_pᵀ Σ_z u_p; the mean probability, its entropy and the mutual information
  are closed forms, the std uses Gauss–Hermite quadrature where it is accurate
  (``predictive.py``); fp32 throughout. ``link="probit"`` switches the mean to
  laplace-torch's probit approximation.
* ``laplace-paper``: the reference code's predictive, S = 1,000 Monte Carlo samples through the
  sigmoid and the entropy of the mean, with the paper's bf16 clipping of probabilities to
  [0.01, 0.99] (``clip_probabilities=True``, default; reproduces the paper's numbers, at the cost of
  ECE/Brier/sharpness differences against the fp32 methods). It samples the C-dimensional
  hypernetwork output instead of the 8,224 weights (the same distribution, vectorised).

* ``laplace-untempered``: the same closed-form predictive of the ``untempered`` posterior (every pixel
  an independent observation; the recipe that collapses onto the baseline, kept as a reference).

Which posterior each uses is independent of the predictive: the paper's numbers are
``laplace-paper`` with a ``--recipe paper`` posterior (softmax-over-pixels GGN at 128², prior
precision 1); the companion's default is ``laplace`` with a ``--recipe tempered`` posterior (the
per-pixel GGN with the likelihood divided by a temperature chosen on fit/val by held-out predictive
NLL, ``tempering.py``); ``laplace-untempered`` with a ``--recipe untempered`` one.
Maps (low resolution): ``entropy`` (default), ``mutual_information``, ``std``, ``logit_variance``;
``prob`` is the Laplace predictive mean (it replaces the MAP probability) and ``logits`` its logit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..base import UQMethod, UQResult, encode_once
from .predictive import LINKS, PAPER_CLIP_EPS, mc_maps, predictive_maps

if TYPE_CHECKING:  # laplace-torch takes seconds to import: only the posterior module needs it
    from .posterior import LastLayerPosterior

MAPS = ("entropy", "mutual_information", "std", "logit_variance")


def resolve_posterior(posterior) -> tuple[str | None, "LastLayerPosterior | None"]:
    """(label for the method's repr, posterior object) from a file, a fitted posterior or None."""
    if isinstance(posterior, (str, Path)):
        from .posterior import LastLayerPosterior

        return str(posterior), LastLayerPosterior.load(posterior)
    if posterior is None:
        return None, None
    return f"<{posterior.recipe}/{posterior.structure} posterior>", posterior


class _LaplaceMethod(UQMethod):
    recipe: str = "tempered"  # the recipe of the posterior it is paired with (evaluation.cache.LAPLACE_RECIPES)

    def __init__(self, posterior: "LastLayerPosterior | str | Path | None" = None):
        self.posterior, self._posterior = resolve_posterior(posterior)

    @property
    def fitted(self) -> "LastLayerPosterior":
        if self._posterior is None:
            raise ValueError(
                f"method {self.name!r} needs a fitted posterior: make_method({self.name!r}, posterior=FILE), "
                "FILE from `uncertsam fit laplace --model ... --out FILE`"
            )
        return self._posterior

    @classmethod
    def for_benchmark(cls, loaded_model, generator: torch.Generator) -> "UQMethod":
        """Fitted on 4 synthetic images (the fit is not timed by ``bench uq``; see ``laplace-fit``)."""
        from .fitting import benchmark_posterior

        return cls(posterior=benchmark_posterior(loaded_model, cls.recipe, generator))

    def _internals(self, predictor, image, boxes, encoding):
        posterior = self.fitted
        posterior.check_layer(predictor.treated_layer)
        with torch.inference_mode():
            encoding = encode_once(predictor, image, encoding)
            out = predictor.decode(encoding, boxes=boxes, return_internals=True)
        return posterior, encoding, out

    def _info(self, posterior: "LastLayerPosterior", out) -> dict:
        return {
            "iou_pred": out.iou,
            "posterior": f"{posterior.recipe}/{posterior.structure}",
            "temperature": posterior.temperature,
            "prior_precision": posterior.prior_precision.tolist(),
        }


class LaplaceExact(_LaplaceMethod):
    """Closed-form predictive of the last-layer Laplace posterior (see the module docstring); ``laplace``
    pairs it with the tempered posterior."""

    name = "laplace"
    recipe = "tempered"

    def __init__(self, posterior=None, link: str = "mixture", std_nodes: int = 32):
        super().__init__(posterior)
        if link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {link!r}")
        self.link = link
        self.std_nodes = int(std_nodes)

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None) -> UQResult:
        posterior, encoding, out = self._internals(predictor, image, boxes, encoding)
        with torch.inference_mode():
            h = out.h.reshape(-1, out.h.shape[-1])
            var = posterior.logit_variance(h, out.U.reshape(-1, *out.U.shape[-3:])).reshape(out.logits.shape)
            prob, logits, maps = predictive_maps(out.logits, var, link=self.link, std_nodes=self.std_nodes, maps=MAPS)
        return UQResult(self.name, logits, prob, maps, self.default_map, encoding.orig_hw[0], self._info(posterior, out))


class LaplaceUntempered(LaplaceExact):
    """The closed-form predictive of the untempered posterior (T = 1): the recipe that collapses."""

    name = "laplace-untempered"
    recipe = "untempered"


class LaplacePaper(_LaplaceMethod):
    """The paper's Monte Carlo predictive of the same posterior (see the module docstring)."""

    name = "laplace-paper"
    recipe = "paper"
    uses_random = True

    def __init__(self, posterior=None, samples: int = 1000, clip_probabilities: bool = True):
        super().__init__(posterior)
        self.samples = int(samples)
        self.clip_probabilities = bool(clip_probabilities)

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None) -> UQResult:
        generator = self._require_generator(generator)
        posterior, encoding, out = self._internals(predictor, image, boxes, encoding)
        with torch.inference_mode():
            layer = predictor.treated_layer
            lead = out.logits.shape[:-2]
            h = out.h.reshape(-1, out.h.shape[-1]).float()
            U = out.U.reshape(-1, *out.U.shape[-3:]).float()
            z_mean = h @ layer.weight.float().T + layer.bias.float()
            z_cov = posterior.hyper_covariance(h)
            prob, logits, maps = mc_maps(z_mean, z_cov, U, samples=self.samples, generator=generator,
                                         clip_eps=PAPER_CLIP_EPS if self.clip_probabilities else None)
        shape = (*lead, *prob.shape[-2:])
        maps = {k: v.reshape(shape) for k, v in maps.items()}
        info = self._info(posterior, out) | {"samples": self.samples, "clipped": self.clip_probabilities}
        return UQResult(self.name, logits.reshape(shape), prob.reshape(shape), maps, self.default_map,
                        encoding.orig_hw[0], info)


# Their public path, the one they had as the module uq/laplace.py: evaluation manifests (evaluation.json)
# record each method's class by module and name, and a rerun into an existing folder compares them.
LaplaceExact.__module__ = LaplacePaper.__module__ = LaplaceUntempered.__module__ = "uncertsam_utils.uq.laplace"

__all__ = ["LaplaceExact", "LaplacePaper", "LaplaceUntempered", "MAPS", "resolve_posterior"]
