"""Trans10K v1 (Xie et al., ECCV 2020) -> the UncertSAM layout.

Source layout (``src`` = the ``Trans10K`` folder)::

    train/images/<name>.jpg        train/masks/<name>_mask.png
    validation/{easy,hard}/images  validation/{easy,hard}/masks
    test/{easy,hard}/images        test/{easy,hard}/masks

Masks are colour-coded; like the authors' loader we take the mean of R, G, B: 85 (one saturated
channel) = "things" (cups, bottles), 255 (white) = "stuff" (windows, glass walls), anything else =
background. Instances: 8-connected components of each class separately. Splits: the native ones
(validation -> val; easy and hard merged).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.importers.base import DEFAULT_MIN_AREA, Found, ImportResult, run_import
from uncertsam_utils.data.importers.readers import read_rgb_mask, require_dir
from uncertsam_utils.data.importers.sources import image_with, paired_sources

NAME = "Trans10K"
PLAN = {"train": {"train": 1.0}, "validation": {"val": 1.0}, "test": {"test": 1.0}}
THINGS_SUM, STUFF_SUM = 255, 765      # R+G+B of mean 85 and of mean 255


def find_sources(src: Path) -> Found:
    found = Found(NAME, src)
    for native in PLAN:
        base = src / native
        if not found.part(native, (base, f"Trans10K {native} split, images/ + masks/ below it")):
            continue
        image_dirs = sorted(p for p in base.rglob("images") if p.is_dir())
        if not image_dirs:
            raise DataError(f"{base}: no images/ folder below it")
        for images in image_dirs:
            masks = require_dir(images.parent / "masks", "Trans10K masks next to images/")
            found.sources += paired_sources(images, pool=native, key_prefix=f"{images.relative_to(src).as_posix()}/",
                                            mask_for=lambda p: masks / f"{p.stem}_mask.png", mask_kind="mask",
                                            loader=image_with(_class_maps_of, split_components=True))
    return found


def class_maps(rgb: np.ndarray) -> list[np.ndarray]:
    """[things, stuff] bool maps of a Trans10K v1 colour mask."""
    total = rgb.astype(np.int64).sum(axis=-1)
    return [total == THINGS_SUM, total == STUFF_SUM]


def _class_maps_of(mask_path: Path) -> list[np.ndarray]:
    return class_maps(read_rgb_mask(mask_path))


def import_trans10k(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False) -> ImportResult:
    return run_import(find_sources(Path(src)), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite)
