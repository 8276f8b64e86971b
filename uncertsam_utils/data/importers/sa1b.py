"""SA-1B (Kirillov et al., "Segment Anything", ICCV 2023) -> the fit set ``<out>/fit/{train,val}``.

Source layout (``src`` = a folder holding any number of extracted SA-1B tars, ``sa_000000/``,
``sa_000001/``, ..., or their files directly; any depth)::

    sa_000000/sa_<id>.jpg   sa_000000/sa_<id>.json   ...

Each JSON has an ``image`` record (``image_id``, ``width``, ``height``, ``file_name``) and a list of
``annotations``, each with a COCO RLE ``segmentation`` (``{"size": [h, w], "counts": <plain COCO
compressed string>}``) and ``bbox``, ``area``, ``predicted_iou``, ``stability_score``, ``point_coords``,
``crop_box``. Only the segmentation is used: every SA-1B mask is one object, kept whole; the other
fields describe how SAM's data engine made it. The shared rules of :mod:`.base` apply (minimum area,
masks that vanish in the 1024x1024 squash dropped and counted, images left without masks skipped).

**Selection.** Every ``sa_<id>.json`` gets a rank, the BLAKE2b hash of ``"<seed>:<id>"``; the
``val_images`` lowest ranks are ``val``, the next ``images`` are ``train``. So the subset depends on
the seed and on which ids are there, never on folder names or listing order; extracting one more tar
keeps an image unless a new one outranks it; and a larger ``images`` keeps ``val`` and extends
``train``. Image ids are SA-1B's own (``sa_223750.jpg`` is written as ``00223750.jpg``).

**Sizes.** The images are written as they are (SA-1B ships them at about 1500x2250, shorter side
1500), as the layout wants: masks stay at the resolution they were drawn at, and the squash to the
model's input happens when reading. Downscaling here would change no model input beyond resampling
order; it would only save disk and decoding time (an image's ~100 masks decode to ~340 MB).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.importers.base import DEFAULT_MIN_AREA, Found, ImportResult, Loaded, SourceImage, run_import
from uncertsam_utils.data.importers.readers import read_rgb
from uncertsam_utils.data.names import FIT
from uncertsam_utils.data.rle import decode_masks, parse_segmentation

PLAN = {"train": {"train": 1.0}, "val": {"val": 1.0}}
DEFAULT_VAL_SHARE = 0.1           # val images when not given: a tenth of those found, at least one
_JSON_NAME = re.compile(r"sa_(\d+)\.json")
LOOKED_FOR = "sa_<id>.json beside sa_<id>.jpg, in it or in any folder below (sa_000000/, ...)"


def annotation_files(src: Path) -> dict[int, Path]:
    """SA-1B id -> its annotation file, for every ``sa_<id>.json`` below ``src``; an id found twice (a
    tar extracted into two folders) is an error naming both files."""
    files: dict[int, Path] = {}
    for path in sorted(src.rglob("sa_*.json")):
        match = _JSON_NAME.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        image_id = int(match.group(1))
        if image_id in files:
            raise DataError(f"{path} and {files[image_id]} are both SA-1B image {image_id}")
        files[image_id] = path
    return files


def rank(seed: int, image_id: int) -> bytes:
    return hashlib.blake2b(f"{int(seed)}:{int(image_id)}".encode(), digest_size=8).digest()


def select(ids, images: int | None, val_images: int | None, seed: int, where: Path) -> dict[str, list[int]]:
    """``{"val": [...], "train": [...]}``: the ids of lowest rank, per the module docstring."""
    ordered = sorted(ids, key=lambda i: (rank(seed, i), i))
    val_images = max(1, round(DEFAULT_VAL_SHARE * len(ordered))) if val_images is None else int(val_images)
    images = len(ordered) - val_images if images is None else int(images)
    if val_images < 1 or images < 1 or images + val_images > len(ordered):
        raise DataError(f"{where}: {len(ordered)} SA-1B images found, cannot select {images} train and "
                        f"{val_images} val images (each at least 1, together at most {len(ordered)})")
    return {"val": ordered[:val_images], "train": ordered[val_images:val_images + images]}


def find_sources(src: Path, images: int | None, val_images: int | None, seed: int) -> tuple[Found, dict]:
    """The selected sources, and what the manifest records about the selection."""
    files = annotation_files(src)
    if not files:
        raise DataError(f"SA-1B: no annotation files in {src}; looked for {LOOKED_FOR}")
    chosen = select(files, images, val_images, seed, src)
    found = Found(FIT, src)
    for split, ids in chosen.items():
        for image_id in ids:
            json_path = files[image_id]
            image_path = json_path.with_suffix(".jpg")
            if not image_path.is_file():
                raise DataError(f"{json_path}: no image {image_path.name} beside it")
            key = json_path.relative_to(src).as_posix()
            found.sources.append(SourceImage(key, key, split, _loader(json_path, image_path, image_id), image_id))
    selection = {"source": "SA-1B", "available": len(files), "images": len(chosen["train"]),
                 "val_images": len(chosen["val"]), "rank": "blake2b('<seed>:<id>', digest_size=8), lowest first"}
    return found, selection


def _loader(json_path: Path, image_path: Path, image_id: int):
    def load() -> Loaded:
        height, width, annotations = read_annotation_file(json_path, image_path.name, image_id)
        image = read_rgb(image_path)
        if image.shape[:2] != (height, width):
            raise DataError(f"{image_path}: image is {image.shape[0]}x{image.shape[1]}, but {json_path.name} "
                            f"says {height}x{width}")
        masks = []
        for position, annotation in enumerate(annotations):
            where = f"{json_path}: annotation #{position} (id {annotation.get('id')!r})"
            rle = parse_segmentation(annotation.get("segmentation"), where, base64_counts=False)
            if (rle.height, rle.width) != (height, width):
                raise DataError(f"{where}: RLE size {rle.height}x{rle.width} differs from the image's {height}x{width}")
            masks.append(decode_masks([rle])[0])      # one at a time: a 1500x2250 image has ~100 masks
        return Loaded(image, masks, split_components=False)
    return load


def read_annotation_file(path: Path, image_name: str, image_id: int) -> tuple[int, int, list[dict]]:
    """``(height, width, annotations)`` of one SA-1B annotation file, checked against its image's name
    and id; a DataError naming the file for anything else."""
    try:
        record = json.loads(path.read_bytes())
    except OSError as err:
        raise DataError(f"{path}: cannot read the annotation file ({err})") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    info = record.get("image") if isinstance(record, dict) else None
    annotations = record.get("annotations") if isinstance(record, dict) else None
    if not isinstance(info, dict) or not isinstance(annotations, list):
        raise DataError(f"{path}: expected an object with an 'image' record and an 'annotations' list")
    height, width = info.get("height"), info.get("width")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width)):
        raise DataError(f"{path}: 'image' needs positive integer 'height' and 'width', got {height!r}, {width!r}")
    if info.get("image_id") != image_id or info.get("file_name") != image_name:
        raise DataError(f"{path}: 'image' names image {info.get('image_id')!r} ({info.get('file_name')!r}), "
                        f"not {image_id} ({image_name}) as the file name says")
    if not all(isinstance(a, dict) for a in annotations):
        raise DataError(f"{path}: every annotation must be an object")
    return height, width, annotations


def import_sa1b(src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, overwrite: bool = False,
                images: int | None = None, val_images: int | None = None) -> ImportResult:
    """Select ``images`` train and ``val_images`` val images of the SA-1B folders under ``src`` and write
    them as ``<out>/fit/{train,val}``, the fit set of the paper profile (``<data_root>/fit``)."""
    found, selection = find_sources(Path(src), images, val_images, seed)
    return run_import(found, out, plan=PLAN, seed=seed, min_area=min_area, overwrite=overwrite, options=selection)
