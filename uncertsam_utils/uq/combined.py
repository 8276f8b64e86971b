"""Combined uncertainty (the paper's open question 3): one map from the maps of several methods.

A combination wraps other method instances (``components``, name → ``UQMethod``), runs each on the
image (or takes their results, ``precomputed``), and combines their maps per object:

* ``combined-rank`` (``RankMeanCombination``): the mean of the per-object rank-normalised maps.
  Each component's map is replaced by its pixel ranks scaled to [0, 1] ((rank − 1)/(n − 1), ties
  sharing their average rank; a constant map is 0.5 everywhere), so methods whose maps live on
  different scales (entropy in nats, a variance, a log-variance) weigh equally and only their
  orderings of the pixels matter. Default components: laplace, prompt, tta.
* ``combined-product`` (``ProductCombination``): the pixel-wise product of the raw maps; high only
  where every component is uncertain (an "and" of the evidence; for two entropy maps, large where
  both the posterior over the weights and the prompt sensitivity say so). Default components:
  laplace, prompt.

The segmentation is the first component's (``prediction="first"``, default) so that the combined map
is judged against the same prediction as that component, or the mean of the components'
probabilities (``prediction="mean"``, its logit computed in log space from their logits, unclamped).
Maps: ``combined`` (the default), each component's map as ``<component>:<map>``, and the prediction
source's ``std`` map when it has one.

Randomness: every component gets its own copy of the caller's generator state, so a component's
result is exactly what it gives when run alone with the same generator; the evaluation driver
passes those standalone results as ``precomputed`` instead of computing them twice.
"""

from __future__ import annotations

from typing import ClassVar, Mapping, Sequence

import numpy as np
import torch

from ..metrics._ranking import average_ranks
from .base import UQMethod, UQResult
from .measures import mean_probability_logit

COMBINATIONS = ("rank_mean", "product")
PREDICTIONS = ("first", "mean")


def rank_normalise(maps: torch.Tensor) -> torch.Tensor:
    """(B, m, m) → per object, the average pixel ranks scaled to [0, 1] (constant map → 0.5)."""
    values = maps.detach().float().cpu().numpy().reshape(maps.shape[0], -1)
    out = np.empty(values.shape, dtype=np.float64)
    n = values.shape[1]
    for k, row in enumerate(values):
        out[k] = (average_ranks(np.ascontiguousarray(row)) - 1.0) / (n - 1) if n > 1 else 0.5
    return torch.from_numpy(out.astype(np.float32)).reshape(maps.shape).to(maps.device)


def combine_maps(maps: Sequence[torch.Tensor], how: str) -> torch.Tensor:
    """Combine (B, m, m) maps by ``rank_mean`` or ``product``."""
    if not maps:
        raise ValueError("nothing to combine")
    if how == "rank_mean":
        return torch.stack([rank_normalise(m) for m in maps]).mean(0)
    if how == "product":
        out = maps[0].float().clone()
        for m in maps[1:]:
            out = out * m.float()
        return out
    raise ValueError(f"unknown combination {how!r}; available: {', '.join(COMBINATIONS)}")


def _copy_generator(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None:
        return None
    copy = torch.Generator(device=generator.device)
    copy.set_state(generator.get_state())
    return copy


class CombinedUncertainty(UQMethod):
    """Base of the combinations; subclasses fix ``name``, ``how`` and ``default_components``."""

    name: ClassVar[str] = "combined"
    default_map: ClassVar[str] = "combined"
    how: ClassVar[str] = "rank_mean"
    default_components: ClassVar[tuple[str, ...]] = ()

    def __init__(self, components: Mapping[str, UQMethod] | Sequence[UQMethod], *, prediction: str = "first",
                 maps: Mapping[str, str] | None = None):
        """``components``: name → method instance (a sequence is keyed by each method's ``name``), at
        least two; ``maps``: component name → map to use (default: the component's own default map)."""
        if not isinstance(components, Mapping):
            components = {m.name: m for m in components}
        if len(components) < 2:
            raise ValueError(f"{self.name} needs at least two component methods, got {list(components)}")
        for key, method in components.items():
            if not isinstance(method, UQMethod):
                raise TypeError(f"component {key!r} is not a UQMethod: {type(method).__name__}")
            if isinstance(method, CombinedUncertainty):
                raise TypeError(f"component {key!r} is itself a combination")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        unknown = set(maps or {}) - set(components)
        if unknown:
            raise ValueError(f"maps given for unknown components: {sorted(unknown)}")
        self._components = dict(components)
        self._maps = dict(maps or {})
        self.prediction = prediction

    @property
    def components(self) -> dict[str, UQMethod]:
        return dict(self._components)

    @property
    def changes_image(self) -> bool:  # type: ignore[override]
        return any(m.changes_image for m in self._components.values())

    @property
    def uses_random(self) -> bool:  # type: ignore[override]
        return any(m.uses_random for m in self._components.values())

    def hyperparameters(self) -> dict:
        return {
            "how": self.how,
            "components": {k: repr(m) for k, m in self._components.items()},
            "maps": dict(self._maps),
            "prediction": self.prediction,
        }

    @classmethod
    def for_benchmark(cls, loaded_model, generator: torch.Generator) -> "CombinedUncertainty":
        from .registry import METHODS

        missing = [c for c in cls.default_components if c not in METHODS]
        if missing:
            raise KeyError(f"{cls.name} needs the methods {missing}, which are not available")
        return cls({c: METHODS[c].for_benchmark(loaded_model, generator) for c in cls.default_components})

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None,
                precomputed: Mapping[str, UQResult] | None = None) -> UQResult:
        """``precomputed``: component name → that component's result on this image (with the same
        generator state); the others are computed here. ``encoding``: of the clean image."""
        results: dict[str, UQResult] = {}
        for key, method in self._components.items():
            if precomputed is not None and key in precomputed:
                results[key] = precomputed[key]
                continue
            results[key] = method.predict(predictor, image, boxes, encoding=encoding,
                                          generator=_copy_generator(generator))
        chosen = {key: self._maps.get(key, r.default_map) for key, r in results.items()}
        for key, map_name in chosen.items():
            if map_name not in results[key].maps:
                raise KeyError(f"component {key!r} has no map {map_name!r}; it has {sorted(results[key].maps)}")
        parts = [results[key].maps[chosen[key]].float() for key in self._components]
        shapes = {tuple(p.shape) for p in parts}
        if len(shapes) != 1:
            raise ValueError(f"component maps differ in shape: {sorted(shapes)}")
        first = results[next(iter(self._components))]
        if self.prediction == "first":
            prob, logits = first.prob.float(), first.logits.float()
        else:
            logits = mean_probability_logit(torch.stack([r.logits.float() for r in results.values()]), 0)
            prob = torch.sigmoid(logits)
        maps = {"combined": combine_maps(parts, self.how)}
        maps.update({f"{key}:{chosen[key]}": part for key, part in zip(self._components, parts)})
        if self.prediction == "first" and "std" in first.maps:
            maps["std"] = first.maps["std"]
        return UQResult(
            method=self.name,
            logits=logits,
            prob=prob,
            maps=maps,
            default_map="combined",
            orig_hw=first.orig_hw,
            info={"components": list(self._components), "how": self.how, "prediction": self.prediction},
        )


class RankMeanCombination(CombinedUncertainty):
    name = "combined-rank"
    how = "rank_mean"
    default_components = ("laplace", "prompt", "tta")


class ProductCombination(CombinedUncertainty):
    name = "combined-product"
    how = "product"
    default_components = ("laplace", "prompt")
