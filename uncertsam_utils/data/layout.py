"""The published UncertSAM on-disk layout: read it (:class:`SplitReader` -> :class:`Sample`), write it
(:func:`write_split`), list it (:func:`list_datasets`)::

    <root>/<Dataset>/<split>/images/<image_id:08d>.jpg
    <root>/<Dataset>/<split>/annotations/dataset.json
        {"annotations": [{"id": int, "image_id": int, "area": int,
                          "segmentation": {"size": [H, W], "counts": base64(COCO compressed RLE bytes)}}, ...]}

One annotation is one object mask; an image may have several. Annotation ids are unique within a
file. Any folder in this layout reads the same way (e.g. a fit set ``<root>/SA1B/fit``). Masks stay
at the original resolution; the box prompt is computed in the model's square input frame
(:meth:`Sample.boxes`, see :mod:`uncertsam_utils.data.resize`).

What happens with bad input
---------------------------
Nothing is substituted and nothing is dropped silently: every case is a :class:`DataError` naming
the file, or a counted skip in ``SplitReader.report`` (with the file name).

=====================================================  ===============================================
input                                                  behaviour
=====================================================  ===============================================
split folder, ``images/`` or ``dataset.json`` missing  DataError when the reader is built
``dataset.json`` unreadable, not JSON, no              DataError when the reader is built (names the
``"annotations"`` list, a record without int ``id`` /  file, and the annotation's position and id)
``image_id``, a malformed segmentation / RLE
duplicate annotation ids                               DataError when the reader is built (the
                                                       reference looks masks up by id: ambiguous)
``.jpg`` whose name is not an integer id, or two       DataError when the reader is built
files with the same id (``7.jpg``, ``00000007.jpg``)
hidden files (``._*``) / non-``.jpg`` files in images  counted skip ``hidden_file`` / ``not_jpg``
annotation whose image file is missing                 counted skip ``missing_image``
empty mask                                             counted skip ``empty_mask``
mask under ``min_mask_pixels`` pixels                  counted skip ``small_mask``
mask that vanishes when resized to                     counted skip ``vanishes_after_resize`` (the
``resize_check_size`` (None or 0: no check)            reference would crash on its empty box)
image with no objects (none, or all skipped)           counted skip ``no_objects``; not in the index
truncated / corrupt / non-JPEG image                   DataError naming the file when the sample is
                                                       loaded, or for all images by check_images()
RLE size different from its image's size               DataError naming image, annotation and file,
                                                       when loaded or by check_images()
a mask that vanishes in ``Sample.boxes(size)``         DataError naming the image and mask ids
=====================================================  ===============================================

The stored ``area`` is not trusted: empty/small decisions use the pixel count of the RLE itself.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from uncertsam_utils.data import report as skip
from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.images import jpeg_size, read_jpeg, write_jpeg
from uncertsam_utils.data.names import DATASETS, SPLITS
from uncertsam_utils.data.report import SkipReport
from uncertsam_utils.data.resize import ResizeSurvival, boxes_from_masks, resize_masks
from uncertsam_utils.data.rle import ParsedRle, decode_masks, encode_mask, parse_segmentation

__all__ = ["DATASETS", "SPLITS", "Sample", "SplitReader", "WrittenSplit", "list_datasets", "list_splits",
           "split_dir", "write_split"]


IMAGES_DIR = "images"
ANNOTATIONS_FILE = Path("annotations") / "dataset.json"


def split_dir(root, dataset: str, split: str) -> Path:
    return Path(root) / dataset / split


def image_file_name(image_id: int) -> str:
    return f"{int(image_id):08d}.jpg"


# --------------------------------------------------------------------------------------------- reading

@dataclass
class Sample:
    """One image and all its object masks, at the original resolution."""

    dataset: str
    split: str
    image_id: int
    image_path: Path
    image: np.ndarray      # (H, W, 3) uint8 RGB
    masks: np.ndarray      # (N, H, W) bool
    mask_ids: np.ndarray   # (N,) int64 annotation ids

    def boxes(self, size: int) -> np.ndarray:
        """(N, 4) float32 ``[x0, y0, x1, y1]``: each mask's tight box (inclusive pixel indices) after the
        paper's squash-resize to ``size`` x ``size``; DataError if a mask has no pixel left there."""
        boxes, empty = boxes_from_masks(resize_masks(self.masks, size))
        if empty.any():
            raise DataError(f"{self.image_path}: mask(s) {self.mask_ids[empty].tolist()} vanish when resized to "
                            f"{size}x{size}, so they have no box prompt")
        return boxes


