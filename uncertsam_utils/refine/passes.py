"""The two decoder passes of refinement, shared by training and evaluation (one road).

First pass (no gradient): SAM-2 (``"sam"``) or the last-layer Laplace predictive (``"laplace"``,
the exact closed form of ``uq/laplace/predictive.py``, fp32) gives logits z₀ and the entropy of its
probability; the map fed to the fusion module is that entropy, or an all-ones map (the paper's
ablation: the same pathway without uncertainty content).

Second pass: the same image encoding and sparse prompt, with the dense prompt made from z₀ (and the
map) by ``fusion.fused_prompt``; single-mask output from token 0, like every method.

Differences from the reference code: the Laplace first pass is the exact predictive instead of 100
bf16 Monte Carlo samples (no clipping of z₀ to ±4.6), and the first pass of a multistep training
prompt does not feed back earlier steps' masks (the reference accumulates clicks only as well).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..uq.measures import binary_entropy
from .fusion import DenseFusion, fused_prompt

FIRST_PASSES = ("sam", "laplace")
MAPS = ("entropy", "ones")
# Table 1's fused variants: the map fed to the fusion module → (first pass, map).
UNCERTAINTY_SOURCES = {"laplace": ("laplace", "entropy"), "ones": ("laplace", "ones"), "entropy": ("sam", "entropy")}


@dataclass
class FirstPass:
    logits: torch.Tensor  # (n, m, m)
    entropy: torch.Tensor  # (n, m, m), nats
    iou: torch.Tensor  # (n,) predicted IoU of token 0

    def uncertainty(self, map_name: str) -> torch.Tensor:
        if map_name == "entropy":
            return self.entropy
        if map_name == "ones":
            return torch.ones_like(self.entropy)
        raise ValueError(f"map must be one of {MAPS}, got {map_name!r}")


def first_pass(kind: str, predictor, encoding, *, points, labels, image_index=None, posterior=None) -> FirstPass:
    """Decode (n, P, 2) points with (n, P) labels (box corners are labels 2 and 3) without gradient."""
    return first_passes((kind,), predictor, encoding, points=points, labels=labels, image_index=image_index,
                        posterior=posterior)[kind]


def first_passes(kinds, predictor, encoding, *, points, labels, image_index=None, posterior=None) -> dict[str, FirstPass]:
    """The first passes of ``kinds`` (``FIRST_PASSES``) from one decoder call: SAM-2's logits are the
    Laplace predictive's MAP logits, so both come from the same decode (the fusion training's bank)."""
    unknown = [kind for kind in kinds if kind not in FIRST_PASSES]
    if unknown:
        raise ValueError(f"first pass must be one of {FIRST_PASSES}, got {unknown[0]!r}")
    if "laplace" in kinds and posterior is None:
        raise ValueError("a Laplace first pass needs a fitted posterior (`uncertsam fit laplace`)")
    out: dict[str, FirstPass] = {}
    with torch.no_grad():
        decoded = predictor.decode(encoding, points=points, point_labels=labels, image_index=image_index,
                                   return_internals="laplace" in kinds)
        logits = decoded.logits.float()
        if "sam" in kinds:
            out["sam"] = FirstPass(logits, binary_entropy(torch.sigmoid(logits)), decoded.iou)
        if "laplace" in kinds:
            from ..uq.laplace.predictive import predictive_maps

            var = posterior.logit_variance(decoded.h, decoded.U)
            _, mean_logits, maps = predictive_maps(logits, var, maps=("entropy",))
            out["laplace"] = FirstPass(mean_logits, maps["entropy"], decoded.iou)
    return out


def second_pass(predictor, encoding, fusion: DenseFusion | None, first_logits: torch.Tensor,
                uncertainty: torch.Tensor | None, *, points, labels, image_index=None):
    """The refined decode (gradients reach ``fusion`` unless the caller disables them)."""
    dense = fused_prompt(predictor, fusion, first_logits, uncertainty)
    return predictor.decode(encoding, points=points, point_labels=labels, image_index=image_index, dense_prompt=dense)


def box_points(boxes) -> tuple[torch.Tensor, torch.Tensor]:
    """xyxy boxes (n, 4) as SAM's two corner points (n, 2, 2) with labels 2 and 3."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    points = boxes.reshape(-1, 2, 2)
    labels = torch.tensor([2, 3]).expand(points.shape[0], 2)
    return points, labels
