"""Variance network (paper §3.4) as a UQ method: SAM-2's own prediction plus a learned variance.

One encoder pass and one decoder pass: the decoder call also returns the transformer's image
tokens and mask token 0's output (``return_tokens``), and the trained head (``head``)
turns them into a log-variance map s. The segmentation is SAM-2's, unchanged.

Maps: ``variance`` = e^s (the default: the predicted variance of the residual y − σ(z)),
``log_variance`` = s (what the reference code reported), and ``entropy`` of σ(z), the
baseline's map, for comparison on the same prediction.

Differences from the reference code (paper_protocol.md §3.4, §8.1.7): there is one head, for
mask token 0, which is also the token of every single-mask output here, so an untrained head
can never be used; a head file is bound to the model it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..base import UQMethod, UQResult, encode_once
from ..measures import entropy_from_logits
from .head import VarianceHead, load_head, transformer_dim


class VarianceNetwork(UQMethod):
    name = "varnet"
    default_map = "variance"

    def __init__(self, head: VarianceHead, *, source: str = "in memory"):
        """``head``: a trained ``VarianceHead`` (``VarianceNetwork.load(path, loaded_model)`` reads one
        from a file and checks that it belongs to the model); ``source`` says where it came from."""
        if not isinstance(head, VarianceHead):
            raise TypeError(f"head must be a VarianceHead, got {type(head).__name__}")
        self._head = head.eval()
        self.head_source = str(source)

    @property
    def head(self) -> VarianceHead:
        return self._head

    @classmethod
    def load(cls, path: str | Path, loaded_model) -> "VarianceNetwork":
        """The head at ``path``; a head trained on another model is a ``HeadModelMismatchError``."""
        return cls(load_head(path, loaded_model), source=str(path))

    @classmethod
    def for_benchmark(cls, loaded_model, generator: torch.Generator) -> "VarianceNetwork":
        """A randomly initialised head of the right size: it costs exactly what a trained one costs."""
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        head = VarianceHead(transformer_dim(loaded_model.model), seed=seed)
        return cls(head.to(next(loaded_model.model.parameters()).device), source=f"random init (seed {seed}), for timing only")

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None) -> UQResult:
        if self._head.dim != transformer_dim(predictor.model):
            raise ValueError(
                f"this variance head is for a decoder of width {self._head.dim}, the predictor's model has "
                f"{transformer_dim(predictor.model)}; load the head for this model with VarianceNetwork.load"
            )
        if next(self._head.parameters()).device != predictor.device:
            self._head.to(predictor.device)
        with torch.inference_mode():
            encoding = encode_once(predictor, image, encoding)
            out = predictor.decode(encoding, boxes=boxes, return_tokens=True)
            log_variance = self._head(out.image_tokens, out.mask_token).float()
        logits = out.logits.float()
        prob = torch.sigmoid(logits)
        return UQResult(
            method=self.name,
            logits=logits,
            prob=prob,
            maps={"variance": torch.exp(log_variance), "log_variance": log_variance,
                  "entropy": entropy_from_logits(logits)},
            default_map=self.default_map,
            orig_hw=encoding.orig_hw[0],
            info={"iou_pred": out.iou},
        )
