"""Segmentation accuracy per mask: IoU, Dice, MAE, BER, accuracy, precision, recall, F1, boundary IoU,
and the dilated region of interest (paper_protocol.md §4).

Inputs are binary masks ``(..., H, W)`` (bool, or numbers where non-zero is foreground), optionally a
``region`` of the same shape that restricts the pixels counted (the dilated ROI for the ``*_`` columns).
Every function returns one value per mask, shape ``(...)``: numpy in → numpy float64 out, torch in →
torch float32 out (same device).

Degenerate inputs (see the table in ``uncertsam_utils.metrics``): a ratio is NaN only when it is 0/0
because *both* masks are empty (in the region); an empty prediction against a non-empty ground truth
scores 0 (precision, recall, IoU, Dice, F1), never NaN, so that failures are not dropped from means.

Morphology is exact and fast: bands and dilations come from one chessboard distance transform of each
mask's bounding-box crop (scipy), not from a dense convolution, so the cost follows the object size.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

__all__ = [
    "iou", "dice", "boundary_iou", "mask_boundary", "boundary_width", "roi_radius", "dilate", "dilated_roi",
    "confusion", "scores_from_confusion", "segmentation_scores", "SEGMENTATION_SCORES",
]

SEGMENTATION_SCORES = ("IoU", "dice", "MAE", "BER", "acc", "prec", "rec", "F1")


# ----------------------------------------------------------------------------------- conversions

def _as_bool_tensor(mask) -> tuple[torch.Tensor, bool]:
    """(tensor of dtype bool, whether the input was numpy)."""
    if isinstance(mask, torch.Tensor):
        return (mask if mask.dtype == torch.bool else mask != 0), False
    array = np.asarray(mask)
    return torch.from_numpy(array if array.dtype == np.bool_ else array != 0), True


def _pair(pred, gt) -> tuple[torch.Tensor, torch.Tensor, bool]:
    p, p_numpy = _as_bool_tensor(pred)
    g, g_numpy = _as_bool_tensor(gt)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {tuple(p.shape)} vs {tuple(g.shape)}")
    if p.ndim < 2:
        raise ValueError(f"masks must have shape (..., H, W), got {tuple(p.shape)}")
    return p, g.to(p.device), p_numpy and g_numpy


def _region(region, like: torch.Tensor) -> torch.Tensor | None:
    if region is None:
        return None
    r, _ = _as_bool_tensor(region)
    if r.shape != like.shape:
        raise ValueError(f"region shape {tuple(r.shape)} differs from the masks' {tuple(like.shape)}")
    return r.to(like.device)


def _out(value: torch.Tensor, as_numpy: bool):
    """float64 values → the module's output convention."""
    return value.cpu().numpy() if as_numpy else value.float()


def _ratio(inter: torch.Tensor, union: torch.Tensor, as_numpy: bool):
    inter, union = inter.double(), union.double()
    value = torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(union, math.nan))
    return _out(value, as_numpy)


# ----------------------------------------------------------------------------------- morphology

def boundary_width(height: int, width: int, dilation_ratio: float) -> int:
    """Band width d = max(1, round(ratio · image diagonal)) in pixels (Cheng et al. 2021)."""
    return max(1, int(round(dilation_ratio * math.hypot(height, width))))


def roi_radius(height: int, width: int, ratio: float = 0.02) -> int:
    """Half-width d = ⌈ratio · √(H² + W²)⌉ of the square that dilates the GT into the ROI (29 px for 1024²)."""
    return int(math.ceil(ratio * math.hypot(height, width)))


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1), half-open, of the non-zero pixels of a 2-D bool array; None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def inner_distance(mask: np.ndarray) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """Chessboard distance of every pixel of a 2-D mask to the nearest background pixel, where
    everything outside the image is background; on the mask's bounding-box crop (None when empty).

    ``mask & (distance <= d)`` is the inner band of width d: the mask minus its erosion by a (2d+1)²
    square (what d iterations of a 3×3 erosion with a zero border give).
    """
    box = _bbox(mask)
    if box is None:
        return None
    y0, y1, x0, x1 = box
    crop = np.pad(mask[y0:y1, x0:x1], 1)  # outside the box is background (in or out of the image)
    dist = ndimage.distance_transform_cdt(crop, metric="chessboard")[1:-1, 1:-1]
    return dist, (slice(y0, y1), slice(x0, x1))


