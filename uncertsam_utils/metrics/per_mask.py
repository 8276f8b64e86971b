"""Every column of the evaluation CSV for the masks of one image (paper_protocol.md §4, plus ours).

Inputs at the original image resolution: the ground truth ``gt`` (B, H, W) bool and, from a method,
the upsampled ``logits`` (B, H, W), its ``uncertainty`` map and optionally its ``std`` map. The
binary prediction is P = logits > 0, the probability p = σ(logits), the soft error e = |y − p|, the
misclassified pixels z = (P ≠ y). The ROI is the GT dilated by ⌈0.02 · diagonal⌉ pixels.

For ``half_resolution`` (the paper does it for BIG): P and the GT are downscaled by 0.5 with nearest
interpolation, logits and maps by 0.5 with bilinear interpolation, before anything is computed.

``prepare_targets`` does the GT-only work (half resolution, ROI, boundary bands) once per image;
``per_mask_metrics`` then costs one pass per method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._ranking import Ranked, subsample_index
from .calibration import ECE_BINS
from .error_detection import RANKING_SCORES
from .segmentation import (
    SEGMENTATION_SCORES,
    _band_iou,
    boundary_width,
    confusion,
    dilate,
    inner_distance,
    roi_radius,
    scores_from_confusion,
)

PAPER_COLUMNS = (
    "IoU", "dice", "MAE", "BER", "acc", "prec", "rec", "F1",
    "IoU_", "dice_", "MAE_", "BER_", "acc_", "prec_", "rec_", "F1_",
    "BIoU_2", "BIoU_1",
    "pearson", "ECE", "sharp", "brier", "avg_sample_std",
    "pearson_", "ECE_", "sharp_", "brier_", "avg_sample_std_",
)
EXTRA_COLUMNS = tuple(RANKING_SCORES) + tuple(f"{name}_" for name in RANKING_SCORES)
METRIC_COLUMNS = PAPER_COLUMNS + EXTRA_COLUMNS

HALF_RESOLUTION_DATASETS = frozenset({"BIG"})
ROI_RATIO = 0.02
BIOU_RATIOS = {"BIoU_2": 0.02, "BIoU_1": 0.01}
# Ranking metrics (Spearman, AUROC, AUPR, AUSE) sort the region's pixels twice; above this many
# pixels per mask and region (images over ~1 Mpx: the real benchmark's large photographs, never
# UncertSAM-mini) they use this many, evenly spaced in raster order (``_ranking.subsample_index``),
# which bounds their time and memory. None: every pixel always. Every other column uses every pixel.
RANK_MAX_PIXELS: int | None = 1 << 20


@dataclass
class Targets:
    """The ground truth of one image at the evaluation resolution, with its ROI and boundary bands."""

    gt: torch.Tensor  # (B, h, w) bool
    roi: torch.Tensor  # (B, h, w) bool
    bands: dict  # BIoU column -> (B, h, w) bool band of the GT
    half_resolution: bool
    roi_index: list  # per mask: flat indices (int64) of its ROI pixels, raster order

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.gt.shape[-2:])


def half_nearest(mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool → (B, ⌊H/2⌋, ⌊W/2⌋) bool, nearest (torch's ``scale_factor=0.5``)."""
    return F.interpolate(mask[:, None].float(), scale_factor=0.5, mode="nearest")[:, 0] > 0.5


def half_bilinear(values: torch.Tensor) -> torch.Tensor:
    """(B, H, W) float → (B, ⌊H/2⌋, ⌊W/2⌋), bilinear, align_corners=False (a 2×2 mean)."""
    return F.interpolate(values[:, None].float(), scale_factor=0.5, mode="bilinear", align_corners=False)[:, 0]


def prepare_targets(gt, *, half_resolution: bool = False) -> Targets:
    """GT masks (B, H, W) at the original resolution → ``Targets``."""
    g = torch.as_tensor(np.asarray(gt) if not isinstance(gt, torch.Tensor) else gt).bool()
    if g.ndim != 3:
        raise ValueError(f"gt must have shape (B, H, W), got {tuple(g.shape)}")
    if half_resolution:
        g = half_nearest(g)
    h, w = g.shape[-2:]
    roi = dilate(g, roi_radius(h, w, ROI_RATIO))
    bands = dict(zip(BIOU_RATIOS, _bands(g.cpu(), [boundary_width(h, w, r) for r in BIOU_RATIOS.values()])))
    roi_index = [np.flatnonzero(mask) for mask in roi.cpu().numpy().reshape(g.shape[0], -1)]
    return Targets(gt=g, roi=roi, bands=bands, half_resolution=half_resolution, roi_index=roi_index)


