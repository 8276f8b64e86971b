"""The maps a refinement arm is fed, from one prompt's first passes (open questions 1-4).

Every arm's first pass is the Laplace predictive (``refine.passes``): logits logit(p̄) and the entropy
map. The map fed to its fusion module is

* ``laplace``: that entropy (the paper's ``fusion-laplace``);
* ``ones``: an all-ones map (the paper's ablation: the same pathway without uncertainty content);
* ``combined-product`` / ``combined-rank``: the Laplace entropy combined with prompt perturbation's
  entropy map (K boxes: the clean one and K − 1 with SAM's box noise) by the package's combinations
  (``uq.combined.combine_maps``: the pixel-wise product, or the mean of the per-object rank-normalised
  maps). These are ``combined-product`` and ``combined-rank`` with the components laplace and prompt;
  the default ``combined-rank`` also ranks TTA's map, left out here because TTA encodes every training
  image ten times per epoch (tested: equal to the package's combinations with these components).

Prompt perturbation draws its boxes from a generator: per (seed, epoch, image) in training (``draws``),
per image in validation, and the evaluation driver's ``image_generator`` on the test images.
"""

from __future__ import annotations

import numpy as np
import torch

COMBINATIONS = {"combined-product": "product", "combined-rank": "rank_mean"}
PROMPT_TAG = 0x70726D70  # "prmp": prompt perturbation's draws in training, apart from the bank's own


def needs_prompt(map_name: str) -> bool:
    return map_name in COMBINATIONS


def prompt_entropy(predictor, encoding, boxes: torch.Tensor, generator: torch.Generator, K: int) -> torch.Tensor:
    """Prompt perturbation's entropy map (n, m, m) of ``boxes`` (n, 4) on ``encoding``."""
    from ..uq.prompt_perturbation import PromptPerturbation

    result = PromptPerturbation(K=K).predict(predictor, None, np.asarray(boxes, dtype=np.float32), encoding=encoding,
                                             generator=generator)
    return result.maps["entropy"].float()


def draws(seed: int | None, epoch: int, image: int) -> torch.Generator:
    """The generator of prompt perturbation on training image ``image`` in epoch ``epoch`` of seed ``seed``
    (None: a validation image, one draw for every seed)."""
    keys = [PROMPT_TAG, 0, int(image)] if seed is None else [int(seed), PROMPT_TAG, int(epoch) + 1, int(image)]
    state = np.random.SeedSequence(keys).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> 1))


def combined(map_name: str, laplace_entropy: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    from ..uq.combined import combine_maps

    return combine_maps([laplace_entropy.float(), prompt.float()], COMBINATIONS[map_name])


def fed_map(map_name: str, laplace_entropy: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
    """The map an arm with ``map_name`` is fed, given the Laplace entropy (and prompt perturbation's map)."""
    if map_name == "laplace":
        return laplace_entropy
    if map_name == "ones":
        return torch.ones_like(laplace_entropy)
    if map_name in COMBINATIONS:
        if prompt is None:
            raise ValueError(f"the {map_name} map needs prompt perturbation's map")
        return combined(map_name, laplace_entropy, prompt)
    raise ValueError(f"unknown map {map_name!r}")