def _band_2d(mask: np.ndarray, d: int, out: np.ndarray) -> None:
    found = inner_distance(mask)
    if found is not None:
        dist, where = found
        out[where] = mask[where] & (dist <= d)


def _dilate_2d(mask: np.ndarray, d: int, out: np.ndarray) -> None:
    box = _bbox(mask)
    if box is None:
        return
    h, w = mask.shape
    y0, y1, x0, x1 = box
    y0, x0, y1, x1 = max(0, y0 - d), max(0, x0 - d), min(h, y1 + d), min(w, x1 + d)
    crop = mask[y0:y1, x0:x1]
    dist = ndimage.distance_transform_cdt(~crop, metric="chessboard")  # to the nearest mask pixel
    out[y0:y1, x0:x1] = dist <= d


def _per_mask(fn, m: torch.Tensor, d: int) -> torch.Tensor:
    """Apply a 2-D numpy morphology ``fn(mask, d, out)`` to every mask of ``(..., H, W)``."""
    if d < 0:
        raise ValueError(f"width must be non-negative, got {d}")
    array = m.detach().cpu().numpy().astype(bool, copy=False)
    flat = array.reshape(-1, *array.shape[-2:])
    out = np.zeros_like(flat)
    for k in range(flat.shape[0]):
        fn(flat[k], d, out[k])
    return torch.from_numpy(out.reshape(array.shape)).to(m.device)


def _boundary(m: torch.Tensor, d: int) -> torch.Tensor:
    if d < 1:
        raise ValueError(f"boundary width must be at least 1 pixel, got {d}")
    return _per_mask(_band_2d, m, int(d))


def mask_boundary(mask, d: int):
    """Inner boundary band of width ``d``: the mask minus its erosion by a (2d+1)² square.

    The erosion treats everything outside the image as background, so mask pixels within ``d`` of
    the image border belong to the band. (A (2d+1)² square is what ``d`` iterations of a 3×3
    erosion give, the construction of the reference helper.) Same type in and out, bool masks.
    """
    m, as_numpy = _as_bool_tensor(mask)
    band = _boundary(m, int(d))
    return band.cpu().numpy() if as_numpy else band


def dilate(mask, d: int):
    """The mask dilated by a (2d+1)² square (chessboard distance ≤ d); same type in and out, bool."""
    m, as_numpy = _as_bool_tensor(mask)
    grown = _per_mask(_dilate_2d, m, int(d))
    return grown.cpu().numpy() if as_numpy else grown


def dilated_roi(gt, ratio: float = 0.02):
    """The region of interest of the ``*_`` columns: each GT mask dilated by ⌈ratio · diagonal⌉ pixels."""
    m, _ = _as_bool_tensor(gt)
    return dilate(gt, roi_radius(m.shape[-2], m.shape[-1], ratio))


# ----------------------------------------------------------------------------------- scores

def iou(pred, gt):
    """Intersection over union per mask: |P ∧ G| / |P ∨ G|; NaN when both masks are empty."""
    p, g, as_numpy = _pair(pred, gt)
    inter = (p & g).flatten(-2).sum(-1)
    union = (p | g).flatten(-2).sum(-1)
    return _ratio(inter, union, as_numpy)


def dice(pred, gt):
    """Dice (= F1) per mask: 2|P ∧ G| / (|P| + |G|); NaN when both masks are empty."""
    p, g, as_numpy = _pair(pred, gt)
    inter = (p & g).flatten(-2).sum(-1)
    total = p.flatten(-2).sum(-1) + g.flatten(-2).sum(-1)
    return _ratio(2 * inter, total, as_numpy)


