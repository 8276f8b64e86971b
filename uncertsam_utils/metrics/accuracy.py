"""Table 1's accuracy columns alone (``IoU``, ``BIoU_2``), for scoring many refinement arms cheaply.

``per_mask_metrics`` computes every column of the evaluation CSV (most of its time goes to the
uncertainty columns). Notebook 09 scores dozens of trained modules by Table 1's metrics only, so
this module computes those two columns by the same steps: the low-resolution logits upsampled
bilinearly to the original size (``Predictor.upsample``), P = logits > 0, halved with nearest
interpolation for the half-resolution datasets, IoU from the confusion counts
(``scores_from_confusion``), BIoU_2 from the inner boundary bands of width
``boundary_width(h, w, 0.02)`` (``per_mask._bands``). Equal to the CSV's columns (tested).

The ground-truth side (``AccuracyTargets``) keeps only what these columns need, bit-packed: the
masks and their BIoU_2 bands at the evaluation resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .per_mask import BIOU_RATIOS, _bands, half_nearest
from .segmentation import _band_iou, boundary_width, confusion, scores_from_confusion

ACCURACY_COLUMNS = ("IoU", "BIoU_2")


@dataclass
class AccuracyTargets:
    """One image's GT masks and their BIoU_2 bands at the evaluation resolution, bit-packed."""

    gt: np.ndarray  # (B, ceil(h*w/8)) uint8
    band: np.ndarray  # (B, ceil(h*w/8)) uint8
    shape: tuple[int, int]  # (h, w) at the evaluation resolution
    half_resolution: bool

    @classmethod
    def from_masks(cls, gt, *, half_resolution: bool = False) -> "AccuracyTargets":
        """GT masks (B, H, W) at the original resolution (as ``prepare_targets`` takes them)."""
        g = torch.as_tensor(np.asarray(gt)).bool()
        if g.ndim != 3:
            raise ValueError(f"gt must have shape (B, H, W), got {tuple(g.shape)}")
        if half_resolution:
            g = half_nearest(g)
        h, w = g.shape[-2:]
        (band,) = _bands(g.cpu(), [boundary_width(h, w, BIOU_RATIOS["BIoU_2"])])
        pack = lambda m: np.packbits(m.numpy().reshape(m.shape[0], -1), axis=-1)  # noqa: E731
        return cls(pack(g), pack(band), (int(h), int(w)), bool(half_resolution))

    def unpack(self, which: str) -> torch.Tensor:
        packed = self.gt if which == "gt" else self.band
        h, w = self.shape
        flat = np.unpackbits(packed, axis=-1, count=h * w).astype(bool)
        return torch.from_numpy(flat.reshape(-1, h, w))


def accuracy_columns(targets: AccuracyTargets, logits: torch.Tensor, orig_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """``IoU`` and ``BIoU_2`` → (B,) float64 of low-resolution ``logits`` (B, m, m) for an image of
    original size ``orig_hw``."""
    from ..model.predictor import Predictor

    pred = Predictor.upsample(logits.detach().float().cpu(), tuple(orig_hw)) > 0
    if targets.half_resolution:
        pred = half_nearest(pred)
    h, w = targets.shape
    if tuple(pred.shape[-2:]) != (h, w):
        raise ValueError(f"prediction {tuple(pred.shape)} does not match the ground truth {(h, w)}")
    gt = targets.unpack("gt")
    iou = scores_from_confusion(confusion(pred, gt))["IoU"].numpy()
    (band,) = _bands(pred, [boundary_width(h, w, BIOU_RATIOS["BIoU_2"])])
    biou = _band_iou(band, targets.unpack("band"), as_numpy=True)
    return {"IoU": np.asarray(iou, dtype=np.float64), "BIoU_2": np.asarray(biou, dtype=np.float64)}


def error_pearson(targets: AccuracyTargets, logits: torch.Tensor, maps: dict[str, torch.Tensor],
                  orig_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per map: Pearson r (B,) of the map with the soft error |y − σ(logits)| of one prediction, over the
    image (the CSV's ``pearson`` column when ``logits`` are the method's own; here every map is judged
    against the same prediction). Low-resolution inputs, upsampled and halved like ``per_mask_metrics``."""
    from ..model.predictor import Predictor
    from .correlation import pearson
    from .per_mask import half_bilinear
    from .shared import soft_error_from_logits

    def at_evaluation_size(x: torch.Tensor) -> torch.Tensor:
        up = Predictor.upsample(x.detach().float().cpu(), tuple(orig_hw))
        return half_bilinear(up) if targets.half_resolution else up

    error = soft_error_from_logits(at_evaluation_size(logits), targets.unpack("gt"))  # the CSV's convention
    return {name: np.asarray(pearson(at_evaluation_size(m), error), dtype=np.float64) for name, m in maps.items()}
