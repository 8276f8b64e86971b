"""The optimiser and learning-rate schedule of the post-hoc modules (variance head, fusion modules).

SAM-2's step-wise schedule, used by the paper for its post-hoc heads and fusion modules: linear
warm-up over the first ``warmup_fraction`` of the steps (SAM-2: 1k of 90k), constant, then linear
decay to 0 over the last ``decay_fraction`` (SAM-2: 5k of 90k). AdamW decays conv and linear weights
only, not biases and norms.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def warmup_constant_decay(step: int, total_steps: int, warmup_fraction: float = 1 / 90, decay_fraction: float = 5 / 90) -> float:
    """The learning-rate factor of optimiser step ``step`` (0-based) of ``total_steps``."""
    warmup = math.floor(total_steps * warmup_fraction)
    decay = math.floor(total_steps * decay_fraction)
    if warmup and step < warmup:
        return (step + 1) / warmup
    if decay and step >= total_steps - decay:
        return max(0.0, (total_steps - step) / decay)
    return 1.0


def adamw_with_schedule(module: torch.nn.Module, *, lr: float, weight_decay: float,
                        lr_factor: Callable[[int], float]):
    """AdamW with weight decay on conv and linear weights only (parameters of two or more dimensions),
    and a ``LambdaLR`` schedule of ``lr_factor(step)``; ``(optimizer, scheduler)``."""
    decayed = [p for p in module.parameters() if p.ndim > 1]
    not_decayed = [p for p in module.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": weight_decay},
                                   {"params": not_decayed, "weight_decay": 0.0}], lr=lr)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
