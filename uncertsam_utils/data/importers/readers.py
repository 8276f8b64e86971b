"""Reading native dataset files: images, binary masks, label maps, and connected components."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from uncertsam_utils.data.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: folder not found ({what})")
    return path


def list_files(folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Regular files with one of ``suffixes`` (case-insensitive), sorted by name. Hidden files such as
    macOS '._name' metadata are not images and are left out."""
    suffixes = tuple(s.lower() for s in suffixes)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes)


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read the image, truncated or corrupt? ({err})") from err
    return img


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB. EXIF orientation is not applied: masks follow the stored pixel grid."""
    with _open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_rgb_mask(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 of a colour-coded mask (alpha dropped, palettes expanded)."""
    return read_rgb(path)


def read_binary_mask(path: Path) -> np.ndarray:
    """(H, W) bool foreground of a binary mask. Grey masks: value >= 128 for 0/255 masks, value == 1 for
    0/1 masks (maximum 1). Colour or palette masks: the brightest channel, by the same rule."""
    with _open(path) as img:
        if img.mode in ("L", "I", "I;16", "1"):
            values = np.asarray(img)
        else:
            values = np.asarray(img.convert("RGB")).max(axis=-1)
    return values >= 128 if values.max() > 1 else values == 1


def read_label_map(path: Path) -> np.ndarray:
    """(H, W) int64 labels, one distinct value per object (0 = background): palette indices for 'P'
    images, grey values for 'L'/'I', and the packed 24-bit colour for RGB(A)."""
    with _open(path) as img:
        if img.mode in ("RGB", "RGBA"):
            rgb = np.asarray(img.convert("RGB")).astype(np.int64)
            return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        if img.mode in ("P", "L", "I", "I;16", "1"):
            return np.asarray(img).astype(np.int64)
        return np.asarray(img.convert("L")).astype(np.int64)


def connected_components(mask: np.ndarray, min_area: int) -> tuple[list[np.ndarray], int]:
    """8-connected components of a bool mask with at least ``min_area`` pixels (in label order, i.e.
    by first pixel in raster order), and how many smaller ones were left out."""
    labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if count == 0:
        return [], 0
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    keep = np.flatnonzero(areas >= min_area) + 1
    boxes = ndimage.find_objects(labels)
    components = []
    for label in keep:
        component = np.zeros(mask.shape, dtype=bool)
        window = boxes[label - 1]
        component[window] = labels[window] == label    # only the component's box is scanned
        components.append(component)
    return components, int(count - keep.size)
