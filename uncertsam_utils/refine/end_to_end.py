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

import numpy as np
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


# ------------------------------------------------------------------------------------ training

def end_to_end_optimizer(refiner: EndToEndRefiner, *, lr: float, decoder_lr: float, weight_decay: float,
                         lr_factor):
    """AdamW (decay on weights of two or more dimensions, as ``adamw_with_schedule``) with the decoder at
    ``decoder_lr`` (fine-tuning a trained decoder) and the new parts at ``lr``; one schedule for all."""
    groups = []
    for params, rate in ((list(refiner.decoder.parameters()), decoder_lr),
                         (list(refiner.variance.parameters()) + list(refiner.fusion.parameters()), lr)):
        groups.append({"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay, "lr": rate})
        groups.append({"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": rate})
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


@dataclass
class EndToEndTrainer:
    """The end-to-end refiner's part of the training loop (``training.Trainer``).

    Trains on the images ``subset`` of ``data`` (encodings ``features``), each step one image's objects
    under SAM's jittered boxes drawn exactly as the fusion modules' bank draws them for the same seed
    (``bank.draw_boxes``), so the end-to-end and post-hoc arms of a seed see the same prompts. Validation:
    the refined mIoU (and loss) under the clean box on ``val_data`` (encodings ``val_features``)."""

    module: EndToEndRefiner
    predictor: Predictor  # the frozen model's (its encoder made the features)
    data: object  # FitData
    features: object  # training.FrozenFeatures of data
    subset: object  # np.ndarray of image indices into data
    val_data: object
    val_features: object
    config: object  # refine.training.FusionTrainConfig: loss weights, max_objects, jitter, val_images
    seed: int = 0
    state_name = "end_to_end"

    def prepare(self) -> None:
        self.own = self.module.predictor(self.predictor)

    def batches(self, order: torch.Tensor, start: int, generator: torch.Generator, epoch: int):
        from .bank import draw_boxes

        for position in range(start, len(order)):
            image = int(self.subset[int(order[position])])
            mask_ids, boxes = draw_boxes(self.data, image, seed=self.seed, epoch=epoch,
                                         max_objects=self.config.max_objects, jitter=self.config.jitter)
            yield image, mask_ids, boxes

    def backward(self, batch) -> dict[str, float]:
        from .passes import box_points

        image, mask_ids, boxes = batch
        targets = torch.from_numpy(self.data.masks(mask_ids)).float().to(self.predictor.device)
        points, labels = box_points(boxes)
        encoding = self.features.encoding(torch.tensor([image]))
        loss, parts = end_to_end_loss(self.module.passes(self.own, encoding, points=points, labels=labels),
                                      targets, self.config)
        loss.backward()
        return parts

    def validate(self) -> dict:
        from .passes import box_points
        from .training import refinement_loss

        self.module.eval()
        losses, refined, first = [], [], []
        with torch.no_grad():
            for image in range(min(self.config.val_images, self.val_data.num_images)):
                ids = np.arange(int(self.val_data.first[image]), int(self.val_data.first[image + 1]))
                targets = torch.from_numpy(self.val_data.masks(ids)).float().to(self.predictor.device)
                points, labels = box_points(torch.from_numpy(self.val_data.boxes[ids]))
                passes = self.module.passes(self.own, self.val_features.encoding(torch.tensor([image])),
                                            points=points, labels=labels)
                loss, parts = end_to_end_loss(passes, targets, self.config)
                losses.append(float(loss) * len(ids))
                refined += refinement_loss(passes.logits, passes.iou, targets, self.config)[1].tolist()
                first += refinement_loss(passes.predictive_logits, passes.first_iou, targets, self.config)[1].tolist()
        self.module.train()
        return {"val_loss": sum(losses) / max(1, len(refined)), "val_miou": float(np.mean(refined)),
                "val_miou_first": float(np.mean(first)), "val_ious": refined}

    def describe(self, row: dict, seconds: float) -> str:
        return (f"end-to-end {self.module.map_name} epoch {row['epoch']}: train loss {row['train_loss']:.4f}  "
                f"val mIoU first pass {row['val_miou_first']:.4f} -> refined {row['val_miou']:.4f}")
