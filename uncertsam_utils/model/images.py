"""Bring any supported image into the RGB uint8 layout the predictor expects."""

from __future__ import annotations

import numpy as np


def to_rgb_uint8(image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an RGB/RGBA/grayscale array or PIL image, 8- or 16-bit.

    Grayscale is replicated to three channels; RGBA drops alpha (SAM-2 sees colour only);
    16-bit is scaled linearly (65535 → 255). Anything else is an error, never a guess."""
    if hasattr(image, "mode") and hasattr(image, "size"):  # PIL image without importing PIL here
        image = np.asarray(image)
    array = np.asarray(image)
    if array.dtype == np.uint16:
        array = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif array.dtype == np.int32 and array.size and array.min() >= 0 and array.max() <= 65535:  # PIL "I;16" → int32
        array = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(
            f"unsupported image dtype {array.dtype}: expected uint8 or uint16 "
            "(convert float images with (img * 255).round().astype(np.uint8))"
        )
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    raise ValueError(f"unsupported image shape {array.shape}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
