"""Measurements of what makes a domain hard, for tests and for tuning the domain knobs.

All take an image (uint8 or float in [0, 1]) and one target mask at native resolution.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from uncertsam_utils.data.mini.common import MODEL_SIZE, bbox_slices, luminance, resize


def _float(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


def surround(mask: np.ndarray, width: int | None = None) -> np.ndarray:
    """The band just outside ``mask``; ``width`` defaults to 4 px at the model's 256 px input."""
    if width is None:
        width = max(2, round(4 * max(mask.shape) / MODEL_SIZE))
    ys, xs = bbox_slices(mask, width + 1)
    local = mask[ys, xs]
    band = (ndimage.distance_transform_edt(~local) <= width) & ~local
    out = np.zeros_like(mask)
    out[ys, xs] = band
    return out


def colour_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """RGB distance between the mean colour inside the mask and just outside it (low = camouflaged)."""
    img = _float(image)
    return float(np.linalg.norm(img[mask].mean(0) - img[surround(mask)].mean(0)))


def luminance_ratio(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean luminance inside over mean luminance just outside (< 1: darker than its surroundings)."""
    lum = luminance(_float(image))
    return float(lum[mask].mean() / max(lum[surround(mask)].mean(), 1e-6))


def thin_fraction(mask: np.ndarray, size: int = MODEL_SIZE) -> float:
    """Share of the mask lost at the model's input: squashed to ``size``, the coverage outside the
    binarised mask after a 3x3 opening (structures under ~3 input pixels wide)."""
    coverage = resize(mask.astype(np.float32), size, size, Image.BILINEAR)
    kept = ndimage.binary_opening(coverage > 0.5, structure=np.ones((3, 3), bool))
    total = float(coverage.sum())
    return float((coverage * ~kept).sum() / total) if total > 0 else 1.0


def is_grey(image: np.ndarray, tolerance: float = 3.0) -> bool:
    """Whether an RGB image is grey (channels equal up to JPEG rounding, in uint8 levels)."""
    img = np.asarray(image, np.float32)
    return float(np.abs(img - img.mean(axis=-1, keepdims=True)).max()) <= tolerance
