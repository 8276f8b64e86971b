"""Flare7K++ test set (Dai et al., NeurIPS 2022 / arXiv 2306.04236) -> the UncertSAM layout.

Source layout (``src`` = the Flare7K++ folder holding ``test_data/``, or ``test_data`` itself)::

    test_data/real/{input,mask}/*.png        test_data/synthetic/{input,mask}/*.png
    (gt/, the flare-free images, is not needed)

Input and mask are paired by sorted file order, as in the authors' evaluation script (their names
differ). The mask is colour-coded: glare (255,255,0), streak (255,0,0), light source (0,0,255); each
channel is thresholded at 128. Instances: 8-connected components of each of the three classes,
which reproduces the paper's Fig. 2 (the source splits the streak, the streak splits the glare).
Splits: real and synthetic separately, 70/10/20 by image (Flare7K++ has no train masks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.importers.base import (DEFAULT_MIN_AREA, POOLED, Found, ImportResult, SourceImage,
                                                 run_import)
from uncertsam_utils.data.importers.readers import list_files, read_rgb_mask
from uncertsam_utils.data.importers.sources import image_with

NAME = "Flare7K"
KINDS = ("real", "synthetic")
PLAN = {kind: POOLED for kind in KINDS}


def find_sources(src: Path) -> Found:
    root = src / "test_data" if (src / "test_data").is_dir() else src
    load = image_with(_class_maps_of, split_components=True)
    found = Found(NAME, src)
    for kind in KINDS:
        if not found.part(kind, (root / kind / "input", f"Flare7K++ {kind} test inputs"),
                          (root / kind / "mask", f"Flare7K++ {kind} test masks")):
            continue
        inputs, masks = list_files(root / kind / "input"), list_files(root / kind / "mask")
        if len(inputs) != len(masks):
            raise DataError(f"{root / kind}: {len(inputs)} inputs but {len(masks)} masks; they pair by sorted order")
        for image_path, mask_path in zip(inputs, masks):
            key = f"{kind}/{image_path.name}"
            found.sources.append(SourceImage(key, key, kind, load(image_path, mask_path)))
    return found


def class_maps(rgb: np.ndarray) -> list[np.ndarray]:
    """[glare, streak, light source] bool maps of a Flare7K++ colour mask."""
    red, green, blue = (rgb[..., c] >= 128 for c in range(3))
    return [red & green & ~blue, red & ~green & ~blue, blue]


def _class_maps_of(mask_path: Path) -> list[np.ndarray]:
    return class_maps(read_rgb_mask(mask_path))


def import_flare7k(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False) -> ImportResult:
    return run_import(find_sources(Path(src)), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite)
