"""A fit split in memory, the data of every trainer (the nano SAM-2, the variance head, the fusion modules).

Images are held as uint8 at the model's square input size, masks bit-packed, with each mask's tight
box; ``fingerprint`` hashes the content (part of a run's resume key and of its record).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_SIZE = 256  # the nano SAM-2's input size (model/nano/recipe.py), the project's default model


def tight_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool → (N, 4) float32 xyxy tight boxes, inclusive pixel indices (the paper's)."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    y1, y2 = rows.argmax(1), rows.shape[1] - 1 - rows[:, ::-1].argmax(1)
    x1, x2 = cols.argmax(1), cols.shape[1] - 1 - cols[:, ::-1].argmax(1)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


@dataclass
class FitData:
    """A split held in memory at the model's input size: images uint8, masks bit-packed."""

    images: np.ndarray  # (N, S, S, 3) uint8
    packed: np.ndarray  # (K, S*S/8) uint8, np.packbits of each flattened mask
    boxes: np.ndarray  # (K, 4) float32 tight boxes in the S frame
    first: np.ndarray  # (N + 1,) mask offsets per image
    size: int = DEFAULT_SIZE
    fingerprint: str = ""

    @property
    def num_images(self) -> int:
        return self.images.shape[0]

    @property
    def num_masks(self) -> int:
        return self.packed.shape[0]

    def masks(self, index: np.ndarray) -> np.ndarray:
        flat = np.unpackbits(self.packed[index], axis=-1, count=self.size * self.size)
        return flat.reshape(len(index), self.size, self.size).astype(bool)

    @classmethod
    def from_items(cls, items: Iterable[tuple[np.ndarray, np.ndarray]], size: int = DEFAULT_SIZE) -> "FitData":
        """From (image (H, W, 3) uint8, masks (N, H, W) bool) pairs; resized to size² if needed.

        Images without a mask left at that size are skipped (they give no training prompt)."""
        images, packed, boxes, first = [], [], [], [0]
        digest = hashlib.blake2b(digest_size=16)
        for image, masks in items:
            image, masks = _to_square(np.asarray(image), np.asarray(masks, dtype=bool).reshape(-1, *np.shape(image)[:2]), size)
            masks = masks[masks.reshape(len(masks), -1).any(1)]
            if not len(masks):
                continue
            images.append(image)
            packed.append(np.packbits(masks.reshape(len(masks), -1), axis=-1))
            boxes.append(tight_boxes(masks))
            first.append(first[-1] + len(masks))
            digest.update(image.tobytes())
            digest.update(packed[-1].tobytes())
        if not images:
            raise ValueError("no image with a non-empty mask")
        return cls(np.stack(images), np.concatenate(packed), np.concatenate(boxes), np.array(first), size, digest.hexdigest())


def _to_square(image: np.ndarray, masks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    if image.shape[:2] == (size, size):
        return image, masks
    from ..data.resize import resize_masks
    from ..model.images import to_rgb_uint8

    tensor = torch.from_numpy(to_rgb_uint8(image)).permute(2, 0, 1)[None].float()
    image = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    image = image[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return image, resize_masks(masks, size)  # the paper's squash, as ``Sample.boxes`` uses


def read_split(root: Path, dataset: str, split: str, limit: int | None = None, *, progress: bool = False):
    """The first ``limit`` samples of ``<root>/<dataset>/<split>`` (published layout), in id order."""
    from ..data.layout import SplitReader

    reader = SplitReader(Path(root), dataset, split)
    count = len(reader) if limit is None else min(limit, len(reader))
    indices: Iterable[int] = range(count)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"read {dataset}/{split}", unit="img", leave=False)
    return [reader[i] for i in indices]


def load_fit_split(root: Path, split: str, size: int = DEFAULT_SIZE, *, limit: int | None = None,
                   progress: bool = False) -> FitData:
    """``<root>/fit/<split>`` (its first ``limit`` images) in memory at the model's input size."""
    samples = read_split(Path(root), "fit", split, limit, progress=progress)
    return FitData.from_items(((s.image, s.masks) for s in samples), size=size)
