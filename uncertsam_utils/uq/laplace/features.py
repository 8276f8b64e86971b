"""Fitting data of the Laplace posterior: one item of treated-layer features per fitted prompt.

Any split in the published layout (``SplitReader``) or in-memory samples (anything with ``image``,
``masks``, ``image_id`` and ``dataset``), one prompt per object: the GT box of the squash-resized mask
with SAM's box jitter (``prompts.jitter_boxes``), one random object per image as the paper
(``objects="one"``) or every object (``objects="all"``), seeded per image, one pass. The paper's
horizontal flips and point prompts are not used (the posterior is for box prompts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..base import image_generator

OBJECT_MODES = ("one", "all")
FULL_BATCH = 16  # prompts per batch for the full GGN
CACHED_FIRST_ITEMS = FULL_BATCH


@dataclass
class FitImage:
    """An in-memory fitting sample (the published layout's ``Sample`` has the same fields)."""

    image: np.ndarray  # (H, W, 3) uint8
    masks: np.ndarray  # (N, H, W) bool
    image_id: int
    dataset: str = "memory"


def synthetic_images(count: int, size: int = 256, seed: int = 0, objects: int = 2) -> list[FitImage]:
    """Smooth random images with bright ellipses as objects: fitting data for tests and benchmarks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for index in range(count):
        coarse = rng.random((size // 32 + 2, size // 32 + 2, 3))
        image = np.kron(coarse, np.ones((32, 32, 1)))[:size, :size] * 0.5
        masks = []
        for _ in range(objects):
            cy, cx = rng.uniform(0.25, 0.75, 2)
            ry, rx = rng.uniform(0.08, 0.22, 2)
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
            image[mask] = 0.5 + 0.5 * rng.random(3)
            masks.append(mask)
        out.append(FitImage((image * 255).astype(np.uint8), np.stack(masks), index, "synthetic"))
    return out


def _object_counts(source) -> list[int]:
    objects = getattr(source, "_objects", None)  # SplitReader's annotation index: no image decoding
    if isinstance(objects, dict) and hasattr(source, "image_ids"):
        return [len(objects[i]) for i in source.image_ids]
    return [len(item.masks) for item in source]


class PromptFeatures(torch.utils.data.Dataset):
    """One item per fitted prompt: ``{"h" (1, D), "U" (1, C, m, m), "labels" (1, m, m)}``.

    Each item encodes its image (the predictor caches the last image, so consecutive objects of one
    image encode it once) and decodes the jittered GT box once, without gradients. The object and
    the jitter come from ``image_generator(seed, "laplace-fit", dataset, image_id[, object])``.
    """

    def __init__(self, predictor, source, *, seed: int = 0, objects: str = "one", max_images: int | None = None,
                 jitter: bool = True):
        if objects not in OBJECT_MODES:
            raise ValueError(f"objects must be one of {OBJECT_MODES}, got {objects!r}")
        self.predictor, self.source, self.seed, self.objects, self.jitter = predictor, source, seed, objects, jitter
        count = len(source) if max_images is None else min(len(source), int(max_images))
        if objects == "one":
            self.index = [(i, None) for i in range(count)]
        else:
            counts = _object_counts(source)[:count]
            self.index = [(i, k) for i in range(count) for k in range(counts[i])]
        self.skipped: list[tuple[str, int]] = []
        self._sample_cache: tuple[int, Any] | None = None
        self._item_cache: dict[int, dict] = {}  # laplace-torch reads the first batch twice

    def __len__(self) -> int:
        return len(self.index)

    def _sample(self, i: int):
        if self._sample_cache is None or self._sample_cache[0] != i:
            self._sample_cache = (i, self.source[i])
        return self._sample_cache[1]

    def __getitem__(self, j: int) -> dict:
        if j in self._item_cache:
            return self._item_cache[j]
        from ...data.resize import boxes_from_masks, resize_masks
        from ...prompts import jitter_boxes

        i, k = self.index[j]
        sample = self._sample(i)
        predictor = self.predictor
        size, m = predictor.image_size, predictor.mask_size
        keys = (self.seed, "laplace-fit", sample.dataset, sample.image_id) + (() if k is None else (k,))
        generator = image_generator(*keys)
        masks = np.asarray(sample.masks, dtype=bool)
        boxes, empty = boxes_from_masks(resize_masks(masks, size))
        valid = np.flatnonzero(~empty)
        if k is None and valid.size:
            k = int(valid[torch.randint(valid.size, (1,), generator=generator).item()])
        if k is None or empty[k]:
            self.skipped.append((str(sample.dataset), int(sample.image_id)))
            item = self._empty_item()
        else:
            box = torch.from_numpy(boxes[k : k + 1])
            if self.jitter:
                box = jitter_boxes(box, size, generator)
            with torch.no_grad():
                out = predictor.decode(predictor.encode(sample.image), boxes=box, return_internals=True)
            labels = torch.from_numpy(resize_masks(masks[k : k + 1], m)).long()
            item = {"h": out.h.detach().float(), "U": out.U.detach().float(), "labels": labels}
        if j < CACHED_FIRST_ITEMS:
            self._item_cache[j] = item
        return item

    def _empty_item(self) -> dict:
        layer = self.predictor.treated_layer
        m = self.predictor.mask_size
        return {"h": torch.zeros(0, layer.in_features), "U": torch.zeros(0, layer.out_features, m, m),
                "labels": torch.zeros(0, m, m, dtype=torch.long)}


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j: int) -> dict:
        return self.items[j]


def concatenate_items(items: list[dict]) -> dict:
    return {key: torch.cat([item[key] for item in items]) for key in items[0]}


def feature_loader(dataset: torch.utils.data.Dataset, batch_size: int = 1,
                   indices: list[int] | None = None) -> torch.utils.data.DataLoader:
    """Prompt features in order (laplace-torch needs ``.dataset``); ``batch_size`` prompts per
    batch, concatenated (the full GGN's (C(D+1))² update is then one matrix product per batch).
    ``indices``: only these items (one rank's share); ``len(loader.dataset)``, laplace-torch's N,
    stays the whole dataset's, so every rank scales its curvature as one process would."""
    if batch_size == 1:
        return torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=0, sampler=indices)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0,
                                       collate_fn=concatenate_items, sampler=indices)


def rank_share(dataset: PromptFeatures) -> list[int] | None:
    """Under torchrun, this rank's items: the prompts of its images (image i to rank i mod N, so no
    image is encoded twice; possibly none). None in a single process."""
    from ... import distributed

    where = distributed.ranks()
    if not where.distributed:
        return None
    mine = set(distributed.shard(sorted({i for i, _ in dataset.index}), where))
    return [j for j, (i, _) in enumerate(dataset.index) if i in mine]


def cached_features(predictor, source, *, by_rank: bool = False, **kwargs) -> torch.utils.data.DataLoader:
    """Features of a (small) split computed once and kept in memory: for grid search, which
    evaluates the validation predictive once per grid point, or to fit several posteriors.
    ``by_rank``: under torchrun only this rank's share (``rank_share``)."""
    dataset = PromptFeatures(predictor, source, **kwargs)
    share = rank_share(dataset) if by_rank else None
    cached = _ListDataset([dataset[j] for j in (range(len(dataset)) if share is None else share)])
    cached.index, cached.skipped = dataset.index, dataset.skipped
    return feature_loader(cached)


__all__ = ["FitImage", "PromptFeatures", "cached_features", "concatenate_items", "feature_loader", "rank_share",
           "synthetic_images"]
