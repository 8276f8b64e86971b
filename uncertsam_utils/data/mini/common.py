"""Shared helpers of the UncertSAM-mini generator: per-image RNGs, resampling, noise, compositing.

Everything here is vectorised numpy/scipy/PIL; images are float32 RGB in [0, 1] until the very
end, masks are ``bool`` arrays of the image's height and width.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

# Smallest instance kept as a target: the benchmark's box prompt needs a non-empty mask after
# resizing, and the nano model cannot resolve anything much smaller at 256 px.
MIN_MASK_PIXELS = 80
# The smallest square model input in the project (the nano SAM-2). Every target must keep a pixel
# when squashed to it, or it would have no box prompt there (the reference crashes on that).
MODEL_SIZE = 256
# Keep a mask only if its squashed peak coverage clears 0.5 by this margin (PIL's float resize
# and torch's antialiased bilinear agree to ~1e-6; the margin makes the decision safe).
_SURVIVAL_MARGIN = 0.02


def image_rng(seed: int, dataset: str, split: str, index: int) -> np.random.Generator:
    """The generator for one image, derived from (seed, dataset, split, index) only.

    crc32 (not ``hash``) keeps the derivation stable across processes and Python versions, so
    every image can be regenerated on its own, in any order, by any worker.
    """
    key = [int(seed), zlib.crc32(dataset.encode()), zlib.crc32(split.encode()), int(index)]
    return np.random.default_rng(np.random.SeedSequence(key))


def uniform(rng: np.random.Generator, bounds: tuple[float, float] | float) -> float:
    """A draw from a knob given as ``(low, high)``; a plain number is used as it is."""
    if isinstance(bounds, (int, float)):
        return float(bounds)
    low, high = bounds
    return float(rng.uniform(low, high))


def integer(rng: np.random.Generator, bounds: tuple[int, int] | int) -> int:
    """An integer draw from an inclusive ``(low, high)`` knob."""
    if isinstance(bounds, (int, np.integer)):
        return int(bounds)
    low, high = bounds
    return int(rng.integers(low, high + 1))


def resize(array: np.ndarray, height: int, width: int, resample=Image.BILINEAR) -> np.ndarray:
    """Resize a float32 HxW or HxWxC array with PIL (fast C code, deterministic)."""
    array = np.asarray(array, dtype=np.float32)
    if array.shape[:2] == (height, width):
        return array
    if array.ndim == 2:
        return np.asarray(Image.fromarray(array, mode="F").resize((width, height), resample))
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(array[..., c]), mode="F")
                           .resize((width, height), resample)) for c in range(array.shape[2])]
    return np.stack(channels, axis=-1)


def smooth_noise(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-variance-ish noise with blobs of about ``scale`` pixels.

    Drawn on a coarse grid and upsampled bicubically: cheap at any image size.
    """
    gh = max(2, int(np.ceil(height / scale)) + 2)
    gw = max(2, int(np.ceil(width / scale)) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    big = resize(coarse, int(gh * scale), int(gw * scale), Image.BICUBIC)
    y0 = int(rng.integers(0, big.shape[0] - height + 1))
    x0 = int(rng.integers(0, big.shape[1] - width + 1))
    out = big[y0:y0 + height, x0:x0 + width]
    return (out - out.mean()) / (out.std() + 1e-6)


def fractal_noise(rng: np.random.Generator, height: int, width: int, scale: float,
                  octaves: int = 3, persistence: float = 0.5) -> np.ndarray:
    """Sum of smooth noises at halving scales: natural-looking mottling."""
    total = np.zeros((height, width), np.float32)
    amplitude = 1.0
    for _ in range(octaves):
        total += amplitude * smooth_noise(rng, height, width, max(scale, 1.5))
        scale /= 2.0
        amplitude *= persistence
    return (total - total.mean()) / (total.std() + 1e-6)


def blur(array: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the spatial axes only (kernel cut at 2.5 sigma: plenty for soft edges)."""
    if sigma <= 0:
        return np.asarray(array, np.float32)
    sig = (sigma, sigma) + (0,) * (np.ndim(array) - 2)
    return ndimage.gaussian_filter(np.asarray(array, np.float32), sig, mode="nearest", truncate=2.5)


def box_blur(array: np.ndarray, size: float) -> np.ndarray:
    """A cheap wide blur (two box passes ~ Gaussian), cost independent of ``size``."""
    n = max(1, int(round(size)))
    if n == 1:
        return np.asarray(array, np.float32)
    once = ndimage.uniform_filter(np.asarray(array, np.float32), n, mode="nearest")
    return ndimage.uniform_filter(once, n, mode="nearest")


def soft_alpha(mask: np.ndarray, sigma: float) -> np.ndarray:
    """A float alpha matte from a hard mask: anti-aliased (sigma < 1) or feathered edges."""
    return np.clip(blur(mask.astype(np.float32), sigma), 0.0, 1.0)


def composite(image: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha-blend ``layer`` over ``image`` in place-free fashion."""
    a = alpha[..., None] if alpha.ndim == 2 else alpha
    return image * (1.0 - a) + layer * a


def bbox_slices(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """Slices of the bounding box of ``mask`` grown by ``margin`` (clipped to the frame).

    Per-object work (blurs, textures, blending) is done on this window only: at 1024 px a
    full-frame blur per object would dominate the generation time.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    h, w = mask.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)))


def luminance(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def components(mask: np.ndarray, min_pixels: int = MIN_MASK_PIXELS) -> list[np.ndarray]:
    """Connected components (8-connectivity) of ``mask`` with at least ``min_pixels``, largest first."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = [lab for lab in np.argsort(-sizes[1:], kind="stable") + 1 if sizes[lab] >= min_pixels]
    return [labels == lab for lab in keep]


def survives_squash(mask: np.ndarray, size: int = MODEL_SIZE) -> bool:
    """Whether ``mask`` keeps at least one pixel after the benchmark's square resize to ``size``.

    The reference resize is torchvision's antialiased bilinear, the same triangle filter as PIL's
    BILINEAR resize of a float image, so PIL decides it here without importing torch in workers.
    """
    if mask.shape == (size, size):
        return bool(mask.any())
    squashed = resize(mask.astype(np.float32), size, size, Image.BILINEAR)
    return float(squashed.max()) > 0.5 + _SURVIVAL_MARGIN


def keep_large(masks: Sequence[np.ndarray], min_pixels: int = MIN_MASK_PIXELS) -> list[np.ndarray]:
    return [m for m in masks if int(m.sum()) >= min_pixels]