def ece_bins(prob: torch.Tensor, n_bins: int = ECE_BINS) -> torch.Tensor:
    """torchmetrics' bin index of each probability (``bucketize(p, linspace(0, 1, n_bins + 1),
    right=True) − 1``, 0 … n_bins), computed as ⌊n_bins · p⌋ and corrected by the exact bucketize
    for the few values within 1e-4 of a bin edge (bucketize on every pixel is ~20× slower)."""
    scaled = prob * n_bins
    bins = scaled.floor().long().clamp_(0, n_bins)
    near = (scaled - scaled.round()).abs_() < 1e-4
    if bool(near.any()):
        edges = torch.linspace(0, 1, n_bins + 1, dtype=prob.dtype, device=prob.device)
        bins[near] = torch.bucketize(prob[near], edges, right=True) - 1
    return bins


def _region_stats(p: np.ndarray, g: np.ndarray, pred: np.ndarray, u: np.ndarray, s: np.ndarray | None,
                  rank_max_pixels: int | None) -> dict:
    """Everything but the segmentation scores and BIoU for one region's pixels (1-D arrays):
    confusion counts, and the uncertainty columns from float64 sums of float32 values shifted by their
    float32 mean (a constant map gives exactly zero variance, so Pearson 0)."""
    n = p.shape[0]
    gf = g.astype(np.float32)
    tp = np.count_nonzero(pred & g)
    out = {"tp": tp, "fp": np.count_nonzero(pred) - tp, "fn": np.count_nonzero(g) - tp, "n": n}
    if n == 0:
        return out | {k: math.nan for k in ("pearson", "ECE", "sharp", "brier", "avg_sample_std", *RANKING_SCORES)}
    e = np.abs(gf - p)
    k_u = np.float32(u.mean(dtype=np.float64))
    k_e = np.float32(e.mean(dtype=np.float64))
    us = u - k_u
    es = e - k_e
    su, se = us.sum(dtype=np.float64), es.sum(dtype=np.float64)
    suu, see, sue = (us * us).sum(dtype=np.float64), (es * es).sum(dtype=np.float64), (us * es).sum(dtype=np.float64)
    mean_u, mean_e = su / n, se / n
    var_u, var_e = max(suu / n - mean_u ** 2, 0.0), max(see / n - mean_e ** 2, 0.0)
    den = math.sqrt(var_u * var_e)
    finite = bool(np.isfinite(k_u))
    if not finite:
        out["pearson"] = math.nan
    else:
        out["pearson"] = min(1.0, max(-1.0, (sue / n - mean_u * mean_e) / den)) if den > 0 else 0.0
    out["sharp"] = mean_u + float(k_u)
    ke = float(k_e)
    out["brier"] = (see + 2 * ke * se) / n + ke * ke  # mean e², e = |y − p|
    out["avg_sample_std"] = 0.0 if s is None else s.sum(dtype=np.float64) / n
    p_t = torch.from_numpy(p)
    per_bin = torch.bincount(ece_bins(p_t), weights=torch.from_numpy(gf).double() - p_t.double(), minlength=ECE_BINS + 1)
    out["ECE"] = float(per_bin.abs().sum()) / n
    idx = subsample_index(n, rank_max_pixels)
    if finite:
        if idx is None:
            ranked = Ranked(u, e, pred ^ g)
        else:
            ranked = Ranked(u[idx], e[idx], pred[idx] ^ g[idx])
        out.update({name: getattr(ranked, name)() for name in RANKING_SCORES})
    else:
        out.update({name: math.nan for name in RANKING_SCORES})
    return out


