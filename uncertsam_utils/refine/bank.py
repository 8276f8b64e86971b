"""The first passes of fusion training, computed once and shared (the box regime's bank).

Under the evaluation prompt (one box, one step) the first pass of a training image does not depend on
the module being trained: only on the image, the drawn objects and the box jitter. So it is computed
once per (epoch, image) and shared by every variant trained with the same seed (``fusion-laplace``,
``fusion-ones`` and ``fusion-entropy`` read the Laplace and SAM-2 first passes of one decoder call),
instead of once per variant and step. The iterative click regime cannot use it: each step's first
pass depends on the clicks of that step.

Draws: the objects of an image (a random ``max_objects`` beyond that) and SAM's box jitter come from
a generator of (``seed``, ``BANK_TAG``, epoch, image) alone, so an entry is the same whichever
variant asks first, in whatever order, after a resumed run too. Without jitter (validation: the
clean box, every object) the epoch plays no part.

Memory: an entry holds 2 maps of m² floats per object and first pass (about 64 KB per object and
first pass on the nano model); entries beyond ``max_bytes`` are recomputed on use instead of kept
(official SAM-2's 256² maps with up to 32 objects fill a bank fast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..prompts import jitter_boxes
from .passes import UNCERTAINTY_SOURCES, FirstPass, box_points, first_passes

BANK_TAG = 0x62616E6B  # "bank": separates the bank's draws from the training run's own stream
DEFAULT_MAX_BYTES = 2**30


def entry_generator(seed: int, epoch: int, image: int) -> torch.Generator:
    """The generator of one (epoch, image) entry's draws."""
    state = np.random.SeedSequence([int(seed), BANK_TAG, int(epoch), int(image)]).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> 1))


def draw_boxes(data, image: int, *, seed: int, epoch: int, max_objects: int | None, jitter: bool):
    """(mask ids, xyxy boxes) of one image's prompts: its objects (a random ``max_objects`` subset beyond
    that) with their tight boxes, jittered like SAM's training when ``jitter``."""
    first, stop = int(data.first[image]), int(data.first[image + 1])
    objects = torch.arange(first, stop)
    generator = entry_generator(seed, epoch, image) if jitter or max_objects is not None else None
    if max_objects is not None and len(objects) > max_objects:
        objects = objects[torch.randperm(len(objects), generator=generator)[:max_objects]]
    mask_ids = objects.numpy()
    boxes = torch.from_numpy(data.boxes[mask_ids])
    if jitter:
        boxes = jitter_boxes(boxes, data.size, generator)
    return mask_ids, boxes


@dataclass
class BankEntry:
    """The first passes of one image's box prompts."""

    mask_ids: np.ndarray  # rows of data.packed
    points: torch.Tensor  # (k, 2, 2) box corners
    labels: torch.Tensor  # (k, 2): 2 and 3
    passes: dict[str, FirstPass]  # by first-pass kind

    def inputs(self, uncertainty: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The first-pass logits and the map fed to a module trained with ``uncertainty``."""
        kind, map_name = UNCERTAINTY_SOURCES[uncertainty]
        first = self.passes[kind]
        return first.logits, first.uncertainty(map_name)

    @property
    def nbytes(self) -> int:
        tensors = [t for p in self.passes.values() for t in (p.logits, p.entropy, p.iou)]
        return sum(t.numel() * t.element_size() for t in tensors) + self.points.numel() * 4 + self.mask_ids.nbytes


class FirstPassBank:
    """First passes per (epoch, image) of ``data`` whose encodings are ``features`` (``FrozenFeatures``),
    computed on first use and kept up to ``max_bytes``."""

    def __init__(self, predictor, features, data, *, kinds, posterior=None, seed: int = 0, jitter: bool = True,
                 max_objects: int | None = 32, max_bytes: int = DEFAULT_MAX_BYTES):
        if "laplace" in kinds and posterior is None:
            raise ValueError("a bank with the Laplace first pass needs a fitted posterior")
        self.predictor, self.features, self.data, self.posterior = predictor, features, data, posterior
        self.kinds, self.seed, self.jitter, self.max_objects = tuple(sorted(set(kinds))), int(seed), bool(jitter), max_objects
        self.max_bytes = int(max_bytes)
        self.nbytes, self.computed = 0, 0
        self._entries: dict[tuple[int, int], BankEntry] = {}

    def entry(self, epoch: int, image: int) -> BankEntry:
        key = (int(epoch) if self.jitter else 0, int(image))
        if key in self._entries:
            return self._entries[key]
        entry = self.compute(*key)
        if self.nbytes + entry.nbytes <= self.max_bytes:
            self._entries[key] = entry
            self.nbytes += entry.nbytes
        return entry

    def compute(self, epoch: int, image: int) -> BankEntry:
        """One entry, computed now (what ``entry`` keeps)."""
        mask_ids, boxes = draw_boxes(self.data, image, seed=self.seed, epoch=epoch, max_objects=self.max_objects,
                                     jitter=self.jitter)
        points, labels = box_points(boxes)
        encoding = self.features.encoding(torch.tensor([image], device=self.features.image_embed.device))
        passes = first_passes(self.kinds, self.predictor, encoding, points=points, labels=labels,
                              posterior=self.posterior)
        self.computed += 1
        return BankEntry(mask_ids, points, labels, passes)

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["BANK_TAG", "BankEntry", "FirstPassBank", "draw_boxes", "entry_generator"]
