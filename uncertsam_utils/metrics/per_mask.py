"""Every column of the evaluation CSV for the masks of one image (paper_protocol.md §4, plus ours).

Inputs at the original image resolution: the ground truth ``gt`` (B, H, W) bool and, from a method,
the upsampled ``logits`` (B, H, W), its ``uncertainty`` map and optionally its ``std`` map. The
binary prediction is P = logits > 0, the probability p = σ(logits), the soft error e = |y − p|
computed from the logits (σ(−z) where y = 1, σ(z) where y = 0: no cancellation, so confident pixels
keep distinct errors), the misclassified pixels z = (P ≠ y). The ROI is the GT dilated by
⌈0.02 · diagonal⌉ pixels.

Columns: the paper's 28 (``PAPER_COLUMNS``: names and definitions of the reference code, each
method's own error); ours (``EXTRA_COLUMNS``): Spearman ρ, AUROC / AUPR of the map for the method's
own misclassified pixels, AUSE, and ρ against the **shared error target** (``metrics.shared``: the
baseline's soft error, the same for every method; NaN when no reference is given); and per-mask
curve summaries (``CURVE_COLUMNS``, whole image): the reliability diagram's bins (``rel_frac_k``
share of the pixels with p in bin k of 10, ``rel_p_k`` / ``rel_y_k`` their summed p and y over the
mask's pixel count, so that Σ_k |rel_y_k − rel_p_k| is the ECE with p = 1 in the last bin) and the
risk–coverage curve (``risk_cov_c``: the misclassified share of the c % least uncertain pixels).

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
from .resolution import half_bilinear, half_nearest
from .shared import SharedTarget, soft_error_from_logits

PAPER_COLUMNS = (
    "IoU", "dice", "MAE", "BER", "acc", "prec", "rec", "F1",
    "IoU_", "dice_", "MAE_", "BER_", "acc_", "prec_", "rec_", "F1_",
    "BIoU_2", "BIoU_1",
    "pearson", "ECE", "sharp", "brier", "avg_sample_std",
    "pearson_", "ECE_", "sharp_", "brier_", "avg_sample_std_",
)
SHARED_SCORES = ("pearson_shared", "spearman_shared")  # against the shared error target (metrics.shared)
EXTRA_COLUMNS = (tuple(RANKING_SCORES) + tuple(f"{name}_" for name in RANKING_SCORES)
                 + SHARED_SCORES + tuple(f"{name}_" for name in SHARED_SCORES))
RELIABILITY_BINS = 10
RISK_COVERAGES = tuple(range(10, 101, 10))  # percent of the pixels kept, least uncertain first
CURVE_COLUMNS = (tuple(f"rel_{kind}_{k}" for kind in ("frac", "p", "y") for k in range(RELIABILITY_BINS))
                 + tuple(f"risk_cov_{c}" for c in RISK_COVERAGES))
METRIC_COLUMNS = PAPER_COLUMNS + EXTRA_COLUMNS + CURVE_COLUMNS

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


UNCERTAINTY_STATS = ("pearson", "ECE", "sharp", "brier", "avg_sample_std", *RANKING_SCORES, *SHARED_SCORES)


@dataclass
class _Region:
    """One region's pixels of one mask (1-D arrays): p, y, P, the map u, the std map s (or None), the
    method's own soft error e, and the shared target's error and ranks (or None)."""

    p: np.ndarray
    g: np.ndarray
    pred: np.ndarray
    u: np.ndarray
    s: np.ndarray | None
    e: np.ndarray
    shared_e: np.ndarray | None = None
    shared_ranks: object = None  # callable () -> ranks of shared_e on the ranking pixels


def _pearson_sums(us: np.ndarray, k_u: np.float32, e: np.ndarray) -> float:
    """Pearson r of u and e from float64 sums of float32 values shifted by their float32 means (a
    constant map has exactly zero variance, r = 0)."""
    n = us.shape[0]
    es = e - np.float32(e.mean(dtype=np.float64))
    su, se = us.sum(dtype=np.float64), es.sum(dtype=np.float64)
    suu, see, sue = (us * us).sum(dtype=np.float64), (es * es).sum(dtype=np.float64), (us * es).sum(dtype=np.float64)
    var_u, var_e = max(suu / n - (su / n) ** 2, 0.0), max(see / n - (se / n) ** 2, 0.0)
    den = math.sqrt(var_u * var_e)
    return min(1.0, max(-1.0, (sue / n - (su / n) * (se / n)) / den)) if den > 0 else 0.0


def _region_stats(r: _Region, rank_max_pixels: int | None, curves: bool = False) -> dict:
    """Everything but the segmentation scores and BIoU for one region: confusion counts, the
    uncertainty columns (float64 sums), and with ``curves`` the reliability and risk–coverage columns."""
    n = r.p.shape[0]
    tp = np.count_nonzero(r.pred & r.g)
    out = {"tp": tp, "fp": np.count_nonzero(r.pred) - tp, "fn": np.count_nonzero(r.g) - tp, "n": n}
    if n == 0:
        return out | {k: math.nan for k in (*UNCERTAINTY_STATS, *(CURVE_COLUMNS if curves else ()))}
    gf = r.g.astype(np.float32)
    k_u = np.float32(r.u.mean(dtype=np.float64))
    finite = bool(np.isfinite(k_u))
    us = r.u - k_u
    out["pearson"] = _pearson_sums(us, k_u, r.e) if finite else math.nan
    out["pearson_shared"] = _pearson_sums(us, k_u, r.shared_e) if finite and r.shared_e is not None else math.nan
    out["sharp"] = us.sum(dtype=np.float64) / n + float(k_u)
    out["brier"] = float(np.square(r.e, dtype=np.float64).sum()) / n  # mean e², e = |y − p|
    out["avg_sample_std"] = 0.0 if r.s is None else r.s.sum(dtype=np.float64) / n
    p_t = torch.from_numpy(r.p)
    bins = ece_bins(p_t)
    per_bin = torch.bincount(bins, weights=torch.from_numpy(gf).double() - p_t.double(), minlength=ECE_BINS + 1)
    out["ECE"] = float(per_bin.abs().sum()) / n
    idx = subsample_index(n, rank_max_pixels)
    pick = (lambda x: x) if idx is None else (lambda x: x[idx])  # noqa: E731
    ranked = Ranked(pick(r.u), pick(r.e), pick(r.pred ^ r.g)) if finite else None
    out.update({name: getattr(ranked, name)() if finite else math.nan for name in RANKING_SCORES})
    shared = finite and r.shared_e is not None
    out["spearman_shared"] = ranked.spearman_with_ranks(r.shared_ranks()) if shared else math.nan
    if curves:
        out.update(_curve_columns(bins, p_t, gf, ranked, n))
    return out


def _curve_columns(bins: torch.Tensor, p: torch.Tensor, gf: np.ndarray, ranked: Ranked | None, n: int) -> dict:
    """The reliability bins (p = 1 folded into the last bin) and the risk–coverage points of one region."""
    folded = bins.clamp(max=RELIABILITY_BINS - 1)
    out = {}
    for kind, weights in (("frac", None), ("p", p.double()), ("y", torch.from_numpy(gf).double())):
        sums = torch.bincount(folded, weights=weights, minlength=RELIABILITY_BINS).double() / n
        out.update({f"rel_{kind}_{k}": float(v) for k, v in enumerate(sums.tolist())})
    risk = (ranked.risk_coverage(np.asarray(RISK_COVERAGES) / 100.0) if ranked is not None
            else np.full(len(RISK_COVERAGES), math.nan))
    out.update({f"risk_cov_{c}": float(v) for c, v in zip(RISK_COVERAGES, risk)})
    return out


def per_mask_metrics(targets: Targets, logits: torch.Tensor, uncertainty: torch.Tensor,
                     std: torch.Tensor | None = None, *, shared: SharedTarget | None = None,
                     rank_max_pixels: int | None = RANK_MAX_PIXELS) -> dict:
    """Every column of ``METRIC_COLUMNS`` → (B,) float64 numpy array.

    ``logits``, ``uncertainty`` and ``std`` (None: the method has no sample spread, reported as 0, as
    the reference does) are (B, H, W) at the original resolution; ``shared`` the shared error target of
    the same masks (``SharedTarget``; None: the ``*_shared`` columns are NaN). The computation is fused
    for speed (a few passes over each region's pixels, float64 sums, the ROI through its pixel index);
    it agrees with the reference functions of this package (``segmentation_scores``, ``boundary_iou``,
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
    if shared is not None and len(shared) != gt_t.shape[0]:
        raise ValueError(f"the shared target has {len(shared)} masks, the ground truth {gt_t.shape[0]}")
    b = gt_t.shape[0]
    h, w = targets.shape
    flat = (b, h * w)
    gt = gt_t.numpy().reshape(flat)
    pr = pred.numpy().reshape(flat)
    p = torch.sigmoid(logits).numpy().reshape(flat)
    e = soft_error_from_logits(logits, gt_t).numpy().reshape(flat)
    u = np.ascontiguousarray(uncertainty.numpy().reshape(flat))
    s = None if std is None else std.numpy().reshape(flat)
    rows = {"": [], "_": []}
    for k in range(b):
        for suffix, i in (("", slice(None)), ("_", targets.roi_index[k])):
            region = _Region(p[k][i], gt[k][i], pr[k][i], u[k][i], None if s is None else s[k][i], e[k][i])
            if shared is not None:
                region.shared_e = shared.errors[k][suffix]
                region.shared_ranks = lambda k=k, suffix=suffix: shared.ranks(k, suffix, rank_max_pixels)
            rows[suffix].append(_region_stats(region, rank_max_pixels, curves=suffix == ""))
    return _columns(rows, pred, targets, h, w)


def _columns(rows: dict, pred: torch.Tensor, targets: Targets, h: int, w: int) -> dict:
    """The per-region statistics and the boundary IoUs as the CSV's columns (B,) float64."""
    cols: dict[str, np.ndarray] = {}
    for suffix, stats in rows.items():
        counts = {key: torch.tensor([r[key] for r in stats], dtype=torch.int64) for key in ("tp", "fp", "fn", "n")}
        counts["tn"] = counts["n"] - counts["tp"] - counts["fp"] - counts["fn"]
        scores = scores_from_confusion(counts)
        for name in SEGMENTATION_SCORES:
            cols[name + suffix] = scores[name].numpy()
        for name in UNCERTAINTY_STATS:
            cols[name + suffix] = np.array([r[name] for r in stats], dtype=np.float64)
    for name in CURVE_COLUMNS:
        cols[name] = np.array([r[name] for r in rows[""]], dtype=np.float64)
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


def result_metrics(result, targets: Targets, *, reference=None, rank_max_pixels: int | None = RANK_MAX_PIXELS) -> dict:
    """``per_mask_metrics`` of a low-resolution ``UQResult``: its logits, default map and ``std`` map (if
    it has one) upsampled bilinearly to ``result.orig_hw`` exactly as ``UQResult.at_original_size`` does
    (only the maps needed are upsampled). ``reference``: the shared error target of the same masks, a
    ``SharedTarget`` (built once per image and passed to every method's scoring) or the baseline's
    ``UQResult``; None leaves the ``*_shared`` columns NaN."""
    from ..model.predictor import Predictor

    def up(x: torch.Tensor) -> torch.Tensor:
        return Predictor.upsample(x, result.orig_hw)

    if reference is not None and not isinstance(reference, SharedTarget):
        reference = SharedTarget.from_result(targets, reference)
    std = result.maps.get("std")
    return per_mask_metrics(targets, up(result.logits), up(result.uncertainty), None if std is None else up(std),
                            shared=reference, rank_max_pixels=rank_max_pixels)
