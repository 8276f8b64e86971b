"""BIG (CascadePSP, Cheng et al., CVPR 2020) -> the UncertSAM layout.

Source layout (``src`` = the ``BIG`` folder)::

    val/<name>_im.jpg   val/<name>_gt.png    (50 images; *_seg.png coarse inputs are ignored)
    test/<name>_im.jpg  test/<name>_gt.png   (100 images)

One object per image, kept whole (a bicycle's spokes and frame are one object even where the mask
is not connected). Splits: native test -> test; native val -> train/val 80/20 by image (BIG has no
training set). The images are large (up to ~5000x3600): the JPEGs are written at full resolution.
"""

from __future__ import annotations

from pathlib import Path

from uncertsam_utils.data.importers.base import DEFAULT_MIN_AREA, Found, ImportResult, run_import
from uncertsam_utils.data.importers.sources import binary_mask, image_with, paired_sources

NAME = "BIG"
PLAN = {"val": {"train": 0.8, "val": 0.2}, "test": {"test": 1.0}}


def find_sources(src: Path) -> Found:
    found = Found(NAME, src)
    for native in PLAN:
        folder = src / native
        if found.part(native, (folder, f"BIG {native} images, <name>_im.jpg + <name>_gt.png")):
            found.sources += paired_sources(folder, pool=native, key_prefix=f"{native}/",
                                            keep=lambda p: p.stem.endswith("_im"), mask_for=_ground_truth,
                                            mask_kind="ground truth",
                                            loader=image_with(binary_mask, split_components=False))
    return found


def _ground_truth(image_path: Path) -> Path:
    return image_path.with_name(f"{image_path.stem.removesuffix('_im')}_gt.png")


def import_big(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False) -> ImportResult:
    return run_import(find_sources(Path(src)), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite)