class SplitReader:
    """Reads ``<root>/<dataset>/<split>`` of the UncertSAM layout.

    Building the reader reads and validates ``dataset.json`` once and indexes the annotations by image
    id; images are only decoded when a sample is requested. ``report`` lists everything left out.
    """

    def __init__(self, root, dataset: str, split: str, *, min_mask_pixels: int = 8,
                 resize_check_size: int | None = 1024):
        self.root = Path(root)
        self.dataset = dataset
        self.split = split
        self.split_dir = split_dir(root, dataset, split)
        self.images_dir = self.split_dir / IMAGES_DIR
        self.annotations_file = self.split_dir / ANNOTATIONS_FILE
        self.min_mask_pixels = int(min_mask_pixels)
        self.resize_check_size = resize_check_size
        self.report = SkipReport(f"{dataset}/{split}")
        if not self.split_dir.is_dir():
            raise DataError(f"{self.split_dir}: split folder not found")
        if not self.images_dir.is_dir():
            raise DataError(f"{self.images_dir}: images folder not found")
        self._image_files = self._index_image_files()
        self._objects, skipped_per_image = self._index_annotations()
        for image_id, path in sorted(self._image_files.items()):
            if image_id not in self._objects:
                skipped = skipped_per_image.get(image_id, 0)
                self.report.add(skip.NO_OBJECTS, path.name, image_id=image_id,
                                detail=f"all {skipped} annotation(s) skipped" if skipped else "no annotations")
        self.image_ids: list[int] = sorted(self._objects)
        self.report.kept_images = len(self.image_ids)
        self.report.kept_masks = sum(len(v) for v in self._objects.values())

    # -- public access

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> Sample:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"SplitReader indices must be integers, not {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images in {self.split_dir}")
        return self.load(self.image_ids[index])

    def __iter__(self) -> Iterator[Sample]:
        for image_id in self.image_ids:
            yield self.load(image_id)

    def image_path(self, image_id: int) -> Path:
        return self._image_files[image_id]

    def mask_ids(self, image_id: int) -> list[int]:
        """The annotation ids kept for one image, in file order, without decoding anything."""
        return [ann_id for ann_id, _ in self._objects[image_id]]

    def load(self, image_id: int) -> Sample:
        """The sample of one image id (as in the ``image_id`` column of the results)."""
        if image_id not in self._objects:
            raise KeyError(f"image id {image_id} is not in {self.split_dir} (or was skipped, see .report)")
        path = self._image_files[image_id]
        image = read_jpeg(path)
        objects = self._objects[image_id]
        self._check_sizes(path, image.shape[:2], objects)
        return Sample(self.dataset, self.split, int(image_id), path, image,
                      decode_masks([rle for _, rle in objects]),
                      np.array([ann_id for ann_id, _ in objects], dtype=np.int64))

    def check_images(self, *, decode: bool = True) -> None:
        """Open every indexed image (fully decode it with ``decode=True``) and check it against its
        RLE sizes; one DataError listing every bad file."""
        problems = []
        for image_id in tqdm(self.image_ids, desc=f"check {self.report.where}", unit="img", disable=None, leave=False):
            path = self._image_files[image_id]
            try:
                size = read_jpeg(path).shape[:2] if decode else jpeg_size(path)
                self._check_sizes(path, size, self._objects[image_id])
            except DataError as err:
                problems.append(str(err))
        if problems:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise DataError(f"{len(problems)} bad image(s) in {self.images_dir}:\n  {shown}{more}")

    # -- indexing

    def _index_image_files(self) -> dict[int, Path]:
        files: dict[int, Path] = {}
        for path in sorted(self.images_dir.iterdir()):
            if path.name.startswith("."):
                self.report.add(skip.HIDDEN_FILE, path.name)
                continue
            if path.suffix != ".jpg" or not path.is_file():
                self.report.add(skip.NOT_JPG, path.name)
                continue
            if not (path.stem.isascii() and path.stem.isdigit()):
                raise DataError(f"{path}: image file names must be integer ids like 00000042.jpg")
            image_id = int(path.stem)
            if image_id in files:
                raise DataError(f"{path} and {files[image_id]} both have image id {image_id}")
            files[image_id] = path
        return files

    def _index_annotations(self) -> tuple[dict[int, list[tuple[int, ParsedRle]]], dict[int, int]]:
        """image id -> [(annotation id, RLE), ...] of the masks kept, and image id -> masks skipped."""
        records = _read_annotation_records(self.annotations_file)
        survival = ResizeSurvival(self.resize_check_size) if self.resize_check_size else None
        json_name = str(ANNOTATIONS_FILE)
        objects: dict[int, list[tuple[int, ParsedRle]]] = {}
        skipped_per_image: dict[int, int] = {}
        for ann_id, image_id, rle in tqdm(records, desc=f"index {self.report.where}", unit="mask",
                                          disable=None, leave=False):
            if image_id not in self._image_files:
                self.report.add(skip.MISSING_IMAGE, json_name, image_id=image_id, annotation_id=ann_id,
                                detail=f"expected {IMAGES_DIR}/{image_file_name(image_id)}")
                continue
            reason, detail = None, ""
            if rle.area == 0:
                reason = skip.EMPTY_MASK
            elif rle.area < self.min_mask_pixels:
                reason, detail = skip.SMALL_MASK, f"{rle.area} px < {self.min_mask_pixels}"
            elif survival is not None and not survival.survives(rle):
                reason, detail = skip.VANISHES, f"{rle.area} px, resized to {self.resize_check_size}"
            if reason is not None:
                self.report.add(reason, self._image_files[image_id].name, image_id=image_id,
                                annotation_id=ann_id, detail=detail)
                skipped_per_image[image_id] = skipped_per_image.get(image_id, 0) + 1
                continue
            objects.setdefault(image_id, []).append((ann_id, rle))
        return objects, skipped_per_image

    def _check_sizes(self, path: Path, size, objects) -> None:
        for ann_id, rle in objects:
            if (rle.height, rle.width) != tuple(size):
                raise DataError(f"{path}: annotation {ann_id} in {self.annotations_file} has RLE size "
                                f"{rle.height}x{rle.width}, but the image is {size[0]}x{size[1]}")


