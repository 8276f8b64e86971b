"""ISTD (Wang et al., CVPR 2018) -> the UncertSAM layout.

Source layout (``src`` = the folder holding ``train/`` and ``test/``, e.g. ``ISTD_Dataset``)::

    train/train_A/<name>.png   shadow image        train/train_B/<name>.png   shadow mask (0/255)
    test/test_A/<name>.png                          test/test_B/<name>.png
    (train_C / test_C, the shadow-free images, are not needed)

Instances: 8-connected components of the shadow mask (the paper's Fig. 2 shows separate blobs as
separate masks). Splits: native test -> test; native train -> train/val 90/10 by *scene*, the part of
the name before the first '-' (ISTD photographs each scene several times; keeping a scene in one
split avoids near-duplicates across train and val).
"""

from __future__ import annotations

from pathlib import Path

from uncertsam_utils.data.importers.base import CARVE_VAL, DEFAULT_MIN_AREA, Found, ImportResult, run_import
from uncertsam_utils.data.importers.sources import binary_mask, image_with, paired_sources

NAME = "ISTD"
PLAN = {"train": CARVE_VAL, "test": {"test": 1.0}}


def find_sources(src: Path) -> Found:
    found = Found(NAME, src)
    for native in ("train", "test"):
        images, masks = src / native / f"{native}_A", src / native / f"{native}_B"
        if found.part(native, (images, "ISTD shadow images"), (masks, "ISTD shadow masks")):
            found.sources += paired_sources(images, pool=native, key_prefix=f"{native}/",
                                            mask_for=lambda p: _mask_for(p, masks), mask_kind="shadow mask",
                                            group_of=lambda p: p.stem.split("-")[0],
                                            loader=image_with(binary_mask, split_components=True))
    return found


def _mask_for(image_path: Path, masks: Path) -> Path:
    """The mask of the same name, or of the same stem as PNG (the first when neither exists)."""
    for candidate in (masks / image_path.name, masks / f"{image_path.stem}.png"):
        if candidate.is_file():
            return candidate
    return masks / image_path.name


def import_istd(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False) -> ImportResult:
    return run_import(find_sources(Path(src)), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite)
