"""``baseline-ts``: SAM-2 with its logits divided by one scale chosen on fit/val (temperature scaling).

A reference, not a method of the paper: the tempered Laplace posterior (``laplace``) is chosen by the
held-out predictive NLL of fit/val, and part of what it gains by that criterion is plain calibration.
Dividing the baseline's logits by the scale s with the lowest NLL on the same prompts by the same
criterion (``laplace/tempering.py``) shows how much: the segmentation is the baseline's (the sign of
the logits does not change), the uncertainty is the entropy of σ(z / s). The scale is found with the
tempered posterior's temperature (the same held-out pass) and read from that posterior's file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .base import UQMethod, UQResult, encode_once
from .measures import binary_entropy


class TemperatureScaledBaseline(UQMethod):
    name = "baseline-ts"

    def __init__(self, scale: float | None = None, posterior=None):
        """``scale``, or a tempered posterior (file or object) whose fit/val selection holds it."""
        if scale is None and posterior is not None:
            scale = logit_scale_of(posterior)
        if scale is None or not scale > 0:
            raise ValueError(f"method {self.name!r} needs a positive logit scale: scale=S or posterior=FILE of the "
                             "tempered recipe (`uncertsam fit laplace --recipe tempered`)")
        self.scale = float(scale)

    @classmethod
    def for_benchmark(cls, loaded_model, generator: torch.Generator) -> "UQMethod":
        return cls(scale=2.0)  # the cost does not depend on the scale

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None) -> UQResult:
        with torch.inference_mode():
            encoding = encode_once(predictor, image, encoding)
            out = predictor.decode(encoding, boxes=boxes)
        logits = out.logits.float() / self.scale
        prob = torch.sigmoid(logits)
        return UQResult(self.name, logits, prob, {"entropy": binary_entropy(prob)}, "entropy", encoding.orig_hw[0],
                        {"iou_pred": out.iou, "scale": self.scale})


def logit_scale_of(posterior) -> float:
    """The logit scale chosen on fit/val beside a tempered posterior's temperature."""
    if isinstance(posterior, (str, Path)):
        from .laplace import LastLayerPosterior

        posterior = LastLayerPosterior.load(posterior)
    selection = posterior.info.get("temperature_selection")
    if not selection:
        raise ValueError(f"the {posterior.recipe!r} posterior holds no fit/val selection: fit one with "
                         "`--recipe tempered` for baseline-ts")
    return float(selection["logit_scale"]["scale"])


__all__ = ["TemperatureScaledBaseline", "logit_scale_of"]
