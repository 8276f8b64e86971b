"""Test images held once for scoring many refinement arms by Table 1's accuracy columns (notebook 09).

Notebook 09 scores dozens of trained modules (questions × variants × seeds × epochs). The driver
(``driver.py``) would encode every image and recompute the first passes and all 40 metric columns for
each of them; here each test image is read, encoded, prompted and decoded once
(``EvaluationBank.build``): its encoding, its box prompts, the first passes every arm starts from
(SAM-2's and the Laplace predictive's, from one decoder call) and its ground truth reduced to what
``IoU`` and ``BIoU_2`` need (``metrics.accuracy``). An arm is then a function from a ``BankImage`` to
refined low-resolution logits, scored by ``score`` into rows shaped like the evaluation CSVs'
(``image_id, mask_id, dataset, method``, the metrics, and any constant columns such as the seed).

The protocol is the driver's, step for step: the first ``max_images`` images of each split by id,
the tight box of each mask in the model's input frame (masks that vanish there are not scored), the
full-size image encoded as ``Predictor.encode`` does, BIG scored at half resolution; the driver's
``image_generator(seed, dataset, image_id)`` seeds whatever an arm draws per image. The scores equal
the driver's CSV columns (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from ..metrics.accuracy import ACCURACY_COLUMNS, AccuracyTargets, accuracy_columns
from ..metrics.per_mask import HALF_RESOLUTION_DATASETS


@dataclass
class BankImage:
    """One test image: its prompts, encoding, first passes and accuracy targets."""

    dataset: str
    image_id: int
    mask_ids: np.ndarray
    boxes: torch.Tensor  # (n, 4) xyxy in the model's input frame
    orig_hw: tuple[int, int]
    encoding: object  # model.predictor.Encoding of the image alone
    targets: AccuracyTargets
    passes: dict = field(default_factory=dict)  # first-pass kind → refine.passes.FirstPass
    maps: dict = field(default_factory=dict)  # further named maps (n, m, m), e.g. combined uncertainty

    @property
    def prompt(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The boxes as SAM's corner points (n, 2, 2) and labels (n, 2)."""
        from ..refine.passes import box_points

        return box_points(self.boxes)

    def generator(self, seed: int) -> torch.Generator:
        """The driver's generator of this image (what a method draws from when evaluated)."""
        from ..uq.base import image_generator

        return image_generator(seed, self.dataset, self.image_id)


class EvaluationBank:
    """The test images of ``datasets`` (``build``) and the scoring of arms on them (``score``)."""

    def __init__(self, images: list[BankImage], *, seed: int, build_seconds: float = 0.0):
        self.images, self.seed, self.build_seconds = images, int(seed), build_seconds

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(image.dataset for image in self.images))

    def select(self, datasets: Iterable[str] | None = None) -> list[BankImage]:
        wanted = None if datasets is None else set(datasets)
        return [image for image in self.images if wanted is None or image.dataset in wanted]

    @classmethod
    def build(cls, predictor, root, datasets: Sequence[str], *, posterior=None, kinds: Sequence[str] = ("sam", "laplace"),
              max_images: int | None = None, seed: int = 42, split: str = "test", progress: bool = True) -> "EvaluationBank":
        """Read, encode and decode the first ``max_images`` images of each dataset's ``split``."""
        import time

        from tqdm.auto import tqdm

        from ..data.layout import SplitReader

        tic = time.process_time()
        images = []
        for dataset in datasets:
            reader = SplitReader(Path(root), dataset, split, resize_check_size=None)
            ids = list(reader.image_ids)[: max_images if max_images is not None else None]
            for image_id in tqdm(ids, desc=f"bank {dataset}", unit="img", disable=not progress, leave=False):
                entry = _bank_image(predictor, reader.load(image_id), dataset, image_id, kinds, posterior)
                if entry is not None:
                    images.append(entry)
        return cls(images, seed=seed, build_seconds=time.process_time() - tic)

    def add_maps(self, name: str, compute: Callable[[BankImage], torch.Tensor]) -> None:
        """``image.maps[name] = compute(image)`` for every image that lacks it (e.g. a combined map)."""
        for image in self.images:
            if name not in image.maps:
                with torch.no_grad():
                    image.maps[name] = compute(image)

    def score(self, method: str, refine: Callable[[BankImage], torch.Tensor], *, datasets: Iterable[str] | None = None,
              **constants) -> pd.DataFrame:
        """Rows (one per mask) of ``IoU`` and ``BIoU_2`` of ``refine(image)`` → (n, m, m) logits, for the
        images of ``datasets`` (all when None); ``constants`` become columns (e.g. seed=0)."""
        frames = []
        for image in self.select(datasets):
            with torch.no_grad():
                logits = refine(image)
            columns = accuracy_columns(image.targets, logits, image.orig_hw)
            frames.append(pd.DataFrame({"image_id": image.image_id, "mask_id": image.mask_ids, "dataset": image.dataset,
                                        "method": method, **{c: columns[c] for c in ACCURACY_COLUMNS}}))
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["image_id", "mask_id", "dataset", "method", *ACCURACY_COLUMNS])
        for name, value in constants.items():
            out[name] = value
        return out


def _bank_image(predictor, sample, dataset: str, image_id: int, kinds, posterior) -> BankImage | None:
    """The driver's preamble for one image (``driver._evaluate_image``), then its first passes."""
    from ..data.resize import boxes_from_masks, resize_masks
    from ..refine.passes import box_points, first_pass

    masks, mask_ids = np.asarray(sample.masks, bool), np.asarray(sample.mask_ids)
    boxes, vanished = boxes_from_masks(resize_masks(masks, predictor.image_size))
    masks, mask_ids, boxes = masks[~vanished], mask_ids[~vanished], boxes[~vanished]
    if len(mask_ids) == 0:
        return None
    targets = AccuracyTargets.from_masks(masks, half_resolution=dataset in HALF_RESOLUTION_DATASETS)
    with torch.no_grad():
        encoding = predictor.encode(sample.image, use_cache=False)
        boxes = torch.as_tensor(np.asarray(boxes), dtype=torch.float32)
        points, labels = box_points(boxes)
        passes = {kind: first_pass(kind, predictor, encoding, points=points, labels=labels, posterior=posterior)
                  for kind in kinds}
    return BankImage(dataset, int(image_id), mask_ids, boxes, tuple(encoding.orig_hw[0]), encoding, targets, passes)
