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

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.importers.base import DEFAULT_MIN_AREA, ImportResult, Loaded, SourceImage, run_import
from uncertsam_utils.data.importers.readers import list_files, read_binary_mask, read_rgb, require_dir

NAME = "BIG"
PLAN = {"val": {"train": 0.8, "val": 0.2}, "test": {"test": 1.0}}


def find_sources(src: Path) -> list[SourceImage]:
    sources = []
    for native in PLAN:
        folder = require_dir(src / native, f"BIG {native} images (<name>_im.jpg + <name>_gt.png)")
        for image_path in list_files(folder):
            if not image_path.stem.endswith("_im"):
                continue
            mask_path = folder / f"{image_path.stem.removesuffix('_im')}_gt.png"
            if not mask_path.is_file():
                raise DataError(f"{image_path}: no ground truth {mask_path}")
            key = f"{native}/{image_path.name}"
            sources.append(SourceImage(key, key, native, _loader(image_path, mask_path)))
    return sources


def _loader(image_path: Path, mask_path: Path):
    return lambda: Loaded(read_rgb(image_path), [read_binary_mask(mask_path)], split_components=False)


def import_big(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False) -> ImportResult:
    return run_import(NAME, find_sources(Path(src)), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite)
