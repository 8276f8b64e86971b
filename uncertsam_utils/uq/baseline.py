"""Plain SAM-2: one encoder pass, one decoder pass, the entropy of its own probability."""

from __future__ import annotations

import torch

from .base import UQMethod, UQResult, encode_once
from .measures import entropy_from_logits


class Baseline(UQMethod):
    name = "baseline"

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None) -> UQResult:
        with torch.inference_mode():
            encoding = encode_once(predictor, image, encoding)
            out = predictor.decode(encoding, boxes=boxes)
        prob = torch.sigmoid(out.logits.float())
        return UQResult(
            method=self.name,
            logits=out.logits.float(),
            prob=prob,
            maps={"entropy": entropy_from_logits(out.logits)},
            default_map="entropy",
            orig_hw=encoding.orig_hw[0],
            info={"iou_pred": out.iou},
        )
