"""SBU-shadow (Vicente et al., ECCV 2016) -> the UncertSAM layout.

Source layout (``src`` = the ``SBU-shadow`` folder)::

    SBUTrain4KRecoveredSmall/ShadowImages/<name>.jpg   SBUTrain4KRecoveredSmall/ShadowMasks/<name>.png
    SBU-Test/ShadowImages/<name>.jpg                   SBU-Test/ShadowMasks/<name>.png

Instances: 8-connected components of the shadow mask. Splits: SBU-Test -> test; the training set
-> train/val 90/10 by image.
"""

from __future__ import annotations

from pathlib import Path

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.importers.base import (CARVE_VAL, DEFAULT_MIN_AREA, ImportResult, Loaded, SourceImage,
                                                 run_import)
from uncertsam_utils.data.importers.readers import list_files, read_binary_mask, read_rgb, require_dir

NAME = "SBU-shadow"
NATIVE = {"train": "SBUTrain4KRecoveredSmall", "test": "SBU-Test"}
PLAN = {"train": CARVE_VAL, "test": {"test": 1.0}}


def find_sources(src: Path) -> list[SourceImage]:
    sources = []
    for pool, folder in NATIVE.items():
        images = require_dir(src / folder / "ShadowImages", "SBU shadow images")
        masks = require_dir(src / folder / "ShadowMasks", "SBU shadow masks")
        for image_path in list_files(images):
            mask_path = masks / f"{image_path.stem}.png"
            if not mask_path.is_file():
                raise DataError(f"{image_path}: no shadow mask {mask_path}")
            key = f"{folder}/{image_path.name}"
            sources.append(SourceImage(key, key, pool, _loader(image_path, mask_path)))
    return sources


def _loader(image_path: Path, mask_path: Path):
    return lambda: Loaded(read_rgb(image_path), [read_binary_mask(mask_path)], split_components=True)


def import_sbu(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False) -> ImportResult:
    return run_import(NAME, find_sources(Path(src)), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite)
