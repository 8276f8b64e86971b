"""Listing a native folder's source images: each image file paired with its mask file by name.

Most sources store one mask file per image (BIG, COIFT, COD10K-v3, ISTD, SBU, Trans10K); they differ
only in where the masks are, how a mask file is named after its image, and how a mask file becomes
regions. :func:`paired_sources` is that common body; an importer passes its rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.importers.base import Loaded, SourceImage
from uncertsam_utils.data.importers.readers import list_files, read_binary_mask, read_rgb

Loader = Callable[[Path, Path], Callable[[], Loaded]]     # (image file, mask file) -> lazy load


def paired_sources(images: Path, *, pool: str, key_prefix: str, mask_for: Callable[[Path], Path], mask_kind: str,
                   loader: Loader, keep: Callable[[Path], bool] | None = None,
                   group_of: Callable[[Path], str] | None = None) -> list[SourceImage]:
    """One source per image file in ``images`` (sorted by name; ``keep`` filters), paired with the mask
    file ``mask_for(image)``; a missing mask is a DataError naming the image and the ``mask_kind`` it
    lacks. The key is ``key_prefix`` + the image's name; the group is the key unless ``group_of`` says."""
    sources = []
    for image_path in list_files(images):
        if keep is not None and not keep(image_path):
            continue
        mask_path = mask_for(image_path)
        if not mask_path.is_file():
            raise DataError(f"{image_path}: no {mask_kind} {mask_path}")
        key = f"{key_prefix}{image_path.name}"
        group = key if group_of is None else group_of(image_path)
        sources.append(SourceImage(key, group, pool, loader(image_path, mask_path)))
    return sources


def image_with(regions: Callable[[Path], list[np.ndarray]], *, split_components: bool) -> Loader:
    """A loader reading the image as RGB and its mask file into ``regions``."""
    def loader(image_path: Path, mask_path: Path):
        return lambda: Loaded(read_rgb(image_path), regions(mask_path), split_components=split_components)
    return loader


def binary_mask(path: Path) -> list[np.ndarray]:
    """The one region of a binary mask file."""
    return [read_binary_mask(path)]
