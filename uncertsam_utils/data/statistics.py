"""Per-dataset statistics of a benchmark in the published layout (images, masks, sizes, boxes).

Used by the data-curation notebook for its statistics table; works on any root in the layout
(UncertSAM-mini or the real benchmark).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from uncertsam_utils.data.layout import SplitReader, list_datasets, list_splits
from uncertsam_utils.data.resize import boxes_from_masks

COLUMNS = ("dataset", "split", "images", "masks", "masks_per_image", "mean_area_frac", "median_area_frac",
           "mean_box_w_px", "mean_box_h_px", "mean_box_side_frac", "min_height", "max_height",
           "min_width", "max_width", "image_sizes")


def _size_range(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def split_statistics(reader: SplitReader, max_images: int | None = None) -> dict:
    """One row of statistics for a split; only the first ``max_images`` images when given."""
    ids = reader.image_ids if max_images is None else reader.image_ids[:max_images]
    area_frac, box_w, box_h, box_side, heights, widths = [], [], [], [], [], []
    masks = 0
    for image_id in ids:
        sample = reader.load(image_id)
        h, w = sample.image.shape[:2]
        heights.append(h)
        widths.append(w)
        masks += len(sample.masks)
        area_frac.extend((sample.masks.sum(axis=(1, 2)) / (h * w)).tolist())
        boxes, _ = boxes_from_masks(sample.masks)
        bw, bh = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        box_w.extend(bw.tolist())
        box_h.extend(bh.tolist())
        box_side.extend(np.sqrt(bw * bh / (h * w)).tolist())  # box size relative to the image, scale-free
    images = len(ids)
    mean = lambda v: float(np.mean(v)) if v else float("nan")
    return {
        "dataset": reader.dataset, "split": reader.split, "images": images, "masks": masks,
        "masks_per_image": masks / images if images else float("nan"),
        "mean_area_frac": mean(area_frac),
        "median_area_frac": float(np.median(area_frac)) if area_frac else float("nan"),
        "mean_box_w_px": mean(box_w), "mean_box_h_px": mean(box_h), "mean_box_side_frac": mean(box_side),
        "min_height": min(heights, default=0), "max_height": max(heights, default=0),
        "min_width": min(widths, default=0), "max_width": max(widths, default=0),
        "image_sizes": (f"{_size_range(min(heights), max(heights))} x {_size_range(min(widths), max(widths))}"
                        if images else ""),
    }


def dataset_statistics(root: Path, datasets: Iterable[str] | None = None, splits: Sequence[str] | None = None,
                       max_images: int | None = None):
    """A pandas DataFrame with one row per (dataset, split) present under ``root`` (see ``COLUMNS``)."""
    import pandas as pd

    rows = []
    for dataset in (datasets if datasets is not None else list_datasets(root)):
        for split in list_splits(root, dataset):
            if splits is None or split in splits:
                rows.append(split_statistics(SplitReader(root, dataset, split), max_images))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def to_markdown(table, float_digits: int = 3) -> str:
    """A pipe table of a DataFrame (pandas' own needs the optional ``tabulate`` package)."""
    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else f"{value:.{float_digits}g}" if abs(value) < 1 else f"{value:.1f}"
        return str(value)

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"
