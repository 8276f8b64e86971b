"""Dense embedding fusion (paper §5.1): a second decoder pass prompted with the first pass and its uncertainty.

The uncertainty map (n, m, m) at the low-resolution mask size passes a stem shaped like SAM's own
``mask_downscaling`` (conv 2×2/2 1→4, LayerNorm2d, GELU, conv 2×2/2 4→16, LayerNorm2d, GELU,
conv 1×1 16→C; 4,684 parameters at C = 256) to the image embedding's size; it is concatenated with
SAM's frozen embedding of the first-pass logits (the mask prompt) and a 1×1 conv (2C → C, 131,328
parameters at C = 256) makes the dense prompt that the decoder adds to the image embedding.

Initialisation:
* ``"exact"`` (default): the fusion conv is [I | 0] with zero bias, so the untrained module passes the
  mask embedding through unchanged and refinement starts exactly at plain mask-prompt refinement
  (tested bit for bit); the stem keeps its seeded random init, so the uncertainty half of the conv
  receives gradients from the first step on.
* ``"paper"``: PyTorch's default init for both parts, as the reference code (training then starts
  from a perturbed SAM).
"""

from __future__ import annotations

from pathlib import Path

import torch
from sam2.modeling.sam2_utils import LayerNorm2d
from torch import nn

from ..artifacts import read_payload, save_atomic

FUSION_FORMAT = "uncertsam-dense-fusion"
FUSION_FORMAT_VERSION = 1
INITS = ("exact", "paper")


class FusionModelMismatchError(ValueError):
    """A fusion file trained on another model (or for another embedding width)."""


class DenseFusion(nn.Module):
    def __init__(self, embed_dim: int, *, mask_in_chans: int = 16, init: str = "exact", seed: int | None = 0):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.embed_dim, self.mask_in_chans, self.init = int(embed_dim), int(mask_in_chans), init
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.uncertainty_downscaling = nn.Sequential(
                nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
                LayerNorm2d(mask_in_chans // 4),
                nn.GELU(),
                nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
                LayerNorm2d(mask_in_chans),
                nn.GELU(),
                nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
            )
            self.fusion = nn.Conv2d(2 * embed_dim, embed_dim, kernel_size=1)
        if init == "exact":
            with torch.no_grad():
                self.fusion.weight.zero_()
                self.fusion.weight[:, :embed_dim, 0, 0] = torch.eye(embed_dim)
                self.fusion.bias.zero_()

    def forward(self, mask_embedding: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
        """``mask_embedding`` (n, C, e, e) from SAM's mask_downscaling, ``uncertainty`` (n, 4e, 4e) → (n, C, e, e)."""
        embedded = self.uncertainty_downscaling(uncertainty[:, None].to(mask_embedding.dtype))
        return self.fusion(torch.cat([mask_embedding, embedded], dim=1))


def is_untrained(fusion: DenseFusion) -> bool:
    """True when the fusion conv is exactly the exact initialisation [I | 0] with zero bias: the module
    then ignores its map (whatever the stem) and is mask-prompt refinement of its first pass."""
    weight, bias = fusion.fusion.weight.detach(), fusion.fusion.bias.detach()
    C = fusion.embed_dim
    identity = torch.eye(C, dtype=weight.dtype, device=weight.device)
    return (torch.equal(weight[:, :C, 0, 0], identity) and not bool(weight[:, C:].any()) and not bool(bias.any()))


def embed_dim_of(model: nn.Module) -> int:
    return int(model.sam_prompt_encoder.embed_dim)


def fused_prompt(predictor, fusion: DenseFusion | None, first_logits: torch.Tensor,
                 uncertainty: torch.Tensor | None) -> torch.Tensor:
    """The dense prompt of the second pass: SAM's mask embedding of ``first_logits`` (n, m, m), fused
    with ``uncertainty`` (n, m, m); without a fusion module, the mask embedding alone (mask-prompt
    refinement, exactly what ``decode(mask_logits=...)`` feeds the decoder)."""
    mask_embedding = predictor.prompt_encoder.mask_downscaling(first_logits[:, None].float())
    if fusion is None:
        return mask_embedding
    return fusion(mask_embedding, uncertainty)


# ------------------------------------------------------------------------------------------ files

def save_fusion(fusion: DenseFusion, path, model_identity: dict, *, uncertainty: str, training: dict | None = None,
                last_state: dict | None = None) -> Path:
    """The module (its selected state) and, when given, the state of the last trained epoch beside it."""
    payload = {
        "format": FUSION_FORMAT, "version": FUSION_FORMAT_VERSION,
        "embed_dim": fusion.embed_dim, "mask_in_chans": fusion.mask_in_chans, "init": fusion.init,
        "uncertainty": uncertainty, "model_identity": dict(model_identity),
        "state_dict": {k: v.detach().cpu() for k, v in fusion.state_dict().items()},
        "training": training or {},
    }
    if last_state is not None:
        payload["last_state_dict"] = {k: v.detach().cpu() for k, v in last_state.items()}
    return save_atomic(payload, path)


STATES = ("selected", "last")


def load_fusion(path, model_identity: dict | None = None, *, uncertainty: str | None = None,
                state: str = "selected") -> tuple[DenseFusion, dict]:
    """The module stored at ``path`` and its payload (``uncertainty``, ``training``...), checked against
    the model it will run on and the uncertainty map it will be fed. ``state``: ``"selected"`` (by
    validation) or ``"last"`` (the last trained epoch's)."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    payload = read_payload(path, kind="dense-fusion", file_format=FUSION_FORMAT, version=FUSION_FORMAT_VERSION)
    if model_identity is not None and payload["model_identity"] != dict(model_identity):
        raise FusionModelMismatchError(f"fusion module {path} was trained on model {payload['model_identity']}, "
                                       f"not on the loaded model {dict(model_identity)}")
    if uncertainty is not None and payload["uncertainty"] != uncertainty:
        raise ValueError(f"fusion module {path} was trained with the {payload['uncertainty']!r} map, "
                         f"not with {uncertainty!r}")
    fusion = DenseFusion(payload["embed_dim"], mask_in_chans=payload["mask_in_chans"], init=payload["init"], seed=None)
    key = "state_dict" if state == "selected" else "last_state_dict"
    if key not in payload:
        raise ValueError(f"fusion module {path} holds no last trained state (trained with 0 epochs, or by older code)")
    fusion.load_state_dict(payload[key], strict=True)
    return fusion.eval(), payload