def boundary_iou(pred, gt, dilation_ratio: float = 0.02):
    """Boundary IoU (Cheng et al. 2021) per mask.

    B(M) = M minus its erosion by d = max(1, round(dilation_ratio · sqrt(H² + W²))) pixels, i.e.
    the pixels of M within distance d (chessboard) of its contour or of the image border;
    BIoU = |B(P) ∧ B(G)| / |B(P) ∨ B(G)|. NaN when both bands are empty (both masks empty).
    The paper reports ratio 0.02 (``BIoU_2``) and 0.01 (``BIoU_1``).
    """
    p, g, as_numpy = _pair(pred, gt)
    d = boundary_width(p.shape[-2], p.shape[-1], dilation_ratio)
    return _band_iou(_boundary(p, d), _boundary(g, d), as_numpy)


def _band_iou(bp: torch.Tensor, bg: torch.Tensor, as_numpy: bool):
    inter = (bp & bg).flatten(-2).sum(-1)
    union = (bp | bg).flatten(-2).sum(-1)
    return _ratio(inter, union, as_numpy)


def confusion(pred, gt, region=None) -> dict[str, torch.Tensor]:
    """Pixel counts per mask (int64 tensors): ``tp``, ``fp``, ``fn``, ``tn`` and ``n`` (region size)."""
    p, g, _ = _pair(pred, gt)
    r = _region(region, p)
    if r is not None:
        p, g = p & r, g & r
        n = r.flatten(-2).sum(-1)
    else:
        n = torch.full(p.shape[:-2], p.shape[-2] * p.shape[-1], dtype=torch.int64, device=p.device)
    tp = (p & g).flatten(-2).sum(-1)
    fp = p.flatten(-2).sum(-1) - tp
    fn = g.flatten(-2).sum(-1) - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": n - tp - fp - fn, "n": n}


def _div(num: torch.Tensor, den: torch.Tensor, when_zero: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp(min=1e-300), when_zero)


def scores_from_confusion(counts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The eight accuracy scores (float64 tensors) from ``confusion`` counts.

    ``IoU`` = TP/(TP+FP+FN); ``dice`` = ``F1`` = 2TP/(2TP+FP+FN); ``MAE`` = (FP+FN)/N (the mean
    |y − P| of the binary prediction); ``acc`` = (TP+TN)/N; ``prec`` = TP/(TP+FP); ``rec`` =
    TP/(TP+FN); ``BER`` = mean of the per-class error rates FP/(TN+FP) and FN/(TP+FN) over the classes
    present in the ground truth (both present: the usual ½(FPR + FNR)).

    Degenerate: N = 0 (empty region) → all NaN. P and G both empty → IoU, dice, F1, prec, rec NaN.
    An empty denominator otherwise (e.g. precision of an empty prediction on a non-empty GT) → 0.
    """
    tp, fp, fn, tn, n = (counts[k].double() for k in ("tp", "fp", "fn", "tn", "n"))
    nan = torch.full_like(n, math.nan)
    zero = torch.zeros_like(n)
    both_empty = (tp + fp + fn) == 0
    zero_or_nan = torch.where(both_empty, nan, zero)
    pos, neg = tp + fn, tn + fp
    fnr = torch.where(pos > 0, fn / pos.clamp(min=1), nan)
    fpr = torch.where(neg > 0, fp / neg.clamp(min=1), nan)
    ber = torch.nanmean(torch.stack([fpr, fnr]), dim=0) if n.numel() else n.clone()
    scores = {
        "IoU": _div(tp, tp + fp + fn, nan),
        "dice": _div(2 * tp, 2 * tp + fp + fn, nan),
        "MAE": _div(fp + fn, n, nan),
        "BER": ber,
        "acc": _div(tp + tn, n, nan),
        "prec": _div(tp, tp + fp, zero_or_nan),
        "rec": _div(tp, tp + fn, zero_or_nan),
    }
    scores["F1"] = scores["dice"].clone()
    empty_region = n == 0
    return {k: torch.where(empty_region, nan, v) for k, v in scores.items()}


def segmentation_scores(pred, gt, region=None) -> dict:
    """``IoU, dice, MAE, BER, acc, prec, rec, F1`` per mask, over the image or the ``region`` pixels
    (the paper's ``*_`` columns use the dilated ROI). Output convention as the other functions."""
    _, _, as_numpy = _pair(pred, gt)
    scores = scores_from_confusion(confusion(pred, gt, region))
    return {k: _out(v, as_numpy) for k, v in scores.items()}
