"""How well the uncertainty finds the errors, per mask (beyond the paper): AUROC and AUPR of the
uncertainty as a score for the misclassified pixels (P ≠ y), and the area under the sparsification
error curve (AUSE) of the soft error |y − p|.

All are exact and tie-aware (tied pixels share a rank / a threshold; see ``_ranking``), computed on
the pixels of the mask's image or of a bool ``region``; one value per mask; numpy in → numpy
float64, torch in → torch float32. ``max_pixels`` (default: no cap) evaluates at most that many
region pixels, evenly spaced in raster order (deterministic).

Degenerate inputs: no misclassified pixel, or no correct one → AUROC NaN; no misclassified pixel →
AUPR NaN; a constant map → AUROC 0.5, AUPR = the error rate, AUSE = the area between the flat curve
and the oracle's; an empty region or a non-finite value → NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._ranking import Ranked
from .calibration import _out, _prepare
from .correlation import _flat_rows

__all__ = ["auroc", "aupr", "ause", "ranking_scores", "RANKING_SCORES"]

RANKING_SCORES = ("spearman", "auroc", "aupr", "ause")


def ranking_scores(uncertainty, error, misclassified, region=None, *, max_pixels: int | None = None) -> dict:
    """``spearman`` (u vs e), ``auroc`` and ``aupr`` (u for z), ``ause`` (u vs e), sharing one sort of u
    per mask. ``error`` e = |y − p|, ``misclassified`` z = (P ≠ y), all ``(..., H, W)``."""
    u, _, r, as_numpy = _prepare(uncertainty, None, region)
    e, _, _, _ = _prepare(error, None, None)
    z, _, _, _ = _prepare(misclassified, None, None)
    if e.shape != u.shape or z.shape != u.shape:
        raise ValueError("uncertainty, error and misclassified must have the same shape")
    rows = zip(_flat_rows(u, r, max_pixels), _flat_rows(e, r, max_pixels), _flat_rows(z, r, max_pixels))
    out = {name: [] for name in RANKING_SCORES}
    for us, es, zs in rows:
        if us.shape[0] == 0 or not (np.isfinite(us).all() and np.isfinite(es).all()):
            for name in RANKING_SCORES:
                out[name].append(math.nan)
            continue
        ranked = Ranked(us.astype(np.float32), es.astype(np.float32), zs.astype(bool))
        for name in RANKING_SCORES:
            out[name].append(getattr(ranked, name)())
    lead = u.shape[:-2]
    return {name: _out(torch.tensor(v, dtype=torch.float64).reshape(lead), as_numpy) for name, v in out.items()}


def auroc(score, positive, region=None, *, max_pixels: int | None = None):
    """Area under the ROC curve of ``score`` for the ``positive`` pixels (sklearn's roc_auc_score)."""
    return _single("auroc", score, positive, region, max_pixels)


def aupr(score, positive, region=None, *, max_pixels: int | None = None):
    """Average precision of ``score`` for the ``positive`` pixels (sklearn's average_precision_score)."""
    return _single("aupr", score, positive, region, max_pixels)


def ause(uncertainty, error, region=None, *, max_pixels: int | None = None):
    """Area under the sparsification error curve (u ranks e; oracle: e ranks itself)."""
    s, _, _, as_numpy = _prepare(uncertainty, None, region)
    zeros = torch.zeros(s.shape, dtype=torch.bool)
    out = ranking_scores(uncertainty, error, zeros.numpy() if as_numpy else zeros, region, max_pixels=max_pixels)
    return out["ause"]


def _single(name: str, score, positive, region, max_pixels):
    s, _, _, as_numpy = _prepare(score, None, region)
    zeros = np.zeros(tuple(s.shape), np.float32)
    return ranking_scores(score, zeros if as_numpy else torch.from_numpy(zeros), positive, region,
                          max_pixels=max_pixels)[name]
