"""Fusion modules with a receptive field (open question 3): does spatial context let the map matter?

The paper's fusion (``fusion.DenseFusion``) mixes the mask embedding and the embedded uncertainty map
with a 1×1 convolution: every embedding position sees only its own uncertainty, so the map can at
most re-weight the mask prompt pixel by pixel. ``SpatialFusion`` adds a context branch on the same
concatenation: ``len(dilations)`` 3×3 convolutions with the given dilations (GELU between them),
whose output is added to the 1×1 fusion's. With dilations (1, 2, 4) each output position sees a
15×15 window of the embedding (the nano's whole 16×16 embedding; a quarter of SAM-2's 64×64).

Exact initialisation: the 1×1 part is ``DenseFusion``'s [I | 0] and the context branch's last
convolution is zero (weights and bias), so the untrained module is mask-prompt refinement, as the
1×1 module is (tested). The last convolution receives gradients from the first step; the earlier
ones once it is non-zero (a zero-initialised residual branch).
"""

from __future__ import annotations

import torch
from torch import nn

from .fusion import INITS, DenseFusion

ARCHITECTURES = ("1x1", "dilated")


class SpatialFusion(DenseFusion):
    def __init__(self, embed_dim: int, *, mask_in_chans: int = 16, init: str = "exact", seed: int | None = 0,
                 dilations: tuple[int, ...] = (1, 2, 4), width: int | None = None):
        super().__init__(embed_dim, mask_in_chans=mask_in_chans, init=init, seed=seed)
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ValueError(f"dilations must be positive integers, got {dilations}")
        self.dilations, self.width = tuple(int(d) for d in dilations), int(width or embed_dim)
        layers: list[nn.Module] = []
        channels = 2 * self.embed_dim
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed + 1)  # the 1x1 part keeps DenseFusion's draws for this seed
            for k, d in enumerate(self.dilations):
                last = k == len(self.dilations) - 1
                out = self.embed_dim if last else self.width
                layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=d, dilation=d))
                if not last:
                    layers.append(nn.GELU())
                channels = out
        self.context = nn.Sequential(*layers)
        if init == "exact":
            with torch.no_grad():
                self.context[-1].weight.zero_()
                self.context[-1].bias.zero_()

    def forward(self, mask_embedding: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
        embedded = self.uncertainty_downscaling(uncertainty[:, None].to(mask_embedding.dtype))
        both = torch.cat([mask_embedding, embedded], dim=1)
        return self.fusion(both) + self.context(both)

    @property
    def receptive_field(self) -> int:
        """Side of the embedding window one output position sees (the 1x1 part sees 1)."""
        return 1 + 2 * sum(self.dilations)


def make_fusion(architecture: str, embed_dim: int, *, init: str = "exact", seed: int | None = 0) -> DenseFusion:
    """The paper's 1×1 module (``"1x1"``) or the context module (``"dilated"``: dilations 1, 2, 4)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if architecture == "1x1":
        return DenseFusion(embed_dim, init=init, seed=seed)
    if architecture == "dilated":
        return SpatialFusion(embed_dim, init=init, seed=seed)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
