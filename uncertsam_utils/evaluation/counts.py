"""What an evaluation read, scored and left out, per dataset: ``<out>/<dataset>/counts.json``.

Every image file and every annotation of the split is accounted for, once::

    images: read = scored + skipped[reason] summed      masks: read = scored + skipped[reason] summed

* ``read``: image files in ``images/`` (hidden and non-``.jpg`` files included, as skips), and
  annotations in ``dataset.json``;
* skipped by the reader (``SplitReader.report``, ``data/report.py``): ``hidden_file``, ``not_jpg``,
  ``no_objects`` (images), ``missing_image``, ``empty_mask``, ``small_mask``,
  ``vanishes_after_resize`` (masks);
* skipped by the evaluation: ``beyond_max_images`` (images after the first ``max_images`` and their
  masks), ``vanishes_at_input_size`` (masks with no pixel left at the model's input size, so no
  box prompt) and ``no_masks_at_input_size`` (images all of whose masks vanished there);
* ``scored``: the images and masks with rows in the CSVs (every method of a run scores the same).

The file is derived from the reader and the final CSVs after every rank is done, so it is the same
for any number of processes and after any interruption. ``load_counts`` reads it back as a table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..data import report
from .results import atomic_write, csv_path

COUNTS_FILE = "counts.json"
BEYOND_MAX_IMAGES = "beyond_max_images"
VANISHES_AT_INPUT_SIZE = "vanishes_at_input_size"
NO_MASKS_AT_INPUT_SIZE = "no_masks_at_input_size"
# Always present (0 when nothing was skipped), so every counts file has the same columns.
IMAGE_REASONS = (report.HIDDEN_FILE, report.NOT_JPG, report.NO_OBJECTS, BEYOND_MAX_IMAGES, NO_MASKS_AT_INPUT_SIZE)
MASK_REASONS = (report.MISSING_IMAGE, report.EMPTY_MASK, report.SMALL_MASK, report.VANISHES, BEYOND_MAX_IMAGES,
                VANISHES_AT_INPUT_SIZE)


def counts_path(out_dir, dataset: str) -> Path:
    return Path(out_dir) / dataset / COUNTS_FILE


def scored_masks(path: Path) -> dict[int, list[int]]:
    """image id → mask ids with a row in one result CSV (its first two columns)."""
    out: dict[int, list[int]] = {}
    with open(path, encoding="utf-8") as handle:
        next(handle)  # header
        for line in handle:
            image_id, mask_id, _ = line.split(",", 2)
            out.setdefault(int(image_id), []).append(int(mask_id))
    return out


def _scored(out_dir: Path, dataset: str, methods: Sequence[str]) -> dict[int, list[int]]:
    """The rows every method's CSV holds; an error if two methods scored different masks."""
    first, rows = None, None
    for name in methods:
        path = csv_path(out_dir, dataset, name)
        these = scored_masks(path)
        if rows is None:
            first, rows = path, these
        elif these != rows:
            raise ValueError(f"{path} and {first} score different masks: the folder mixes evaluations")
    return rows or {}


def count_split(reader, image_ids: Sequence[int], scored: dict[int, list[int]], *, image_size: int,
                max_images: int | None) -> dict:
    """The counts of one split (module docstring) from its reader, the evaluated images (the first
    ``max_images`` by id) and the scored masks (image id → mask ids)."""
    evaluated = set(image_ids)
    images = {reason: 0 for reason in IMAGE_REASONS}
    masks = {reason: 0 for reason in MASK_REASONS}
    for skip in reader.report.skips:  # a skip naming an annotation is a mask, any other an image (file)
        side = masks if skip.annotation_id is not None else images
        side[skip.reason] = side.get(skip.reason, 0) + 1
    without, vanished = [], {}
    for image_id in reader.image_ids:
        kept = reader.mask_ids(image_id)
        if image_id not in evaluated:
            images[BEYOND_MAX_IMAGES] += 1
            masks[BEYOND_MAX_IMAGES] += len(kept)
            continue
        rows = scored.get(image_id, [])
        unknown = set(rows) - set(kept)
        if unknown:
            raise ValueError(f"{reader.split_dir}: the results hold mask(s) {sorted(unknown)} of image {image_id}, "
                             "which the data does not have: the folder belongs to other data")
        gone = sorted(set(kept) - set(rows))
        masks[VANISHES_AT_INPUT_SIZE] += len(gone)
        if gone:
            vanished[str(image_id)] = gone
        if not rows:
            images[NO_MASKS_AT_INPUT_SIZE] += 1
            without.append(int(image_id))
    scored_images = sum(1 for i in image_ids if scored.get(i))
    scored_count = sum(len(scored.get(i, [])) for i in image_ids)
    return {
        "dataset": reader.dataset, "split": reader.split, "image_size": int(image_size), "max_images": max_images,
        "images": {"read": scored_images + sum(images.values()), "scored": scored_images, "skipped": images},
        "masks": {"read": scored_count + sum(masks.values()), "scored": scored_count, "skipped": masks},
        "images_without_masks": without, "vanished_masks": vanished,
    }


def write_counts(out_dir, reader, image_ids: Sequence[int], methods: Sequence[str], image_size: int,
                 max_images: int | None = None) -> Path:
    """Write ``<out>/<dataset>/counts.json`` from the reader and the final CSVs of ``methods``."""
    out_dir = Path(out_dir)
    counts = count_split(reader, image_ids, _scored(out_dir, reader.dataset, methods), image_size=image_size,
                         max_images=max_images)
    path = counts_path(out_dir, reader.dataset)
    text = json.dumps(counts, indent=1, sort_keys=True) + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write(path, text)
    return path


def load_counts(out_dir, datasets: Sequence[str] | None = None):
    """The counts of an evaluation as a pandas DataFrame, one row per dataset (``datasets``' order, or
    sorted): ``dataset, split, image_size, max_images, images_read, images_scored, images_skipped,
    masks_read, masks_scored, masks_skipped``, then ``images_skipped_<reason>`` and
    ``masks_skipped_<reason>`` for every reason. A requested dataset without counts is an error."""
    import pandas as pd

    out_dir = Path(out_dir)
    if datasets is None:
        paths = sorted(out_dir.glob(f"*/{COUNTS_FILE}"))
        if not paths:
            raise FileNotFoundError(f"no {COUNTS_FILE} under {out_dir}")
    else:
        paths = [counts_path(out_dir, d) for d in datasets]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"no evaluation counts: {', '.join(missing)} missing")
    rows = []
    for path in paths:
        counts = json.loads(path.read_text(encoding="utf-8"))
        row = {key: counts[key] for key in ("dataset", "split", "image_size", "max_images")}
        for side in ("images", "masks"):
            part = counts[side]
            row.update({f"{side}_read": part["read"], f"{side}_scored": part["scored"],
                        f"{side}_skipped": sum(part["skipped"].values())})
        for side in ("images", "masks"):
            row.update({f"{side}_skipped_{reason}": n for reason, n in sorted(counts[side]["skipped"].items())})
        rows.append(row)
    return pd.DataFrame(rows)
