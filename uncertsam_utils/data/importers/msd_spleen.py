"""MSD Task09_Spleen (Medical Segmentation Decathlon) -> the UncertSAM layout.

Source layout (``src`` = the ``Task09_Spleen`` folder)::

    imagesTr/spleen_<N>.nii.gz   CT volumes (HU)      labelsTr/spleen_<N>.nii.gz   0 background, 1 spleen
    (imagesTs has no labels and is not used; macOS '._spleen_*' files in the tarball are skipped)

Every axial slice (last array axis) that contains spleen becomes one image. The slice is taken
straight from the NIfTI array without reorientation (the paper's Fig. 2 shows the unrotated array),
CT-windowed (default level 40 / width 400 HU, an abdominal soft-tissue window: our choice, the paper's
exact normalisation is not public) to 8 bits and saved as a 3-channel JPEG. The spleen of a slice is
one instance, kept whole (it is one organ even when a slice cuts it into two pieces).
Splits: by volume, 70/10/20, so that no patient appears in two splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.importers.base import (DEFAULT_MIN_AREA, POOLED, Found, ImportResult, Loaded, SourceImage,
                                                 run_import)
from uncertsam_utils.data.importers.readers import list_files

NAME = "MSD_Spleen"
PLAN = {"all": POOLED}
WINDOW = (40.0, 400.0)       # level, width in HU
SPLEEN = 1


def find_sources(src: Path, window=WINDOW) -> Found:
    found = Found(NAME, src)
    images, labels = src / "imagesTr", src / "labelsTr"
    # imagesTs has no labels: every split of the benchmark is cut from the labelled volumes
    if not found.part("all", (images, "MSD CT volumes"), (labels, "MSD spleen labels; imagesTs/ has none")):
        return found
    cache = _VolumeCache(window)
    for image_path in tqdm(list_files(images, (".gz", ".nii")), desc="scan MSD labels", unit="volume", disable=None):
        volume = _volume_name(image_path)
        label_path = labels / image_path.name
        if not label_path.is_file():
            raise DataError(f"{image_path}: no label volume {label_path}")
        spleen = _read_volume(label_path, np.float32)
        slices = np.flatnonzero((np.rint(spleen) == SPLEEN).any(axis=(0, 1)))
        for k in slices:
            found.sources.append(SourceImage(f"{volume}/{int(k):04d}", volume, "all",
                                             _loader(cache, image_path, label_path, int(k))))
    return found


def _volume_name(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".nii")


def _read_volume(path: Path, dtype) -> np.ndarray:
    import nibabel as nib

    try:
        data = np.asarray(nib.load(str(path)).dataobj, dtype=dtype)   # applies the NIfTI intensity scaling
    except Exception as err:  # nibabel raises many types (ImageFileError, EOFError, zlib errors, ...)
        raise DataError(f"{path}: cannot read the NIfTI volume ({type(err).__name__}: {err})") from err
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3-D volume, got shape {data.shape}")
    return data


def window_to_uint8(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    low = level - width / 2.0
    return np.rint(np.clip((hu - low) / width, 0.0, 1.0) * 255.0).astype(np.uint8)


class _VolumeCache:
    """Keeps the last volume decoded: the slices of one volume are loaded one after another."""

    def __init__(self, window):
        self.window = window
        self.path = None
        self.image = self.spleen = None

    def get(self, image_path: Path, label_path: Path):
        if self.path != image_path:
            image = window_to_uint8(_read_volume(image_path, np.float32), *self.window)
            spleen = np.rint(_read_volume(label_path, np.float32)) == SPLEEN
            if image.shape != spleen.shape:
                raise DataError(f"{image_path}: volume shape {image.shape} differs from its label's {spleen.shape}")
            self.path, self.image, self.spleen = image_path, image, spleen
        return self.image, self.spleen


def _loader(cache: _VolumeCache, image_path: Path, label_path: Path, k: int):
    def load() -> Loaded:
        image, spleen = cache.get(image_path, label_path)
        grey = np.ascontiguousarray(image[:, :, k])
        return Loaded(np.repeat(grey[:, :, None], 3, axis=2), [spleen[:, :, k].copy()], split_components=False)
    return load


def import_msd_spleen(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False,
                      window: tuple[float, float] = WINDOW) -> ImportResult:
    return run_import(find_sources(Path(src), window), out, plan=PLAN, seed=seed, min_area=min_area,
                      overwrite=overwrite, options={"window_level_width": list(window)})
