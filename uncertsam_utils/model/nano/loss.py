"""The nano SAM-2's training loss (SAM's): token 0 BCE + Dice at the input size, best-of-three BCE + Dice of
tokens 1-3 at the low resolution, MSE of the predicted IoUs, and the iterative step's second pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .recipe import TrainConfig
from .sampling import KINDS, Batch, box_raster


def _bce_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE + soft Dice per mask over the last two dims: (..., h, w) → (...)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(-2).mean(-1)
    prob = torch.sigmoid(logits).flatten(-2)
    t = target.flatten(-2)
    dice = 1 - (2 * (prob * t).sum(-1) + 1) / (prob.sum(-1) + t.sum(-1) + 1)
    return bce + dice


def _hard_iou(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    pred = logits.detach() > 0
    inter = (pred & gt).flatten(-2).sum(-1).float()
    return inter / (pred | gt).flatten(-2).sum(-1).float().clamp(min=1)


def forward_batch(predictor, batch: Batch, cfg: TrainConfig):
    """All four tokens' low-res logits (n, 4, m, m) and IoU predictions (n, 4), in batch order, and the encoding."""
    encoding = predictor.encode_inputs(batch.images, [(predictor.image_size, predictor.image_size)])
    logits, ious = [], []
    for kind in KINDS:
        idx = batch.group(kind)
        if not len(idx):
            continue
        kwargs = dict(image_index=batch.image_index[idx], return_all_tokens=True)
        if kind == "points":
            out = predictor.decode(encoding, points=batch.points[idx], point_labels=batch.point_labels[idx], **kwargs)
        else:
            dense = None
            if kind == "dense":
                dense = box_raster(batch.boxes[idx], predictor.mask_size, predictor.image_size, cfg.dense_logit)
            out = predictor.decode(encoding, boxes=batch.boxes[idx], mask_logits=dense, **kwargs)
        logits.append(out.all_logits)
        ious.append(out.all_iou)
    return torch.cat(logits), torch.cat(ious), encoding


def _sam_losses(logits: torch.Tensor, pred_iou: torch.Tensor, targets: torch.Tensor, cfg: TrainConfig):
    """(loss, single, multi, iou, actual IoUs) of all four tokens' logits (n, 4, m, m) against (n, S, S)."""
    s, m = targets.shape[-1], logits.shape[-1]
    full0 = F.interpolate(logits[:, 0:1], size=(s, s), mode="bilinear", align_corners=False)[:, 0]
    loss_single = _bce_dice(full0, targets).mean()
    low_target = F.adaptive_avg_pool2d(targets[:, None], (m, m))  # area fractions
    loss_multi = _bce_dice(logits[:, 1:], low_target.expand(-1, 3, -1, -1)).min(dim=1).values.mean()
    with torch.no_grad():  # each token's actual IoU: token 0 at full resolution, 1-3 at m²
        actual = torch.cat([_hard_iou(full0[:, None], targets[:, None] > 0.5),
                            _hard_iou(logits[:, 1:], low_target > 0.5)], dim=1)
    loss_iou = F.mse_loss(pred_iou, actual)
    loss = loss_single + cfg.multimask_weight * loss_multi + cfg.iou_weight * loss_iou
    return loss, loss_single, loss_multi, loss_iou, actual


def batch_loss(predictor, batch: Batch, cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    logits, pred_iou, encoding = forward_batch(predictor, batch, cfg)
    loss, loss_single, loss_multi, loss_iou, actual = _sam_losses(logits, pred_iou, batch.targets, cfg)
    parts = {"single": loss_single.item(), "multi": loss_multi.item(), "iou": loss_iou.item(),
             "train_iou": actual[:, 0].mean().item()}
    boxes = batch.group("box")
    if batch.refine and len(boxes):
        # The box prompts again, with their own detached single-mask logits as the mask prompt.
        again = predictor.decode(encoding, boxes=batch.boxes[boxes], mask_logits=logits[boxes, 0].detach(),
                                 image_index=batch.image_index[boxes], return_all_tokens=True)
        refined = _sam_losses(again.all_logits, again.all_iou, batch.targets[boxes], cfg)
        loss = loss + refined[0]
        parts["refined_iou"] = refined[4][:, 0].mean().item()
    parts["loss"] = loss.item()
    return loss, parts
