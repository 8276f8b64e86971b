"""COIFT (Mansilla & Miranda, ICIP 2016; as redistributed in HQSeg-44K) -> the UncertSAM layout.

Source layout (``src`` = the ``COIFT`` folder)::

    images/<name>.jpg   masks/<name>.png   (280 images; list/ if present is ignored)

Masks are read as binary (>= 128, as HQ-SAM does) and each is one object, kept whole: COIFT is a
thin-object set and legs, wires and branches must not be cut into separate instances. Splits: 70/10/20
by image (COIFT is a test-only set natively).
"""

from __future__ import annotations

from pathlib import Path

from uncertsam_utils.data.importers.base import DEFAULT_MIN_AREA, POOLED, Found, ImportResult, run_import
from uncertsam_utils.data.importers.sources import binary_mask, image_with, paired_sources

NAME = "COIFT"
PLAN = {"all": POOLED}


def find_sources(src: Path) -> Found:
    found = Found(NAME, src)
    images, masks = src / "images", src / "masks"
    if found.part("all", (images, "COIFT images"), (masks, "COIFT masks")):
        found.sources = paired_sources(images, pool="all", key_prefix="", mask_for=lambda p: masks / f"{p.stem}.png",
                                       mask_kind="mask", loader=image_with(binary_mask, split_components=False))
    return found


def import_coift(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False) -> ImportResult:
    return run_import(find_sources(Path(src)), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite)
