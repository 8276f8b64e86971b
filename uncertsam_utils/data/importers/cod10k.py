"""COD10K-v3 (Fan et al., CVPR 2020) -> the UncertSAM layout.

Source layout (``src`` = the ``COD10K-v3`` folder)::

    Train/Image/COD10K-CAM-<...>.jpg  Train/GT_Object/<same>.png  Train/GT_Instance/<same>.png
    Test/...                           (likewise; GT_Edge is not needed)

Only camouflaged images (``-CAM-`` in the name) are imported unless ``include_noncam=True``:
5,066 CAM images is what makes the benchmark's "23k+" total add up (datasets.md §1.6).

Instances: the native instances of ``GT_Instance`` (one distinct value per instance, each kept
whole even if it is split by an occluder); for an image without a ``GT_Instance`` file, the
8-connected components of ``GT_Object``. Splits: Test -> test; Train -> train/val 90/10 by image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.importers.base import (CARVE_VAL, DEFAULT_MIN_AREA, ImportResult, Loaded, SourceImage,
                                                 run_import)
from uncertsam_utils.data.importers.readers import (list_files, read_binary_mask, read_label_map, read_rgb,
                                                    require_dir)

NAME = "COD10K-v3"
NATIVE = {"train": "Train", "test": "Test"}
PLAN = {"train": CARVE_VAL, "test": {"test": 1.0}}


def find_sources(src: Path, include_noncam: bool = False) -> list[SourceImage]:
    sources = []
    for pool, folder in NATIVE.items():
        images = require_dir(src / folder / "Image", "COD10K images")
        objects = require_dir(src / folder / "GT_Object", "COD10K object masks")
        instances = src / folder / "GT_Instance"
        for image_path in list_files(images):
            if "-CAM-" not in image_path.name and not include_noncam:
                continue
            object_path = objects / f"{image_path.stem}.png"
            if not object_path.is_file():
                raise DataError(f"{image_path}: no object mask {object_path}")
            instance_path = instances / f"{image_path.stem}.png"
            key = f"{folder}/{image_path.name}"
            sources.append(SourceImage(key, key, pool, _loader(image_path, object_path,
                                                               instance_path if instance_path.is_file() else None)))
    return sources


def _loader(image_path: Path, object_path: Path, instance_path: Path | None):
    def load() -> Loaded:
        image = read_rgb(image_path)
        if instance_path is None:
            return Loaded(image, [read_binary_mask(object_path)], split_components=True)
        labels = read_label_map(instance_path)
        return Loaded(image, [labels == value for value in np.unique(labels) if value != 0], split_components=False)
    return load


def import_cod10k(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False,
                  include_noncam: bool = False) -> ImportResult:
    return run_import(NAME, find_sources(Path(src), include_noncam), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite, options={"include_noncam": include_noncam})