def per_mask_metrics(targets: Targets, logits: torch.Tensor, uncertainty: torch.Tensor,
                     std: torch.Tensor | None = None, *, rank_max_pixels: int | None = RANK_MAX_PIXELS) -> dict:
    """Every column of ``METRIC_COLUMNS`` → (B,) float64 numpy array.

    ``logits``, ``uncertainty`` and ``std`` (None: the method has no sample spread, reported as 0, as
    the reference does) are (B, H, W) at the original resolution. The computation is fused for speed
    (a few passes over each region's pixels, float64 sums, the ROI through its pixel index); it agrees
    with the reference functions of this package (``segmentation_scores``, ``boundary_iou``,
    ``pearson``, ``ece``, ``brier``, ``region_mean``, ``ranking_scores``), which the tests check.
    """
    logits = logits.detach().float().cpu()
    uncertainty = uncertainty.detach().float().cpu()
    std = None if std is None else std.detach().float().cpu()
    pred = logits > 0
    if targets.half_resolution:
        pred = half_nearest(pred)
        logits = half_bilinear(logits)
        uncertainty = half_bilinear(uncertainty)
        std = None if std is None else half_bilinear(std)
    gt_t = targets.gt.cpu()
    if pred.shape != gt_t.shape or uncertainty.shape != gt_t.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} / map {tuple(uncertainty.shape)} do not match "
                         f"the ground truth {tuple(gt_t.shape)} at the evaluation resolution")
    b = gt_t.shape[0]
    h, w = targets.shape
    flat = (b, h * w)
    gt = gt_t.numpy().reshape(flat)
    pr = pred.numpy().reshape(flat)
    p = torch.sigmoid(logits).numpy().reshape(flat)
    u = np.ascontiguousarray(uncertainty.numpy().reshape(flat))
    s = None if std is None else std.numpy().reshape(flat)
    rows = {"": [], "_": []}
    for k in range(b):
        sk = None if s is None else s[k]
        rows[""].append(_region_stats(p[k], gt[k], pr[k], u[k], sk, rank_max_pixels))
        i = targets.roi_index[k]
        rows["_"].append(_region_stats(p[k][i], gt[k][i], pr[k][i], u[k][i], None if sk is None else sk[i],
                                       rank_max_pixels))
    cols: dict[str, np.ndarray] = {}
    for suffix, stats in rows.items():
        counts = {key: torch.tensor([r[key] for r in stats], dtype=torch.int64) for key in ("tp", "fp", "fn", "n")}
        counts["tn"] = counts["n"] - counts["tp"] - counts["fp"] - counts["fn"]
        scores = scores_from_confusion(counts)
        for name in SEGMENTATION_SCORES:
            cols[name + suffix] = scores[name].numpy()
        for name in ("pearson", "ECE", "sharp", "brier", "avg_sample_std", *RANKING_SCORES):
            cols[name + suffix] = np.array([r[name] for r in stats], dtype=np.float64)
    bands = _bands(pred, [boundary_width(h, w, ratio) for ratio in BIOU_RATIOS.values()])
    for band, col in zip(bands, BIOU_RATIOS):
        cols[col] = _band_iou(band, targets.bands[col].cpu(), as_numpy=True)
    return {name: np.asarray(cols[name], dtype=np.float64) for name in METRIC_COLUMNS}


def _bands(masks: torch.Tensor, widths: list[int]) -> list[torch.Tensor]:
    """Inner boundary bands of (B, H, W) masks for several widths, one distance transform per mask."""
    array = masks.numpy()
    out = [np.zeros_like(array) for _ in widths]
    for k in range(array.shape[0]):
        found = inner_distance(array[k])
        if found is None:
            continue
        dist, where = found
        inside = array[k][where]
        for band, d in zip(out, widths):
            band[k][where] = inside & (dist <= d)
    return [torch.from_numpy(band) for band in out]


def result_metrics(result, targets: Targets, *, rank_max_pixels: int | None = RANK_MAX_PIXELS) -> dict:
    """``per_mask_metrics`` of a low-resolution ``UQResult``: its logits, default map and ``std`` map (if
    it has one) upsampled bilinearly to ``result.orig_hw`` exactly as ``UQResult.at_original_size`` does
    (only the maps needed are upsampled)."""
    from ..model.predictor import Predictor

    def up(x: torch.Tensor) -> torch.Tensor:
        return Predictor.upsample(x, result.orig_hw)

    std = result.maps.get("std")
    return per_mask_metrics(targets, up(result.logits), up(result.uncertainty), None if std is None else up(std),
                            rank_max_pixels=rank_max_pixels)
