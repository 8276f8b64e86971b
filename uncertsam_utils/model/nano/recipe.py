"""The recipe of the nano SAM-2 (``configs/nano_sam2_256.yaml``), trained from scratch on the UncertSAM-mini fit set.

The recipe (``TrainConfig``; sampling in ``sampling.py``, loss in ``loss.py``, the loop in ``training.py``):

* **Data**: the fit ``train`` split, read once into memory (images uint8, masks bit-packed).
  Each step draws ``images_per_step`` images and up to ``objects_per_image`` of their objects;
  the image is encoded once and every object is a prompt on it.
* **Augmentation**: horizontal flip (p = 0.5); SAM's box jitter, each coordinate moved by
  U[-1, 1] · min(0.1 · side, 20 px of the 1024 frame = 5 px at 256).
* **Prompts**: the jittered box as two corner points labelled 2/3 (the evaluation prompt); with
  probability ``point_prompt_prob`` two points instead (one positive, then positive or negative).
* **Dense-box curriculum**: a box prompt is *also* given as a dense mask prompt (±10 logits
  inside/outside the box) with probability decaying linearly from 1 at step 0 to 0 at
  ``dense_box_until`` · steps; the rest of training is box-only, so the shipped model follows the
  sparse box alone (box-only training from scratch stalls: it segments everything in view).
* **Iterative step** (SAM's training does the same with its corrections): with probability
  ``refine_prob`` per step, the box prompts are decoded a second time with the box and their own
  detached token-0 logits as the mask prompt, and that pass's losses are added, so that the model
  can refine its own mask (what mask-prompt refinement and dense fusion, notebook 07, rely on).
* **Loss**: token 0 (single-mask output) BCE + soft Dice on logits upsampled bilinearly to 256²;
  best-of-three BCE + Dice of tokens 1–3 at the low resolution (64²) against the area-downsampled
  target; MSE between each token's predicted IoU and its actual IoU (logits > 0; token 0 at 256², 1–3 at 64²).
* **Optimiser**: AdamW (lr 1e-3, weight decay 0.01), linear warm-up then cosine decay to 0,
  gradient-norm clipping at 1.0; a fixed number of steps, so retraining reproduces.

Determinism: model init from ``load_model("nano", "random", seed=seed)``; every random choice
of the data pipeline from one ``numpy`` generator seeded with (seed, "nano"); torch's global RNG
seeded too (nothing in the forward pass draws from it). With the same command, seed and thread
count the weights are bit-identical; ``--resume`` restores model, optimiser, scheduler, step and
both RNG states from ``<out>.resume.pt`` and continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

IMAGE_SIZE = 256
# Fixed so that retraining reproduces. With one torch thread (the default of ``uncertsam train
# nano``, bit-reproducible) a step costs about 0.4 s of CPU: 8000 steps take 53-62 min (the 45-min
# guide buys ~6,500); 6000 steps reached 0.835 fit-test mIoU, 8000 steps 0.868. See ``cpu_seconds`` /
# ``train_seconds`` in the shipped JSON for the measured run.
DEFAULT_STEPS = 8000


@dataclass(frozen=True)
class TrainConfig:
    steps: int = DEFAULT_STEPS
    images_per_step: int = 4
    objects_per_image: int = 6  # the fit scenes have 1-6 objects: every object of a drawn image is a prompt
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    dense_box_until: float = 0.3  # fraction of the steps at which the dense-box probability reaches 0 (step 2400)
    dense_logit: float = 10.0  # magnitude of the dense box prompt's logits
    point_prompt_prob: float = 0.1  # a prompt is two points instead of the box
    flip_prob: float = 0.5
    jitter_frac: float = 0.1  # box noise: U[-1, 1] * min(jitter_frac * side, jitter_px)
    jitter_px: float = 20.0 * IMAGE_SIZE / 1024
    multimask_weight: float = 1.0
    iou_weight: float = 1.0
    refine_prob: float = 0.5  # SAM's iterative step: box prompts decoded again with their own mask as prompt
    val_every: int = 500
    val_images: int = 64  # the first images of the fit val split, all their objects
    checkpoint_every: int = 500

    def dense_probability(self, step: int) -> float:
        horizon = self.dense_box_until * self.steps
        return max(0.0, 1.0 - step / horizon) if horizon > 0 else 0.0

    def lr_factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup_steps) / span)))

