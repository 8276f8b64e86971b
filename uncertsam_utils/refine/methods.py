"""Table 1's refinement variants as methods of the common interface (``uncertsam eval`` scores them).

| name             | first pass | second-pass prompt (plus the same box)                     | needs            |
|------------------|------------|------------------------------------------------------------|------------------|
| ``baseline``     | SAM-2      | (no second pass; ``uq/baseline.py``)                       |                  |
| ``mask-prompt``  | SAM-2      | its own logits as mask prompt, no fusion                   |                  |
| ``fusion-laplace`` | Laplace  | dense fusion of the Laplace logits with their entropy map  | posterior, fusion |
| ``fusion-ones``  | Laplace    | dense fusion of the Laplace logits with an all-ones map    | posterior, fusion |
| ``fusion-entropy`` | SAM-2    | dense fusion of SAM's logits with SAM's entropy map        | fusion           |
| ``gt-mask-prompt`` | —        | the ground-truth mask as mask prompt (upper bound)         | ground truth     |

``fusion-laplace`` and ``fusion-ones`` differ only in the map (tested). The returned uncertainty is
the entropy of the refined probability (the paper's ``default_prediction``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..uq.base import UQMethod, UQResult, encode_once
from ..uq.laplace import resolve_posterior
from ..uq.measures import binary_entropy, safe_logit
from .fusion import DenseFusion, load_fusion
from .passes import UNCERTAINTY_SOURCES, box_points, first_pass, second_pass


def _result(name: str, decoded, encoding, info: dict) -> UQResult:
    logits = decoded.logits.float()
    prob = torch.sigmoid(logits)
    return UQResult(name, logits, prob, {"entropy": binary_entropy(prob)}, "entropy", encoding.orig_hw[0],
                    {"iou_pred": decoded.iou, **info})


class MaskPromptRefinement(UQMethod):
    """SAM-2, then SAM-2 again with its own first-pass logits as mask prompt (no fusion module)."""

    name = "mask-prompt"

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None) -> UQResult:
        with torch.inference_mode():
            encoding = encode_once(predictor, image, encoding)
            points, labels = box_points(boxes)
            first = first_pass("sam", predictor, encoding, points=points, labels=labels)
            refined = second_pass(predictor, encoding, None, first.logits, None, points=points, labels=labels)
        return _result(self.name, refined, encoding, {})

    def equivalence_key(self):
        """Mask-prompt refinement of SAM-2's first pass (``dedup.py``)."""
        return ("mask-prompt", "sam", None)


class GroundTruthMaskPrompt(UQMethod):
    """The upper bound: the ground-truth mask, as logits ±16.1 (safe_logit of 0/1, as the paper), resized
    to the mask-prompt size with antialiased bilinear interpolation, prompts the decoder with the box."""

    name = "gt-mask-prompt"
    needs_ground_truth: ClassVar[bool] = True

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None, gt_masks=None) -> UQResult:
        if gt_masks is None:
            raise ValueError(f"method {self.name!r} needs the ground-truth masks (gt_masks=, input frame)")
        with torch.inference_mode():
            encoding = encode_once(predictor, image, encoding)
            gt = safe_logit(torch.as_tensor(gt_masks, device=predictor.device).float())
            prompt = F.interpolate(gt[:, None], size=(predictor.mask_size,) * 2, mode="bilinear",
                                   align_corners=False, antialias=True)[:, 0]
            decoded = predictor.decode(encoding, boxes=boxes, mask_logits=prompt)
        return _result(self.name, decoded, encoding, {})


class _FusionRefinement(UQMethod):
    """Dense embedding fusion with a trained module (``uncertsam train fusion --uncertainty ...``)."""

    uncertainty: ClassVar[str]

    def __init__(self, fusion: "DenseFusion | str | Path | None" = None, posterior=None):
        if isinstance(fusion, (str, Path)):
            self.fusion = str(fusion)
            self._fusion, _ = load_fusion(fusion, uncertainty=self.uncertainty)
        else:
            self.fusion = None if fusion is None else f"<{fusion.init} fusion>"
            self._fusion = fusion
        first, _ = UNCERTAINTY_SOURCES[self.uncertainty]
        self.posterior, self._posterior = resolve_posterior(posterior)
        if first == "laplace" and self._posterior is None:
            raise ValueError(f"method {self.name!r} has a Laplace first pass: pass posterior=FILE (`uncertsam fit laplace`)")

    @classmethod
    def for_benchmark(cls, loaded_model, generator: torch.Generator) -> "UQMethod":
        """An untrained (exact-init) module and, for a Laplace first pass, a posterior fitted on 4
        synthetic images: the cost of a prediction does not depend on the weights."""
        from .fusion import embed_dim_of

        posterior = None
        if UNCERTAINTY_SOURCES[cls.uncertainty][0] == "laplace":
            from ..uq.laplace import benchmark_posterior

            posterior = benchmark_posterior(loaded_model, "exact", generator)
        return cls(fusion=DenseFusion(embed_dim_of(loaded_model.model)), posterior=posterior)

    def equivalence_key(self):
        """With an untrained module, mask-prompt refinement of the first pass (``dedup.py``); else None."""
        from .fusion import is_untrained

        if self._fusion is None or not is_untrained(self._fusion):
            return None
        first, _ = UNCERTAINTY_SOURCES[self.uncertainty]
        if first == "sam":
            return ("mask-prompt", "sam", None)
        from .training import posterior_fingerprint

        return ("mask-prompt", first, posterior_fingerprint(self._posterior))

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None) -> UQResult:
        if self._fusion is None:
            raise ValueError(f"method {self.name!r} needs a trained fusion module: fusion=FILE from "
                             f"`uncertsam train fusion --uncertainty {self.uncertainty}`")
        first_kind, map_name = UNCERTAINTY_SOURCES[self.uncertainty]
        fusion = self._fusion.to(predictor.device)
        with torch.inference_mode():
            encoding = encode_once(predictor, image, encoding)
            points, labels = box_points(boxes)
            first = first_pass(first_kind, predictor, encoding, points=points, labels=labels, posterior=self._posterior)
            refined = second_pass(predictor, encoding, fusion, first.logits, first.uncertainty(map_name),
                                  points=points, labels=labels)
        return _result(self.name, refined, encoding, {"first_pass": first_kind, "map": map_name})


class FusionLaplace(_FusionRefinement):
    name = "fusion-laplace"
    uncertainty = "laplace"


class FusionOnes(_FusionRefinement):
    name = "fusion-ones"
    uncertainty = "ones"


class FusionEntropy(_FusionRefinement):
    name = "fusion-entropy"
    uncertainty = "entropy"


REFINEMENT_METHODS = (MaskPromptRefinement, FusionLaplace, FusionOnes, FusionEntropy, GroundTruthMaskPrompt)
FUSION_METHODS = {cls.uncertainty: cls for cls in (FusionLaplace, FusionOnes, FusionEntropy)}
