"""Correlation between an uncertainty map and the error, per mask: Pearson (the paper's Figure 3)
and Spearman (ours).

``x`` and ``y`` are maps ``(..., H, W)`` (the uncertainty and the soft error |y − p|); an optional
bool ``region`` restricts the pixels. One value per mask; numpy in → numpy float64, torch in →
torch float32.

Degenerate inputs: a constant map (zero variance in the region, e.g. a variance head stuck at its
clamp) gives **0**, as the reference code's ε in the denominator does; an empty region gives NaN;
a non-finite value in the region gives NaN. (The reference divides by √Σ(x−x̄)²·√Σ(e−ē)² + 1e-6;
without the ε, r here does not depend on the scale of the map.)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._ranking import Ranked, subsample_index
from .calibration import _out, _prepare

__all__ = ["pearson", "spearman"]


def pearson(x, y, region=None):
    """Pearson r per mask in float64 (two passes: means, then centred sums)."""
    xv, _, r, as_numpy = _prepare(x, None, region)
    yv, _, _, y_numpy = _prepare(y, None, None)
    if yv.shape != xv.shape:
        raise ValueError(f"x and y shapes differ: {tuple(xv.shape)} vs {tuple(yv.shape)}")
    return _out(_pearson(xv, yv.to(xv.device), r), as_numpy and y_numpy)


def _pearson(x: torch.Tensor, y: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    x = x.double().flatten(-2)
    y = y.double().flatten(-2)
    if region is None:
        w = torch.ones_like(x)
    else:
        w = region.flatten(-2).double()
        x = torch.where(region.flatten(-2), x, torch.zeros_like(x))
        y = torch.where(region.flatten(-2), y, torch.zeros_like(y))
    n = w.sum(-1)
    safe_n = n.clamp(min=1)[..., None]
    xc = (x - x.sum(-1, keepdim=True) / safe_n) * w
    yc = (y - y.sum(-1, keepdim=True) / safe_n) * w
    cov = (xc * yc).sum(-1)
    den = torch.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    r = torch.where(den > 0, cov / den.clamp(min=1e-300), torch.zeros_like(cov))
    r = torch.where(torch.isfinite(den) & torch.isfinite(cov), r, torch.full_like(r, math.nan))
    return torch.where(n > 0, r, torch.full_like(r, math.nan))


def _flat_rows(values, region, max_pixels: int | None):
    """Per mask: the region's values (1-D numpy), evenly subsampled to ``max_pixels`` if given."""
    v = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    flat = v.reshape(-1, v.shape[-2] * v.shape[-1])
    if region is None:
        idx = subsample_index(flat.shape[1], max_pixels)
        return [row if idx is None else row[idx] for row in flat]
    rg = region.detach().cpu().numpy() if isinstance(region, torch.Tensor) else np.asarray(region)
    rows = []
    for row, keep in zip(flat, rg.reshape(flat.shape).astype(bool)):
        where = np.flatnonzero(keep)
        idx = subsample_index(where.shape[0], max_pixels)
        rows.append(row[where if idx is None else where[idx]])
    return rows


def spearman(x, y, region=None, *, max_pixels: int | None = None):
    """Spearman ρ per mask: Pearson r of the average ranks (scipy.stats.spearmanr); constant → 0.
    ``max_pixels`` evaluates at most that many region pixels, evenly spaced in raster order."""
    xv, _, r, as_numpy = _prepare(x, None, region)
    yv, _, _, y_numpy = _prepare(y, None, None)
    if yv.shape != xv.shape:
        raise ValueError(f"x and y shapes differ: {tuple(xv.shape)} vs {tuple(yv.shape)}")
    values = []
    for xs, ys in zip(_flat_rows(xv, r, max_pixels), _flat_rows(yv, r, max_pixels)):
        finite = np.isfinite(xs).all() and np.isfinite(ys).all()
        values.append(Ranked(xs.astype(np.float32), ys.astype(np.float32)).spearman() if finite else math.nan)
    out = torch.tensor(values, dtype=torch.float64).reshape(xv.shape[:-2])
    return _out(out, as_numpy and y_numpy)
