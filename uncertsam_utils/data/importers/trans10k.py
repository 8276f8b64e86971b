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
from uncertsam_utils.data.importers.base import DEFAULT_MIN_AREA, ImportResult, Loaded, SourceImage, run_import
from uncertsam_utils.data.importers.readers import list_files, read_rgb, read_rgb_mask, require_dir

NAME = "Trans10K"
PLAN = {"train": {"train": 1.0}, "validation": {"val": 1.0}, "test": {"test": 1.0}}
THINGS_SUM, STUFF_SUM = 255, 765      # R+G+B of mean 85 and of mean 255


def find_sources(src: Path) -> list[SourceImage]:
    sources = []
    for native in PLAN:
        base = require_dir(src / native, f"Trans10K {native} split")
        image_dirs = sorted(p for p in base.rglob("images") if p.is_dir())
        if not image_dirs:
            raise DataError(f"{base}: no images/ folder below it")
        for images in image_dirs:
            masks = require_dir(images.parent / "masks", "Trans10K masks next to images/")
            for image_path in list_files(images):
                mask_path = masks / f"{image_path.stem}_mask.png"
                if not mask_path.is_file():
                    raise DataError(f"{image_path}: no mask {mask_path}")
                key = image_path.relative_to(src).as_posix()
                sources.append(SourceImage(key, key, native, _loader(image_path, mask_path)))
    return sources


def class_maps(rgb: np.ndarray) -> list[np.ndarray]:
    """[things, stuff] bool maps of a Trans10K v1 colour mask."""
    total = rgb.astype(np.int64).sum(axis=-1)
    return [total == THINGS_SUM, total == STUFF_SUM]


def _loader(image_path: Path, mask_path: Path):
    return lambda: Loaded(read_rgb(image_path), class_maps(read_rgb_mask(mask_path)), split_components=True)


def import_trans10k(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False) -> ImportResult:
    return run_import(NAME, find_sources(Path(src)), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite)
