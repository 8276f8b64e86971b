"""Prompt perturbation: the spread of SAM-2's answer when its prompt is moved as in SAM's training.

For each object, the clean box and K − 1 copies with SAM's box noise (``uncertsam_utils.prompts``:
each coordinate moves by U[−1, 1] · min(0.1 · side, 20 px in the 1024 frame)) are decoded on one
image encoding. p̄ = mean_k σ(z_k); the maps are H(p̄) (the paper's), the mutual information and
the unbiased std over the K probabilities; logits = logit(p̄), in log space from the K logits (no clamp).

Differences from the reference code (paper_protocol.md §3.2, §8.2): all B × K prompts go through
one decoder call instead of K sequential ones, and the noise comes from the caller's generator.
Optional point prompts get the paper's ±20 px noise (scaled to the model's frame) and, when
ground-truth masks are given, labels re-read at the moved location.
"""

from __future__ import annotations

import torch

from ..prompts import (
    BOX_NOISE_FRACTION,
    BOX_NOISE_MAX_PIXELS,
    POINT_NOISE_MAX_PIXELS,
    jitter_boxes,
    jitter_points,
    labels_from_masks,
)
from .base import UQMethod, UQResult, encode_once


class PromptPerturbation(UQMethod):
    name = "prompt"
    uses_random = True

    def __init__(
        self,
        K: int = 10,
        box_fraction: float = BOX_NOISE_FRACTION,
        box_max_pixels: float = BOX_NOISE_MAX_PIXELS,
        point_max_pixels: float = POINT_NOISE_MAX_PIXELS,
    ):
        """``K`` prompts per object (the clean one + K − 1 noisy ones); pixel caps in the 1024 frame."""
        if K < 1:
            raise ValueError(f"K must be at least 1, got {K}")
        self.K = int(K)
        self.box_fraction = float(box_fraction)
        self.box_max_pixels = float(box_max_pixels)
        self.point_max_pixels = float(point_max_pixels)

    def perturbed_prompts(self, boxes, points, point_labels, gt_masks, image_size: int, generator: torch.Generator, device):
        """(B, K, ...) prompts: index 0 along K is the clean prompt, the rest are noisy copies."""
        noisy_copies = self.K - 1
        out_boxes = out_points = out_labels = None
        if boxes is not None:
            clean = torch.as_tensor(boxes, dtype=torch.float32, device=device)
            noisy = jitter_boxes(
                clean[:, None].expand(-1, noisy_copies, -1), image_size, generator,
                fraction=self.box_fraction, max_pixels=self.box_max_pixels,
            )
            out_boxes = torch.cat([clean[:, None], noisy], dim=1)
        if points is not None:
            clean = torch.as_tensor(points, dtype=torch.float32, device=device)  # (B, P, 2)
            labels = torch.as_tensor(point_labels, device=device).long()  # (B, P)
            noisy = jitter_points(
                clean[:, None].expand(-1, noisy_copies, -1, -1), image_size, generator, max_pixels=self.point_max_pixels
            )
            # A moved point may leave the object; with the GT at hand its label follows it (as SAM's noise does).
            noisy_labels = (
                labels_from_masks(noisy, gt_masks, image_size)
                if gt_masks is not None
                else labels[:, None].expand(-1, noisy_copies, -1)
            )
            out_points = torch.cat([clean[:, None], noisy], dim=1)
            out_labels = torch.cat([labels[:, None], noisy_labels], dim=1)
        return out_boxes, out_points, out_labels

    def predict(
        self,
        predictor,
        image,
        boxes,
        *,
        encoding=None,
        generator=None,
        points=None,
        point_labels=None,
        gt_masks=None,
    ) -> UQResult:
        """``boxes`` (B, 4) and/or ``points`` (B, P, 2) with ``point_labels`` (B, P), input frame;
        ``gt_masks`` (B, H, W), optional, relabels the noisy points."""
        if boxes is None and points is None:
            raise ValueError("prompt perturbation needs boxes or points")
        generator = self._require_generator(generator)
        with torch.inference_mode():
            encoding = encode_once(predictor, image, encoding)
            all_boxes, all_points, all_labels = self.perturbed_prompts(
                boxes, points, point_labels, gt_masks, predictor.image_size, generator, predictor.device
            )
            out = predictor.decode(encoding, boxes=all_boxes, points=all_points, point_labels=all_labels)  # (B, K, ...)
        info = {"iou_pred": out.iou.mean(dim=1), "samples": self.K, "boxes": all_boxes}
        return UQResult.from_samples(self.name, out.logits.float(), 1, encoding.orig_hw[0], info)
