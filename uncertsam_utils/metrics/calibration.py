"""Calibration and map statistics per mask: ECE, Brier score, sharpness, mean sample std.

``prob`` is the predicted foreground probability p, ``gt`` the binary ground truth y, both
``(..., H, W)``; an optional bool ``region`` restricts the pixels (the dilated ROI for the ``*_``
columns). One value per mask; numpy in → numpy float64 out, torch in → torch float32 out.
Sums run in float64. An empty region gives NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["ece", "brier", "region_mean", "sharpness", "soft_error", "ECE_BINS"]

ECE_BINS = 10


def _tensor(x) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    return torch.from_numpy(np.asarray(x)), True


def _prepare(values, gt=None, region=None):
    v, as_numpy = _tensor(values)
    if v.ndim < 2:
        raise ValueError(f"maps must have shape (..., H, W), got {tuple(v.shape)}")
    g = r = None
    if gt is not None:
        g, g_numpy = _binary_like(gt, v, "map and gt shapes differ: {map} vs {other}")
        as_numpy = as_numpy and g_numpy
    if region is not None:
        r, _ = _binary_like(region, v, "region shape {other} differs from the maps' {map}")
    return v, g, r, as_numpy


def _binary_like(x, v: torch.Tensor, mismatch: str) -> tuple[torch.Tensor, bool]:
    """``x != 0`` on ``v``'s device, and whether ``x`` was numpy; ``mismatch`` (with ``{map}`` and ``{other}``
    for the two shapes) is the error when the shapes differ."""
    t, as_numpy = _tensor(x)
    if t.shape != v.shape:
        raise ValueError(mismatch.format(map=tuple(v.shape), other=tuple(t.shape)))
    return (t != 0).to(v.device), as_numpy


def _out(value: torch.Tensor, as_numpy: bool):
    return value.cpu().numpy() if as_numpy else value.float()


def _mean(values: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """float64 mean over the last two dims (over the region's pixels); NaN for an empty region."""
    v = values.double()
    if region is None:
        return v.flatten(-2).mean(-1)
    n = region.flatten(-2).sum(-1).double()
    total = torch.where(region, v, torch.zeros_like(v)).flatten(-2).sum(-1)
    return torch.where(n > 0, total / n.clamp(min=1), torch.full_like(n, math.nan))


def region_mean(values, region=None):
    """Mean of a map per mask, over the image or the region."""
    v, _, r, as_numpy = _prepare(values, None, region)
    return _out(_mean(v, r), as_numpy)


def sharpness(uncertainty, region=None):
    """The paper's ``sharp``: the mean of the uncertainty map (can be negative, e.g. a log-variance)."""
    return region_mean(uncertainty, region)


def soft_error(prob, gt):
    """|y − p| (float32), the error the paper correlates with the uncertainty."""
    p, g, _, as_numpy = _prepare(prob, gt)
    err = (g.float() - p.float()).abs()
    return err.cpu().numpy() if as_numpy else err


def brier(prob, gt, region=None):
    """Mean (p − y)² per mask."""
    p, g, r, as_numpy = _prepare(prob, gt, region)
    return _out(_mean((p.double() - g.double()) ** 2, r), as_numpy)


def ece(prob, gt, region=None, n_bins: int = ECE_BINS):
    """Expected calibration error as torchmetrics' ``BinaryCalibrationError(n_bins, norm='l1')``.

    For binary tasks torchmetrics takes p(foreground) as the confidence and y as the accuracy:
    ECE = Σ_b (n_b / N) · |mean(y in b) − mean(p in b)| = Σ_b |Σ_{b} y − Σ_{b} p| / N, with
    ``n_bins`` equal-width bins on [0, 1] and torchmetrics' bin assignment
    (``bucketize(p, linspace(0, 1, n_bins + 1), right=True) − 1``, so p = 1 exactly has its own bin).
    Probabilities outside [0, 1] are an error (pass probabilities, not logits). Empty region → NaN.
    """
    p, g, r, as_numpy = _prepare(prob, gt, region)
    if not p.is_floating_point():
        raise TypeError("ece needs floating-point probabilities")
    if p.numel() and (p.min() < 0 or p.max() > 1):
        raise ValueError("ece needs probabilities in [0, 1]")
    lead = p.shape[:-2]
    pf = p.reshape(-1, p.shape[-2] * p.shape[-1])
    gf = g.reshape(pf.shape).double()
    boundaries = torch.linspace(0, 1, n_bins + 1, dtype=pf.dtype, device=pf.device)
    bins = torch.bucketize(pf, boundaries, right=True) - 1  # 0 .. n_bins (p == 1 alone in the last)
    if r is not None:
        w = r.reshape(pf.shape).double()
    else:
        w = torch.ones_like(gf)
    rows = pf.shape[0]
    slots = n_bins + 1
    index = bins + slots * torch.arange(rows, device=pf.device)[:, None]
    diff = torch.zeros(rows * slots, dtype=torch.float64, device=pf.device)
    diff.index_add_(0, index.reshape(-1), ((gf - pf.double()) * w).reshape(-1))
    n = w.sum(-1)
    value = diff.reshape(rows, slots).abs().sum(-1) / n.clamp(min=1)
    value = torch.where(n > 0, value, torch.full_like(value, math.nan))
    return _out(value.reshape(lead), as_numpy)
