"""The paper's square resize of ground-truth masks, the box prompt taken from it, and a fast test
for masks that vanish in that resize.

The reference pipeline squashes every image and mask to ``size`` x ``size`` (aspect ratio ignored)
with torchvision's ``F.resize`` on the uint8 0/1 mask tensor: bilinear, ``align_corners=False``,
antialiasing on (torchvision >= 0.17), computed in float32 and rounded back to uint8. Rounding a
value in [0, 1] half-to-even is the same as ``value > 0.5``. The box prompt is the inclusive min/max
of the nonzero pixel indices of that resized mask, ``[x0, y0, x1, y1]``; an empty resized mask has no
box (the reference crashes on it), so the reader drops such masks up front (:class:`ResizeSurvival`).

torch is imported inside the functions so that importing the data layer stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from uncertsam_utils.data.rle import ParsedRle

# Decode/resize masks in chunks of at most this many float32 bytes (BIG images are ~18 Mpx each).
_CHUNK_BYTES = 256 * 2**20
# Margins that make the fast decisions safe against float32 rounding in torch (errors are ~1e-6).
_PROOF_MARGIN = 1e-3
_TIE_BAND = 1e-4
# The exact crop computation is used while its multiply-adds stay under this many times the pixels a
# full torch resize touches (H*W + size*size); beyond that, torch is faster.
_CROP_COST_FACTOR = 2.0


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) bool masks -> (N, size, size) bool, exactly as the paper's eval transform resizes them."""
    import torch
    import torch.nn.functional as F

    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"expected (N, H, W) masks, got shape {masks.shape}")
    n, height, width = masks.shape
    if (height, width) == (size, size):
        return masks.astype(bool, copy=True)
    out = np.empty((n, size, size), dtype=bool)
    per_mask = 4 * max(height * width, size * size)
    step = max(1, _CHUNK_BYTES // per_mask)
    for start in range(0, n, step):
        chunk = torch.from_numpy(masks[start:start + step].astype(np.float32))[:, None]
        resized = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start:start + step] = (resized[:, 0] > 0.5).numpy()
    return out


