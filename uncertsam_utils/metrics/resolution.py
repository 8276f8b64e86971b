"""The paper's half resolution (BIG, §1.4): masks downscaled by nearest, logits and maps bilinearly."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def half_nearest(mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool → (B, ⌊H/2⌋, ⌊W/2⌋) bool, nearest (torch's ``scale_factor=0.5``)."""
    return F.interpolate(mask[:, None].float(), scale_factor=0.5, mode="nearest")[:, 0] > 0.5


def half_bilinear(values: torch.Tensor) -> torch.Tensor:
    """(B, H, W) float → (B, ⌊H/2⌋, ⌊W/2⌋), bilinear, align_corners=False (a 2×2 mean)."""
    return F.interpolate(values[:, None].float(), scale_factor=0.5, mode="bilinear", align_corners=False)[:, 0]