def _read_annotation_records(path: Path) -> list[tuple[int, int, ParsedRle]]:
    """Parse and validate dataset.json: (annotation id, image id, RLE) per annotation, in file order."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise DataError(f"{path}: annotation file not found") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read the annotation file ({err})") from err
    try:
        content = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(content, dict) or not isinstance(content.get("annotations"), list):
        raise DataError(f"{path}: expected an object with an 'annotations' list")
    records = []
    seen: dict[int, int] = {}
    for position, ann in enumerate(content["annotations"]):
        where = f"{path}: annotation #{position}"
        if not isinstance(ann, dict):
            raise DataError(f"{where} is not an object")
        for key in ("id", "image_id"):
            value = ann.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise DataError(f"{where}: '{key}' must be a non-negative integer, got {value!r}")
        ann_id, image_id = ann["id"], ann["image_id"]
        if ann_id in seen:
            raise DataError(f"{path}: annotation id {ann_id} is used twice (#{seen[ann_id]} and #{position}); "
                            f"ids must be unique within the file")
        seen[ann_id] = position
        if "segmentation" not in ann:
            raise DataError(f"{where} (id {ann_id}) has no 'segmentation'")
        records.append((ann_id, image_id, parse_segmentation(ann["segmentation"], f"{where} (id {ann_id})")))
    return records


def list_datasets(root) -> list[str]:
    """Dataset folders under ``root`` that hold at least one split in the layout, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and list_splits(root, d.name))


