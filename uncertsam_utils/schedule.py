"""SAM-2's step-wise learning-rate schedule, used by the paper for its post-hoc heads and fusion modules:
linear warm-up over the first ``warmup_fraction`` of the steps (SAM-2: 1k of 90k), constant, then
linear decay to 0 over the last ``decay_fraction`` (SAM-2: 5k of 90k)."""

from __future__ import annotations

import math


def warmup_constant_decay(step: int, total_steps: int, warmup_fraction: float = 1 / 90, decay_fraction: float = 5 / 90) -> float:
    """The learning-rate factor of optimiser step ``step`` (0-based) of ``total_steps``."""
    warmup = math.floor(total_steps * warmup_fraction)
    decay = math.floor(total_steps * decay_fraction)
    if warmup and step < warmup:
        return (step + 1) / warmup
    if decay and step >= total_steps - decay:
        return max(0.0, (total_steps - step) / decay)
    return 1.0
