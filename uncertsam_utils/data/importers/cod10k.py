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

from uncertsam_utils.data.importers.base import CARVE_VAL, DEFAULT_MIN_AREA, Found, ImportResult, Loaded, run_import
from uncertsam_utils.data.importers.readers import read_binary_mask, read_label_map, read_rgb
from uncertsam_utils.data.importers.sources import paired_sources

NAME = "COD10K-v3"
NATIVE = {"train": "Train", "test": "Test"}
PLAN = {"train": CARVE_VAL, "test": {"test": 1.0}}


def find_sources(src: Path, include_noncam: bool = False) -> Found:
    found = Found(NAME, src)
    for pool, folder in NATIVE.items():
        images, objects = src / folder / "Image", src / folder / "GT_Object"
        if found.part(pool, (images, "COD10K images"), (objects, "COD10K object masks")):
            found.sources += paired_sources(images, pool=pool, key_prefix=f"{folder}/",
                                            keep=lambda p: include_noncam or "-CAM-" in p.name,
                                            mask_for=lambda p: objects / f"{p.stem}.png", mask_kind="object mask",
                                            loader=_loader_with(src / folder / "GT_Instance"))
    return found


def _loader_with(instances: Path):
    """Loads the native instance map when there is one for the image, else the object mask."""
    def loader(image_path: Path, object_path: Path):
        instance_path = instances / f"{image_path.stem}.png"
        return _loader(image_path, object_path, instance_path if instance_path.is_file() else None)
    return loader


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
    return run_import(find_sources(Path(src), include_noncam), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite, options={"include_noncam": include_noncam})
