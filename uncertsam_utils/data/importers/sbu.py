"""SBU-shadow (Vicente et al., ECCV 2016) -> the UncertSAM layout.

Source layout (``src`` = the ``SBU-shadow`` folder)::

    SBUTrain4KRecoveredSmall/ShadowImages/<name>.jpg   SBUTrain4KRecoveredSmall/ShadowMasks/<name>.png
    SBU-Test/ShadowImages/<name>.jpg                   SBU-Test/ShadowMasks/<name>.png

Instances: 8-connected components of the shadow mask. Splits: SBU-Test -> test; the training set
-> train/val 90/10 by image.
"""

from __future__ import annotations

from pathlib import Path

from uncertsam_utils.data.importers.base import CARVE_VAL, DEFAULT_MIN_AREA, Found, ImportResult, run_import
from uncertsam_utils.data.importers.sources import binary_mask, image_with, paired_sources

NAME = "SBU-shadow"
NATIVE = {"train": "SBUTrain4KRecoveredSmall", "test": "SBU-Test"}
PLAN = {"train": CARVE_VAL, "test": {"test": 1.0}}


def find_sources(src: Path) -> Found:
    found = Found(NAME, src)
    for pool, folder in NATIVE.items():
        images, masks = src / folder / "ShadowImages", src / folder / "ShadowMasks"
        if found.part(pool, (images, "SBU shadow images"), (masks, "SBU shadow masks")):
            found.sources += paired_sources(images, pool=pool, key_prefix=f"{folder}/",
                                            mask_for=lambda p: masks / f"{p.stem}.png", mask_kind="shadow mask",
                                            loader=image_with(binary_mask, split_components=True))
    return found


def import_sbu(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False) -> ImportResult:
    return run_import(find_sources(Path(src)), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite)
