"""The shared error target: one error map per mask that every method's uncertainty is compared with.

The paper correlates each method's map with that method's own soft error |y − p|. On correctly
classified pixels that error is a monotone function of the method's own confidence, so a method
that softens its probabilities raises its own ρ without finding a single extra error. The shared
target fixes the error: it is the **baseline's** soft error (plain SAM-2's logits of the same masks,
the same for every method), and ``pearson_shared`` / ``spearman_shared`` (and their ROI versions) say
how well a map points at the errors of one fixed segmentation.

``SharedTarget`` holds, per mask and region (whole image ``""``, dilated ROI ``"_"``), the reference
error of the region's pixels and, computed once for every method of the image, its average ranks on
the pixels the ranking metrics use (at most ``rank_max_pixels``). Build it with
``SharedTarget.from_logits(targets, logits)`` (original resolution) or ``from_result(targets, result)``
(a low-resolution ``UQResult``, upsampled as the evaluation does).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from ._ranking import average_ranks, subsample_index
from .resolution import half_bilinear

REGIONS = ("", "_")


def soft_error_from_logits(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """|y − σ(z)| from the logits without cancellation: σ(−z) where y = 1, σ(z) where y = 0 (float32)."""
    z = logits.float()
    return torch.sigmoid(torch.where(gt.bool().to(z.device), -z, z))


class SharedTarget:
    """The reference soft error of one image's masks at the evaluation resolution (module docstring)."""

    def __init__(self, errors: list[dict[str, np.ndarray]]):
        self.errors = errors  # per mask: region -> 1-D float32 reference error of the region's pixels
        self._ranks: dict = {}  # rank_max_pixels -> per mask: region -> average ranks
        self._lock = threading.Lock()  # metric workers may ask for the ranks concurrently

    def __len__(self) -> int:
        return len(self.errors)

    @classmethod
    def from_logits(cls, targets, logits: torch.Tensor) -> "SharedTarget":
        """``logits`` (B, H, W) of the reference at the original resolution (BIG: halved like a method's)."""
        logits = logits.detach().float().cpu()
        if targets.half_resolution:
            logits = half_bilinear(logits)
        if tuple(logits.shape) != tuple(targets.gt.shape):
            raise ValueError(f"reference logits {tuple(logits.shape)} do not match the ground truth "
                             f"{tuple(targets.gt.shape)} at the evaluation resolution")
        error = soft_error_from_logits(logits, targets.gt.cpu()).numpy().reshape(logits.shape[0], -1)
        errors = [{"": row, "_": row[index]} for row, index in zip(error, targets.roi_index)]
        return cls(errors)

    @classmethod
    def from_result(cls, targets, result) -> "SharedTarget":
        """The reference from a low-resolution ``UQResult`` (e.g. the baseline's on the same masks)."""
        from ..model.predictor import Predictor

        return cls.from_logits(targets, Predictor.upsample(result.logits, result.orig_hw))

    def ranks(self, mask: int, region: str, rank_max_pixels: int | None) -> np.ndarray:
        """Average ranks of the reference error on the pixels the ranking metrics use (at most
        ``rank_max_pixels``, evenly spaced) of ``mask`` and ``region``; computed once per cap."""
        with self._lock:
            if rank_max_pixels not in self._ranks:
                self._ranks[rank_max_pixels] = [{r: _rank(values[r], rank_max_pixels) for r in REGIONS}
                                                for values in self.errors]
        return self._ranks[rank_max_pixels][mask][region]


def _rank(values: np.ndarray, max_pixels: int | None) -> np.ndarray:
    idx = subsample_index(values.shape[0], max_pixels)
    return average_ranks(values if idx is None else values[idx])