def boxes_from_masks(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight inclusive boxes ``[x0, y0, x1, y1]`` (float32) of (N, H, W) bool masks, and which are empty."""
    rows = masks.any(axis=2)   # (N, H): does row y hold a foreground pixel
    cols = masks.any(axis=1)   # (N, W)
    empty = ~rows.any(axis=1)
    height, width = masks.shape[1:]
    y0 = rows.argmax(axis=1)
    y1 = height - 1 - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = width - 1 - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)
    boxes[empty] = np.nan
    return boxes, empty


@dataclass(frozen=True)
class _AxisWeights:
    """The 1-D weights of torch's antialiased bilinear resize along one axis, banded: output pixel i
    reads input pixels ``first[i] + k`` with weight ``band[i, k]``."""

    first: np.ndarray     # (out,) int64
    band: np.ndarray      # (out, K) float64, zero past each pixel's support
    colsum: np.ndarray    # (in,) total weight each input pixel gives to all outputs
    lo: np.ndarray        # (out,) first input pixel with nonzero weight
    hi: np.ndarray        # (out,) last input pixel with nonzero weight

    def dense(self, rows: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Rows ``rows`` of the full (out, in) weight matrix, input columns start..stop inclusive."""
        cols = self.first[rows, None] + np.arange(self.band.shape[1])
        vals = self.band[rows]
        keep = (cols >= start) & (cols <= stop) & (vals != 0)
        out = np.zeros((rows.size, stop - start + 1))
        r, k = np.nonzero(keep)
        out[r, cols[r, k] - start] = vals[r, k]
        return out


@lru_cache(maxsize=64)
def _axis_weights(in_size: int, out_size: int) -> _AxisWeights:
    # The same formula as ATen's antialiased bilinear kernel (upsample_bilinear2d_aa, align_corners=False):
    # output i is centred at scale*(i+0.5) in input coordinates; a triangle filter of half-width
    # max(scale, 1) is sampled at the input pixel centres inside [centre - support, centre + support],
    # truncated to the image and normalised to sum 1. The tests compare it with torch's impulse responses.
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0
    inv_scale = 1.0 / scale if scale >= 1.0 else 1.0
    width = int(np.ceil(support)) * 2 + 1
    centre = scale * (np.arange(out_size) + 0.5)
    first = np.maximum(np.trunc(centre - support + 0.5), 0).astype(np.int64)
    count = np.clip(np.minimum(np.trunc(centre + support + 0.5).astype(np.int64), in_size) - first, 0, width)
    k = np.arange(width)
    band = np.clip(1.0 - np.abs((first[:, None] + k - centre[:, None] + 0.5) * inv_scale), 0.0, None)
    band[k[None, :] >= count[:, None]] = 0.0
    total = band.sum(axis=1, keepdims=True)
    band = np.divide(band, total, out=np.zeros_like(band), where=total != 0)
    nonzero = band > 0
    lo = first + nonzero.argmax(axis=1)
    hi = first + width - 1 - nonzero[:, ::-1].argmax(axis=1)
    cols = (first[:, None] + k)[nonzero]
    colsum = np.bincount(cols, weights=band[nonzero], minlength=in_size)[:in_size]
    return _AxisWeights(first, band, colsum, lo, hi)


class ResizeSurvival:
    """Decides whether a mask keeps at least one pixel after :func:`resize_masks` to ``size``.

    Exact, but avoids a full resize for almost every mask:

    1. Proof by counting (no decoding): the resize is ``out = Wh @ M @ Ww.T``, so the total of
       ``out`` is at least ``area * min(column sums of Wh over the box rows) * min(... of Ww)``, and
       only the output pixels whose support meets the mask's box can be nonzero. If the total exceeds
       half their number, one of them exceeds 0.5.
    2. Otherwise the same product restricted to the box crop (cheap for small masks, float64).
    3. Values within a hair of 0.5, or crops too big for 2 to be quicker, go through torch itself.
    """

    def __init__(self, size: int):
        self.size = int(size)

    def survives(self, rle: ParsedRle) -> bool:
        if rle.area == 0:
            return False
        from uncertsam_utils.data.rle import decode_box, decode_masks

        return self._decide(rle.height, rle.width, rle.area, rle.bbox,
                            lambda: decode_box(rle, *rle.bbox), lambda: decode_masks([rle]))

    def survives_mask(self, mask: np.ndarray) -> bool:
        """The same decision for a dense (H, W) bool mask."""
        mask = np.asarray(mask, dtype=bool)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return False
        bbox = (int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1]))
        y0, x0, y1, x1 = bbox
        return self._decide(mask.shape[0], mask.shape[1], int(mask.sum()), bbox,
                            lambda: mask[y0:y1 + 1, x0:x1 + 1], lambda: mask[None])

    def _decide(self, height, width, area, bbox, crop, full) -> bool:
        y0, x0, y1, x1 = bbox
        along_h, along_w = _axis_weights(height, self.size), _axis_weights(width, self.size)
        rows = np.flatnonzero((along_h.lo <= y1) & (along_h.hi >= y0))   # outputs that can see the box
        cols = np.flatnonzero((along_w.lo <= x1) & (along_w.hi >= x0))
        lower_total = area * along_h.colsum[y0:y1 + 1].min() * along_w.colsum[x0:x1 + 1].min()
        if lower_total > (0.5 + _PROOF_MARGIN) * rows.size * cols.size:
            return True
        bh, bw = y1 - y0 + 1, x1 - x0 + 1
        cost = min(rows.size * bh * bw + rows.size * bw * cols.size,
                   bh * bw * cols.size + rows.size * bh * cols.size)
        if cost <= _CROP_COST_FACTOR * (height * width + self.size * self.size):
            out = along_h.dense(rows, y0, y1) @ crop().astype(np.float64) @ along_w.dense(cols, x0, x1).T
            peak = float(out.max())
            if peak > 0.5 + _TIE_BAND:
                return True
            if peak < 0.5 - _TIE_BAND:
                return False
        return bool(resize_masks(full(), self.size).any())
