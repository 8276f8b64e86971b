"""End-to-end uncertainty-aware refinement (open question 1): decoder, uncertainty and fusion trained together.

The paper's refinement is post hoc: SAM-2 frozen, a Laplace posterior fitted on it, then a fusion
module trained on the frozen passes. Here the three are one model (``EndToEndRefiner``):

* **the mask decoder**: a trainable copy of SAM-2's (the image encoder stays frozen, so encodings are
  shared with every other arm; the prompt encoder stays frozen too);
* **the uncertainty signal**: a Laplace-style last layer, a diagonal Gaussian over the treated layer's
  weights (the last Linear of mask token 0's hypernetwork, as ``uq/laplace``) whose variances are
  parameters (``LearnedLastLayerVariance``), initialised at a fitted posterior's and trained by the
  predictive's Bernoulli NLL (the criterion that chooses the tempered posterior's temperature) and
  by the refinement loss through the map. The first pass is its closed-form predictive
  (``predictive_maps``): logits logit(p̄) and the entropy map, differentiable in the decoder and the
  variances;
* **the fusion module** (``fusion.DenseFusion``, exact init), fed the map (or the all-ones map of the
  control arm, which changes nothing else).

Loss per image: SAM's refinement loss of the second pass + SAM's loss of the first pass's own logits
(the decoder keeps segmenting) + the NLL of p̄ (mean over objects and pixels at the input frame).
Gradients flow through the first pass into the second (nothing detached: that is what "end to end"
adds over post-hoc fusion). At initialisation the refiner is exactly post-hoc ``fusion-laplace``
(untrained), i.e. mask-prompt refinement of the Laplace first pass (tested).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..model.predictor import Predictor
from ..uq.laplace.predictive import predictive_maps
from .fusion import DenseFusion, embed_dim_of, fused_prompt

E2E_MAPS = ("entropy", "ones")


class LearnedLastLayerVariance(nn.Module):
    """A diagonal Gaussian over the treated Linear's weights (C_out × D) and bias, variances learned.

    Var(z_c) = Σ_d h_d² σ²_cd + σ²_c for z = W h + b, and the pixel logit variance is
    v_p = Σ_c U_cp² Var(z_c) (``pixel_logit_variance`` of a diagonal posterior, differentiable)."""

    def __init__(self, weight_variance: torch.Tensor, bias_variance: torch.Tensor):
        super().__init__()
        self.log_weight_variance = nn.Parameter(weight_variance.double().clamp_min(1e-30).log().float())
        self.log_bias_variance = nn.Parameter(bias_variance.double().clamp_min(1e-30).log().float())

    @classmethod
    def from_posterior(cls, posterior) -> "LearnedLastLayerVariance":
        """Initialised at a fitted diagonal posterior's marginal variances (laplace-torch's parameter
        order: the weight row by row, then the bias)."""
        if posterior.structure != "diag":
            raise ValueError(f"the learned last layer starts from a diagonal posterior, not {posterior.structure!r}")
        variance = posterior.la.posterior_variance.detach().float().cpu()
        out_features = int(posterior.la.model.layer.out_features)
        in_features = int(posterior.la.model.layer.in_features)
        if variance.numel() != out_features * (in_features + 1):
            raise ValueError(f"posterior has {variance.numel()} variances, not {out_features * (in_features + 1)}")
        weights = variance[: out_features * in_features].reshape(out_features, in_features)
        return cls(weights, variance[out_features * in_features:])

    def logit_variance(self, h: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        """(n, D) inputs of the treated layer and (n, C, m, m) upscaled embeddings → (n, m, m)."""
        z_var = (h.float() ** 2) @ self.log_weight_variance.exp().T + self.log_bias_variance.exp()
        return torch.einsum("nc,ncp->np", z_var, U.float().flatten(2) ** 2).reshape(U.shape[0], *U.shape[2:])


@dataclass
class EndToEndPasses:
    first_logits: torch.Tensor  # (n, m, m) the decoder's own (MAP) logits
    first_iou: torch.Tensor  # (n,)
    predictive_logits: torch.Tensor  # (n, m, m) logit of the predictive mean probability (the first pass)
    uncertainty: torch.Tensor  # (n, m, m) the map fed to the fusion module
    logits: torch.Tensor  # (n, m, m) refined
    iou: torch.Tensor  # (n,) refined predicted IoU


class EndToEndRefiner(nn.Module):
    """Trainable decoder copy + learned last-layer variance + fusion module; ``map_name`` the fed map."""

    def __init__(self, model: nn.Module, posterior, *, map_name: str = "entropy", seed: int = 0):
        super().__init__()
        if map_name not in E2E_MAPS:
            raise ValueError(f"map must be one of {E2E_MAPS}, got {map_name!r}")
        self.map_name = map_name
        self.decoder = copy.deepcopy(model.sam_mask_decoder).float()
        self.variance = LearnedLastLayerVariance.from_posterior(posterior)
        self.fusion = DenseFusion(embed_dim_of(model), init="exact", seed=seed)
        for p in self.parameters():
            p.requires_grad_(True)

    def predictor(self, predictor: Predictor) -> Predictor:
        """A predictor that decodes with this refiner's decoder (same model, encoder and prompt encoder)."""
        own = Predictor(predictor.model, stability_fallback=predictor.stability_fallback, decoder=predictor.decoder_impl)
        own.decoder = self.decoder
        return own

    def passes(self, own: Predictor, encoding, *, points, labels, image_index=None) -> EndToEndPasses:
        """Both passes with gradients (``own``: ``self.predictor(...)``)."""
        first = own.decode(encoding, points=points, point_labels=labels, image_index=image_index,
                           return_internals=True)
        var = self.variance.logit_variance(first.h, first.U)
        _, logits, maps = predictive_maps(first.logits.float(), var, maps=("entropy",))
        uncertainty = maps["entropy"] if self.map_name == "entropy" else torch.ones_like(maps["entropy"])
        dense = fused_prompt(own, self.fusion, logits, uncertainty)
        second = own.decode(encoding, points=points, point_labels=labels, image_index=image_index, dense_prompt=dense)
        return EndToEndPasses(first.logits.float(), first.iou, logits, uncertainty, second.logits.float(), second.iou)


def predictive_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Bernoulli NLL of the predictive (n, m, m) logits against (n, S, S) targets, at the input frame."""
    size = targets.shape[-1]
    full = F.interpolate(logits[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return F.binary_cross_entropy_with_logits(full, targets)


def end_to_end_loss(passes: EndToEndPasses, targets: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    """Refined SAM loss + first-pass SAM loss + predictive NLL; the parts and the refined IoUs."""
    from .training import refinement_loss

    refined, actual = refinement_loss(passes.logits, passes.iou, targets, config)
    first, first_actual = refinement_loss(passes.first_logits, passes.first_iou, targets, config)
    nll = predictive_nll(passes.predictive_logits, targets)
    total = refined + first + nll
    return total, {"loss": float(total.detach()), "refined": float(refined.detach()), "first": float(first.detach()),
                   "nll": float(nll.detach()), "iou_refined": float(actual.mean()), "iou_first": float(first_actual.mean())}
