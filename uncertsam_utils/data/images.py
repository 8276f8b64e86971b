"""JPEG files of the layout: strict reading (JPEG only, never a partial image) and deterministic writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from uncertsam_utils.data.errors import DataError


def jpeg_size(path: Path) -> tuple[int, int]:
    """(H, W) from the JPEG header, without decoding the pixels."""
    with _open_jpeg(path) as img:
        return img.height, img.width


def read_jpeg(path: Path) -> np.ndarray:
    """Decode a JPEG to (H, W, 3) uint8 RGB; DataError naming the file if it is not a complete JPEG.

    Relies on Pillow's default ``ImageFile.LOAD_TRUNCATED_IMAGES = False``: with it, a truncated
    file raises instead of coming back with grey rows. EXIF orientation is deliberately not applied
    (masks are aligned with the stored pixel grid, as in the reference reader).
    """
    with _open_jpeg(path) as img:
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise DataError(f"{path}: JPEG cannot be decoded, the file is truncated or corrupt ({err})") from err
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Write (H, W, 3) uint8 RGB as JPEG. The same array and quality always give the same bytes.

    Chroma subsampling is off (4:4:4) so thin coloured structures are not smeared across the mask
    boundary; no EXIF or other metadata is written.
    """
    Image.fromarray(image).save(path, format="JPEG", quality=int(quality), subsampling=0,
                                            optimize=False, progressive=False)


def _open_jpeg(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
    except FileNotFoundError as err:
        raise DataError(f"{path}: image file is missing") from err
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{path}: not a readable image, or truncated or corrupt ({err})") from err
    if img.format != "JPEG":
        img.close()
        raise DataError(f"{path}: expected a JPEG file, found {img.format or 'an unknown format'}")
    return img
