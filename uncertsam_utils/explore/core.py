"""The explorer's computation: every method on one image with given boxes, and per-mask metrics.

An ``ExplorerImage`` is a benchmark image (with its ground-truth masks) or an image of your own
(without). ``explore`` runs each method on it with the given boxes and returns the results at the
original size, plus, for each box that matches a ground-truth object, the same per-mask metrics as
the evaluation CSVs. The generator of each method is ``image_generator(seed, dataset, image_id)``
as in the evaluation, so a benchmark image with its own ground-truth boxes (``gt_boxes``) gives
exactly the numbers of its rows in the evaluation CSVs.

Boxes are xyxy in the model's square input frame (what the methods take); ``to_pixels`` and
``from_pixels`` convert to and from the image's pixel frame (what the box widget shows).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from ..data.layout import SplitReader
from ..data.resize import boxes_from_masks, resize_masks
from ..metrics import HALF_RESOLUTION_DATASETS, prepare_targets, result_metrics
from ..metrics.per_mask import RANK_MAX_PIXELS
from ..model.predictor import boxes_to_input_frame
from ..uq import image_generator

OWN_IMAGE = "own image"  # the dataset name of an image that is not from the benchmark
MATCH_IOU = 0.5  # a drawn box scores against the ground-truth object whose tight box it overlaps this much
SHOWN_METRICS = ("IoU", "BIoU_2", "pearson", "spearman", "auroc", "ause", "ECE")  # the explorer's metric table


@dataclass
class ExplorerImage:
    image: np.ndarray  # (H, W, 3) uint8
    dataset: str  # benchmark domain, or OWN_IMAGE
    image_id: int
    masks: np.ndarray | None = None  # (N, H, W) bool ground truth, None for an image of your own
    mask_ids: np.ndarray | None = None  # (N,) annotation ids
    label: str = ""

    @property
    def hw(self) -> tuple[int, int]:
        return tuple(self.image.shape[:2])


def benchmark_image(root, dataset: str, image_id: int | None = None, *, split: str = "test") -> ExplorerImage:
    """Image ``image_id`` (None: the first) of ``<root>/<dataset>/<split>`` with its masks."""
    reader = SplitReader(root, dataset, split)
    if image_id is None:
        image_id = reader.image_ids[0]
    if image_id not in reader.image_ids:
        raise KeyError(f"{dataset}/{split} has no image {image_id} (ids {reader.image_ids[0]}…{reader.image_ids[-1]})")
    sample = reader.load(image_id)
    return ExplorerImage(np.asarray(sample.image), dataset, int(image_id), np.asarray(sample.masks, bool),
                         np.asarray(sample.mask_ids), label=f"{dataset} · {split} image {image_id}")


def own_image(source) -> ExplorerImage:
    """An image of your own: a file path, encoded bytes (PNG, JPEG) or an (H, W, 3) array; no ground truth."""
    from PIL import Image

    if isinstance(source, np.ndarray):
        array, name = source, "array"
    else:
        try:
            opened = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else Path(source))
            array = np.asarray(opened.convert("RGB"))
        except OSError as err:
            raise ValueError(f"cannot read an image from {source if isinstance(source, (str, Path)) else 'the bytes given'}: {err}") from err
        name = Path(source).name if isinstance(source, (str, Path)) else "uploaded image"
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"an RGB image of shape (H, W, 3) is needed, got {array.shape}")
    return ExplorerImage(array.astype(np.uint8), OWN_IMAGE, 0, label=name)


def gt_boxes(image: ExplorerImage, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation's prompts: the tight box of each mask in the input frame, and the ids of the
    masks kept (masks that vanish at the model's input size have no box and are left out, as there)."""
    if image.masks is None:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    boxes, vanished = boxes_from_masks(resize_masks(image.masks, image_size))
    return boxes[~vanished], image.mask_ids[~vanished]


def from_pixels(boxes, hw: tuple[int, int], image_size: int) -> np.ndarray:
    """xyxy boxes in image pixels → the model's input frame."""
    return boxes_to_input_frame(np.asarray(boxes, np.float32).reshape(-1, 4), hw, image_size)


def to_pixels(boxes, hw: tuple[int, int], image_size: int) -> np.ndarray:
    """xyxy boxes in the model's input frame → image pixels."""
    height, width = hw
    scale = np.array([width, height, width, height], dtype=np.float32) / image_size
    return np.asarray(boxes, np.float32).reshape(-1, 4) * scale


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes (continuous coordinates)."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = lambda x: (x[..., 2] - x[..., 0]).clip(0) * (x[..., 3] - x[..., 1]).clip(0)  # noqa: E731
    union = area(a) + area(b) - w * h
    return np.where(union > 0, w * h / np.where(union > 0, union, 1), 0.0)


