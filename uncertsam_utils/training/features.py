"""The frozen image encoder's outputs of a fit split, computed once per run (or once for many runs).

Every trainer on a frozen SAM-2 decodes the same images epoch after epoch; the encoder is by far the
most expensive part of a step, so it runs once per image (batched) before the first epoch and its
outputs stay in memory (about 256 KB per image on the nano model). Runs that share their data (the
seeds and variants of the fusion modules, the variance head's seeds) can share one ``FrozenFeatures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..model.predictor import Encoding, Predictor


@dataclass
class FrozenFeatures:
    """Image-encoder outputs of a whole split, computed once (batch index = image index)."""

    image_embed: torch.Tensor  # (N, C, e, e)
    high_res_feats: list[torch.Tensor]
    size: int

    def encoding(self, image_ids: torch.Tensor) -> "Encoding":
        from ..model.predictor import Encoding

        return Encoding(
            image_embed=self.image_embed.index_select(0, image_ids),
            high_res_feats=[f.index_select(0, image_ids) for f in self.high_res_feats],
            orig_hw=[(self.size, self.size)] * len(image_ids),
        )


def encode_split(predictor: "Predictor", data, batch: int = 8, *, progress: bool = False, label: str = "encode") -> FrozenFeatures:
    """Run the frozen image encoder once over ``data`` (a ``FitData`` at the model's input size).

    Under ``no_grad`` rather than ``inference_mode``: the fusion modules' second pass back-propagates
    through decoder operations that save these tensors, which inference tensors may not be."""
    from tqdm.auto import tqdm

    if data.size != predictor.image_size:
        raise ValueError(f"data held at {data.size}², the model's input is {predictor.image_size}²")
    chunks = []
    starts = range(0, data.num_images, batch)
    with torch.no_grad():
        for start in tqdm(starts, desc=label, unit="batch", disable=not progress, leave=False):
            images = torch.from_numpy(data.images[start : start + batch]).to(predictor.device)
            inputs = images.permute(0, 3, 1, 2).float() / 255.0
            chunks.append(predictor.encode_inputs(inputs, [(data.size, data.size)] * len(images)))
    return FrozenFeatures(
        image_embed=torch.cat([c.image_embed for c in chunks]),
        high_res_feats=[torch.cat(parts) for parts in zip(*(c.high_res_feats for c in chunks))],
        size=data.size,
    )


__all__ = ["FrozenFeatures", "encode_split"]