def list_splits(root, dataset: str) -> list[str]:
    """Split folders of one dataset that have ``annotations/dataset.json``: train, val, test first."""
    base = Path(root) / dataset
    if not base.is_dir():
        return []
    present = [d.name for d in base.iterdir()
               if d.is_dir() and not d.name.startswith(".") and (d / ANNOTATIONS_FILE).is_file()]
    return sorted(present, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))


# --------------------------------------------------------------------------------------------- writing

@dataclass(frozen=True)
class WrittenSplit:
    split_dir: Path
    num_images: int
    num_masks: int


def write_split(root, dataset: str, split: str,
                items: Iterable[tuple[int, np.ndarray, Sequence[np.ndarray]]], *,
                quality: int = 95, overwrite: bool = False) -> WrittenSplit:
    """Write one split in the layout from ``(image_id, image HxWx3 uint8, [mask HxW bool, ...])`` items.

    Annotation ids are 1, 2, ... in the order the masks arrive. The same items always give the same
    bytes (JPEG settings fixed, JSON with sorted keys). The split is assembled in a hidden sibling
    folder and renamed into place at the end, so a failed write leaves no half-written split. An
    existing split is replaced only with ``overwrite=True``. Images without masks, empty masks and
    repeated image ids are refused (DataError): the writer only produces what the reader keeps.
    """
    for name, value in (("dataset", dataset), ("split", split)):
        if not value or value.startswith(".") or "/" in value or "\\" in value:
            raise DataError(f"invalid {name} folder name {value!r}")
    target = split_dir(root, dataset, split)
    if target.exists() and not overwrite:
        raise DataError(f"{target} already exists; remove it or pass overwrite=True")
    staging = target.parent / f".{split}.partial"
    if staging.exists():
        shutil.rmtree(staging)      # left over from an interrupted write of this same split
    (staging / IMAGES_DIR).mkdir(parents=True)
    (staging / ANNOTATIONS_FILE).parent.mkdir(parents=True)
    try:
        annotations = _write_items(staging, items, quality, f"{dataset}/{split}")
        text = json.dumps({"annotations": annotations}, sort_keys=True, separators=(",", ":"))
        (staging / ANNOTATIONS_FILE).write_text(text + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return WrittenSplit(target, len({a["image_id"] for a in annotations}), len(annotations))


def _write_items(staging: Path, items, quality: int, where: str) -> list[dict]:
    annotations: list[dict] = []
    seen_ids: set[int] = set()
    total = len(items) if hasattr(items, "__len__") else None
    for image_id, image, masks in tqdm(items, total=total, desc=f"write {where}", unit="img", disable=None):
        if not isinstance(image_id, (int, np.integer)) or isinstance(image_id, bool) or image_id < 0:
            raise DataError(f"{where}: image ids must be non-negative integers, got {image_id!r}")
        image_id = int(image_id)
        if image_id in seen_ids:
            raise DataError(f"{where}: image id {image_id} is given twice")
        seen_ids.add(image_id)
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"{where}: image {image_id} must be an (H, W, 3) uint8 array, "
                            f"got {image.dtype} {image.shape}")
        if len(masks) == 0:
            raise DataError(f"{where}: image {image_id} has no masks")
        bool_masks = [_as_bool_mask(m, image.shape[:2], f"{where}: image {image_id} mask {k}")
                      for k, m in enumerate(masks)]
        write_jpeg(staging / IMAGES_DIR / image_file_name(image_id), image, quality)
        for mask in bool_masks:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "segmentation": encode_mask(mask), "area": int(mask.sum())})
    return annotations


def _as_bool_mask(mask, shape, where: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise DataError(f"{where}: shape {mask.shape} does not match the image {tuple(shape)}")
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.integer) or not np.isin(mask, (0, 1)).all():
            raise DataError(f"{where}: masks must be bool (or integer 0/1), got {mask.dtype}")
        mask = mask.astype(bool)
    if not mask.any():
        raise DataError(f"{where}: mask is empty")
    return mask