def match_ground_truth(boxes: np.ndarray, truth_boxes: np.ndarray) -> np.ndarray:
    """For each box, the index of the ground-truth box it overlaps most if IoU ≥ ``MATCH_IOU``, else −1;
    each ground-truth object is matched at most once (greedy, highest IoU first)."""
    match = np.full(len(boxes), -1, dtype=np.int64)
    if len(boxes) == 0 or len(truth_boxes) == 0:
        return match
    iou = box_iou(boxes, truth_boxes)
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < MATCH_IOU:
            break
        if match[i] < 0 and j not in match:
            match[i] = j
    return match


@dataclass
class Exploration:
    """What ``explore`` computed for one image and one set of boxes."""

    image: ExplorerImage
    boxes: np.ndarray  # (B, 4) input frame
    results: dict  # method → UQResult at the original size
    matched: np.ndarray  # (B,) index into the image's masks, −1 for a box without ground truth
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per method and matched box
    truth: np.ndarray | None = None  # (M, H, W) the masks that have a box prompt; ``matched`` indexes them


def explore(predictor, methods: Mapping[str, object], image: ExplorerImage, boxes, *, seed: int = 42,
            rank_max_pixels: int | None = RANK_MAX_PIXELS) -> Exploration:
    """Every method on ``image`` with ``boxes`` (B, 4, input frame), one encoder pass shared by the
    methods that keep the image; metrics for the boxes that match a ground-truth object."""
    from ..uq.combined import CombinedUncertainty

    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        raise ValueError("draw at least one box (or give boxes=[[x0, y0, x1, y1], ...] in image pixels)")
    truth, truth_ids = gt_boxes(image, predictor.image_size)
    matched = match_ground_truth(boxes, truth)
    kept = np.isin(image.mask_ids, truth_ids) if image.masks is not None else None
    with torch.inference_mode():
        encoding = predictor.encode(image.image, use_cache=False)
    results = {}
    # As the evaluation driver calls them: plain methods first, so that combinations reuse their results.
    for name in sorted(methods, key=lambda n: isinstance(methods[n], CombinedUncertainty)):
        method, kwargs = methods[name], {}
        if isinstance(method, CombinedUncertainty):
            kwargs["precomputed"] = {k: results[n] for k, comp in method.components.items()
                                     for n, m in methods.items() if m is comp and n in results}
        if getattr(method, "needs_ground_truth", False):
            if (matched < 0).any():
                continue  # an upper bound prompted with the ground truth: only where every box has one
            kwargs["gt_masks"] = resize_masks(image.masks[kept][matched], predictor.image_size)
        results[name] = method.predict(predictor, image.image, boxes, encoding=encoding,
                                       generator=image_generator(seed, image.dataset, image.image_id), **kwargs)
    metrics = _metrics(results, image, matched, kept, truth_ids, rank_max_pixels)
    shown = {n: results[n].at_original_size() for n in methods if n in results}  # in the order given
    truth_masks = image.masks[kept] if image.masks is not None else None
    return Exploration(image, boxes, shown, matched, metrics, truth_masks)


def _metrics(results, image: ExplorerImage, matched, kept, truth_ids, rank_max_pixels) -> pd.DataFrame:
    """The evaluation's per-mask columns for the boxes with ground truth (rows: method × box)."""
    with_truth = np.flatnonzero(matched >= 0)
    if image.masks is None or len(with_truth) == 0:
        return pd.DataFrame()
    masks = image.masks[kept][matched[with_truth]]
    targets = prepare_targets(torch.from_numpy(masks), half_resolution=image.dataset in HALF_RESOLUTION_DATASETS)
    rows = []
    for name, result in results.items():
        index = torch.as_tensor(with_truth)
        part = replace(result, logits=result.logits[index], prob=result.prob[index],
                       maps={k: v[index] for k, v in result.maps.items()})
        values = result_metrics(part, targets, rank_max_pixels=rank_max_pixels)
        for k, box in enumerate(with_truth):
            rows.append({"method": name, "box": int(box), "mask_id": int(truth_ids[matched[box]]),
                         **{col: float(np.asarray(v)[k]) for col, v in values.items()}})
    return pd.DataFrame(rows)
