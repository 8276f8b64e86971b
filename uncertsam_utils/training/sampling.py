"""Seeded sampling: each training run draws from its own stream, derived from its seed and a tag naming
the trainer, so that two trainers (or a trainer and a model's init) given the same seed draw differently."""

from __future__ import annotations

import numpy as np
import torch


def stream_seed(seed: int, tag: int) -> int:
    """A 63-bit seed for ``torch.Generator`` from (``seed``, ``tag``)."""
    return int(np.random.SeedSequence([int(seed), int(tag)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def stream(seed: int, tag: int) -> torch.Generator:
    """The generator of every draw of one training run (order, subsets, jitter, clicks...)."""
    return torch.Generator().manual_seed(stream_seed(seed, tag))


def epoch_order(count: int, generator: torch.Generator) -> torch.Tensor:
    """The order in which an epoch visits ``count`` items, a fresh permutation per epoch."""
    return torch.randperm(count, generator=generator)
