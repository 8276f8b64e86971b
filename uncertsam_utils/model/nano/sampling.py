"""The nano SAM-2's training batches: images, objects, flips, box jitter and prompt kinds of one step, all
drawn from the run's ``numpy`` generator (``recipe.py`` says why each is there)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...training.data import FitData
from .recipe import TrainConfig


@dataclass
class Batch:
    """One training step's inputs. Prompts are grouped by kind, in this order: box only, box
    plus dense box, points; ``targets`` follow the same order."""

    images: torch.Tensor  # (B, 3, S, S) float in [0, 1]
    targets: torch.Tensor  # (n, S, S) float {0, 1}
    image_index: torch.Tensor  # (n,) long
    boxes: torch.Tensor  # (n, 4) jittered boxes (rows of point prompts unused)
    kinds: list[str]  # per prompt: "box" | "dense" | "points"
    points: torch.Tensor  # (n, 2, 2)
    point_labels: torch.Tensor  # (n, 2)
    refine: bool = False  # also decode the box prompts with their own first-pass mask as prompt

    def group(self, kind: str) -> torch.Tensor:
        return torch.tensor([i for i, k in enumerate(self.kinds) if k == kind], dtype=torch.long)


KINDS = ("box", "dense", "points")


def sample_batch(data: FitData, rng: np.random.Generator, cfg: TrainConfig, p_dense: float) -> Batch:
    """Draw one step's images, objects, flips, jitter and prompt kinds from ``rng``."""
    s = data.size
    chosen = rng.choice(data.num_images, size=min(cfg.images_per_step, data.num_images), replace=False)
    flips = rng.random(len(chosen)) < cfg.flip_prob
    mask_ids, owner = [], []
    for b, image in enumerate(chosen):
        start, stop = data.first[image], data.first[image + 1]
        picked = rng.permutation(stop - start)[: cfg.objects_per_image] + start
        mask_ids.extend(picked.tolist())
        owner.extend([b] * len(picked))
    mask_ids, owner = np.array(mask_ids), np.array(owner)
    images = data.images[chosen].copy()
    images[flips] = images[flips, :, ::-1]
    masks = data.masks(mask_ids)
    flipped = flips[owner]
    masks[flipped] = masks[flipped, :, ::-1]
    boxes = data.boxes[mask_ids].copy()
    boxes[flipped] = np.stack([s - 1 - boxes[flipped, 2], boxes[flipped, 1], s - 1 - boxes[flipped, 0], boxes[flipped, 3]], 1)
    side = np.concatenate([boxes[:, 2:3] - boxes[:, 0:1], boxes[:, 3:4] - boxes[:, 1:2]], 1)[:, [0, 1, 0, 1]]
    noise = rng.uniform(-1.0, 1.0, size=boxes.shape) * np.minimum(cfg.jitter_frac * side, cfg.jitter_px)
    boxes = np.clip(boxes + noise, 0, s - 1).astype(np.float32)

    n = len(mask_ids)
    u_points, u_dense = rng.random(n), rng.random(n)
    kinds = np.where(u_points < cfg.point_prompt_prob, 2, np.where(u_dense < p_dense, 1, 0))
    points = np.zeros((n, 2, 2), np.float32)
    labels = np.ones((n, 2), np.int64)
    for i in np.flatnonzero(kinds == 2):
        points[i], labels[i] = _sample_points(rng, masks[i], boxes[i])
    order = np.argsort(kinds, kind="stable")
    refine = bool(rng.random() < cfg.refine_prob)
    return Batch(
        images=torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0,
        targets=torch.from_numpy(masks[order]).float(),
        image_index=torch.from_numpy(owner[order]).long(),
        boxes=torch.from_numpy(boxes[order]),
        kinds=[KINDS[k] for k in kinds[order]],
        points=torch.from_numpy(points[order]),
        point_labels=torch.from_numpy(labels[order]),
        refine=refine,
    )


def _sample_points(rng: np.random.Generator, mask: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A positive point, then a positive (p = 0.5) or a negative one (inside the box if possible)."""
    inside = np.flatnonzero(mask)
    first = inside[rng.integers(len(inside))]
    if rng.random() < 0.5:
        second, label = inside[rng.integers(len(inside))], 1
    else:
        outside = ~mask
        x1, y1, x2, y2 = np.round(box).astype(int)
        in_box = np.zeros_like(mask)
        in_box[y1:y2 + 1, x1:x2 + 1] = True
        candidates = np.flatnonzero(outside & in_box)
        if not len(candidates):
            candidates = np.flatnonzero(outside)
        second, label = candidates[rng.integers(len(candidates))], 0
    w = mask.shape[1]
    pts = np.array([[first % w, first // w], [second % w, second // w]], np.float32)
    return pts, np.array([1, label], np.int64)


def box_raster(boxes: torch.Tensor, mask_size: int, image_size: int, logit: float) -> torch.Tensor:
    """Dense box prompt: (n, 4) boxes → (n, m, m) logits, +logit inside the box, -logit outside."""
    centres = (torch.arange(mask_size, dtype=torch.float32) + 0.5) * (image_size / mask_size)
    in_x = (centres[None] >= boxes[:, 0:1]) & (centres[None] <= boxes[:, 2:3] + 1)
    in_y = (centres[None] >= boxes[:, 1:2]) & (centres[None] <= boxes[:, 3:4] + 1)
    return ((in_y[:, :, None] & in_x[:, None, :]).float() * 2 - 1) * logit
