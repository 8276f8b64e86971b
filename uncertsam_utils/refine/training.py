"""Train a dense-fusion module (paper §5.3) with SAM-2 frozen: ``uncertsam train fusion``.

Recipe (``FusionTrainConfig``; the paper's values unless marked):

* **Data**: ``<root>/fit/train`` (selection on the first ``val_images`` of ``fit/val``), at the
  model's square input size; one image per step with all its objects (at most ``max_objects``, a
  random subset beyond); no flips (the fit scenes are symmetric already).
* **Regime** (*change*: the box regime is the default): ``"box"`` trains under the evaluation prompt,
  each object's box with SAM's jitter, one step (``clicks=1, box_probability=1``); its first passes
  do not depend on the module, so they come from a bank computed once and shared by the variants of
  a seed (``bank.py``). ``"click"`` is the paper's iterative prompt (``FusionTrainConfig.click_regime``):
  per object 8 distinct clicks (the first in the object, each later one in it with probability 0.5,
  else in the background; ``prompts.sample_clicks``) and its jittered box; per image the prompt
  starts with the box with probability 0.5, else with the first click; each step adds one click
  (8 steps, first passes on the fly). Measured on the embedded default, modules trained with clicks
  lose 0.09 val mIoU under the box prompt they are evaluated with.
* **Per step**: the first pass (``passes.first_pass``: Laplace or SAM-2, no gradient) gives z₀ and
  its entropy; the second pass with the fused dense prompt gives z₁ and its predicted IoU; loss
  20 · focal (α 0.25, γ 2, mean over objects and pixels) + Dice (+1 smoothing, mean over objects)
  + |IoU_pred − IoU(z₁ > 0, y)| (mean over objects), on z₁ upsampled to the input frame; summed over
  the steps (each step back-propagated at once: the same gradient, one step's graph in memory).
* **Optimiser**: AdamW lr 1e-4, gradient-norm clipping 0.1, SAM-2's warm-up / constant / decay
  schedule over the planned epochs (``training/schedule.py``; stopping early does not change the
  epochs before); weight decay 0.01 for every map (*change*: the paper used 0.001 for its ones-map
  runs; one value keeps the ones-map ablation a change of the map alone).
* **Initialisation**: ``"exact"`` (*default, ours*; the untrained module is mask-prompt refinement)
  or ``"paper"`` (PyTorch's default init).
* **Selection** (*change*): before the first step and after every epoch the module is validated
  under the evaluation prompt (the clean box, one step, every object); the untrained module is
  epoch 0 and a candidate (``select_initial``); the epoch with the highest validation mIoU is kept,
  ties to the earlier epoch (``select="miou"``, the metric Table 1 reports; ``"loss"``: the paper's
  ``ModelCheckpoint`` on the validation loss); training stops after ``patience`` epochs without a
  better one. The module of the last trained epoch is kept beside the selected one (the "trained"
  rows of Table 1: what training made, whether or not selection kept it).
* **Determinism and resuming**: init from ``seed``; the order (and the click regime's draws) from the
  run's ``torch.Generator``, the box regime's objects and jitter from the bank's generator of
  (seed, epoch, image). ``<out>.resume.pt`` is written every ``checkpoint_every`` steps and after
  each epoch; ``resume=True`` continues exactly as an uninterrupted run.

The loop itself is the package's one training loop (``training/loop.py``); this module supplies the
fusion module, its loss and its data (``FusionTrainer``); ``family.py`` trains the variants and seeds
of Table 1 on shared encodings and banks, and caches them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..artifacts import model_identity
from ..model.predictor import Predictor
from ..prompts import jitter_boxes, sample_clicks
from ..training import (RESUME_SUFFIX, EpochLoop, LoopConfig, ResumeFile, adamw_with_schedule,  # noqa: F401
                        encode_split, load_fit_split, resume_path, warmup_constant_decay)
from .bank import BankEntry, FirstPassBank
from .fusion import INITS, DenseFusion, embed_dim_of, save_fusion
from .passes import UNCERTAINTY_SOURCES, box_points, first_pass, second_pass

RECIPE_VERSION = 2  # part of the cache key: bump when the training code changes what it produces
_STREAM_TAG = 0x66757365  # "fuse": separates this run's data stream from other uses of the seed
REGIMES = ("box", "click")
SELECTIONS = {"miou": ("val_miou", True), "loss": ("val_loss", False)}  # select → (criterion, maximise)


@dataclass(frozen=True)
class FusionTrainConfig:
    uncertainty: str = "laplace"  # the map fed to the module: laplace | ones | entropy (passes.UNCERTAINTY_SOURCES)
    epochs: int = 5
    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 0.1
    warmup_fraction: float = 1 / 90
    decay_fraction: float = 5 / 90
    max_objects: int = 32
    clicks: int = 1  # prompt steps per image; 1 with box_probability 1: the box regime
    box_probability: float = 1.0
    positive_probability: float = 0.5
    jitter: bool = True
    focal_weight: float = 20.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    init: str = "exact"
    val_images: int = 200
    select: str = "miou"  # miou: highest validation mIoU; loss: lowest validation loss (the paper's)
    select_initial: bool = True  # the untrained module is a candidate (epoch 0)
    patience: int | None = 2  # stop after this many epochs without a better validation score
    checkpoint_every: int = 200

    def __post_init__(self):
        if self.uncertainty not in UNCERTAINTY_SOURCES:
            raise ValueError(f"uncertainty must be one of {tuple(UNCERTAINTY_SOURCES)}, got {self.uncertainty!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.clicks < 1:
            raise ValueError("clicks must be at least 1")
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {tuple(SELECTIONS)}, got {self.select!r}")

    @classmethod
    def click_regime(cls, **changes) -> "FusionTrainConfig":
        """The paper's iterative prompts: 8 steps, starting with the box with probability 0.5."""
        return cls(**{"clicks": 8, "box_probability": 0.5, **changes})

    @property
    def regime(self) -> str:
        """"box" (the evaluation prompt alone, first passes from the bank) or "click" (iterative)."""
        return "box" if self.clicks == 1 and self.box_probability == 1.0 else "click"

    @property
    def first_pass(self) -> str:
        return UNCERTAINTY_SOURCES[self.uncertainty][0]

    @property
    def map_name(self) -> str:
        return UNCERTAINTY_SOURCES[self.uncertainty][1]


# ---------------------------------------------------------------------------------------- loss

def sigmoid_focal(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Per-pixel focal loss of RetinaNet / SAM (n, ...) → (n, ...)."""
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    weight = alpha * targets + (1 - alpha) * (1 - targets)
    return weight * ce * (1 - p_t) ** gamma


def refinement_loss(logits: torch.Tensor, iou_pred: torch.Tensor, targets: torch.Tensor,
                    config: FusionTrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's loss of one step: (n, m, m) logits, (n,) IoU predictions, (n, S, S) float targets.
    Returns the loss and the actual IoU of each refined mask (n,)."""
    size = targets.shape[-1]
    full = F.interpolate(logits[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    focal = sigmoid_focal(full, targets, config.focal_alpha, config.focal_gamma).mean()
    prob = torch.sigmoid(full).flatten(1)
    t = targets.flatten(1)
    dice = (1 - (2 * (prob * t).sum(1) + 1) / (prob.sum(1) + t.sum(1) + 1)).mean()
    with torch.no_grad():
        pred = full.flatten(1) > 0
        truth = t > 0.5
        actual = (pred & truth).sum(1).float() / (pred | truth).sum(1).float().clamp(min=1)
    iou_l1 = (iou_pred - actual).abs().mean()
    return config.focal_weight * focal + dice + iou_l1, actual


# ------------------------------------------------------------------------------------- prompts

@dataclass
class ImagePrompts:
    """One training image's objects and the prompt of each of its steps."""

    mask_ids: np.ndarray  # rows of data.packed
    targets: torch.Tensor  # (k, S, S) float
    start_with_box: bool
    box_points: torch.Tensor  # (k, 2, 2), labels 2 and 3
    clicks: torch.Tensor  # (k, clicks, 2)
    click_labels: torch.Tensor  # (k, clicks)

    def step(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Points (k, P, 2) and labels (k, P) of step ``index`` (0-based)."""
        if self.start_with_box:
            corners = torch.tensor([2, 3]).expand(len(self.mask_ids), 2)
            return (torch.cat([self.box_points, self.clicks[:, :index]], 1),
                    torch.cat([corners, self.click_labels[:, :index]], 1))
        return self.clicks[:, : index + 1], self.click_labels[:, : index + 1]


def image_prompts(data, image: int, config: FusionTrainConfig, generator: torch.Generator) -> ImagePrompts:
    first, stop = int(data.first[image]), int(data.first[image + 1])
    objects = torch.arange(first, stop)
    if len(objects) > config.max_objects:
        objects = objects[torch.randperm(len(objects), generator=generator)[: config.max_objects]]
    mask_ids = objects.numpy()
    masks = torch.from_numpy(data.masks(mask_ids))
    boxes = torch.from_numpy(data.boxes[mask_ids])
    if config.jitter:
        boxes = jitter_boxes(boxes, data.size, generator)
    start_with_box = bool(torch.rand((), generator=generator) < config.box_probability)
    clicks, labels = sample_clicks(masks, config.clicks, generator, positive_probability=config.positive_probability)
    corners, _ = box_points(boxes)
    return ImagePrompts(mask_ids, masks.float(), start_with_box, corners, clicks, labels)


# ------------------------------------------------------------------------------------ training

@contextmanager
def frozen(model: torch.nn.Module):
    """No gradients for the model's own weights (the backward pass then skips them), restored after."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def prompted_step(predictor: Predictor, fusion: DenseFusion, posterior, data, image: int, prompts: ImagePrompts,
                  config: FusionTrainConfig, encoding) -> dict[str, float]:
    """Forward and backward of one image's iterative prompt steps (the click regime; gradients accumulate
    in ``fusion``); its summed loss and the mean IoUs of the first and the refined pass."""
    targets = prompts.targets.to(predictor.device)
    total, first_iou, refined_iou = 0.0, 0.0, 0.0
    for index in range(config.clicks):
        points, labels = prompts.step(index)
        first = first_pass(config.first_pass, predictor, encoding, points=points, labels=labels, posterior=posterior)
        refined = second_pass(predictor, encoding, fusion, first.logits, first.uncertainty(config.map_name),
                              points=points, labels=labels)
        loss, actual = refinement_loss(refined.logits, refined.iou, targets, config)
        loss.backward()
        total += float(loss.detach())
        refined_iou += float(actual.mean())
        with torch.no_grad():
            _, first_actual = refinement_loss(first.logits, first.iou, targets, config)
        first_iou += float(first_actual.mean())
    return {"loss": total, "iou_first": first_iou / config.clicks, "iou_refined": refined_iou / config.clicks}


def bank_step(predictor: Predictor, fusion: DenseFusion, data, entry: BankEntry, config: FusionTrainConfig,
              encoding) -> dict[str, float]:
    """Forward and backward of one image under the box prompt, its first pass from the bank."""
    targets = torch.from_numpy(data.masks(entry.mask_ids)).float().to(predictor.device)
    logits, uncertainty = entry.inputs(config.uncertainty)
    refined = second_pass(predictor, encoding, fusion, logits, uncertainty, points=entry.points, labels=entry.labels)
    loss, actual = refinement_loss(refined.logits, refined.iou, targets, config)
    loss.backward()
    return {"loss": float(loss.detach()), "iou_refined": float(actual.mean())}


def validate(predictor: Predictor, fusion: DenseFusion, inputs: "FusionInputs", config: FusionTrainConfig,
             first_ious: dict | None = None) -> dict:
    """Loss and mIoU under the evaluation prompt (the clean box, one step, every object) on the first
    ``val_images`` of fit/val; ``val_ious`` lists each mask's refined IoU (for paired comparisons of
    epochs). ``first_ious`` (image → IoUs) caches the first pass's, which no module changes."""
    fusion.eval()
    first_ious = {} if first_ious is None else first_ious
    losses, refined_ious, firsts = [], [], []
    with torch.no_grad():
        for image in range(min(config.val_images, inputs.val_data.num_images)):
            entry = inputs.val_bank.entry(0, image)
            targets = torch.from_numpy(inputs.val_data.masks(entry.mask_ids)).float().to(predictor.device)
            logits, uncertainty = entry.inputs(config.uncertainty)
            encoding = inputs.val_features.encoding(torch.tensor([image]))
            refined = second_pass(predictor, encoding, fusion, logits, uncertainty, points=entry.points,
                                  labels=entry.labels)
            loss, actual = refinement_loss(refined.logits, refined.iou, targets, config)
            if image not in first_ious:
                first_ious[image] = refinement_loss(logits, refined.iou, targets, config)[1].tolist()
            losses.append(float(loss) * len(entry.mask_ids))
            refined_ious += actual.tolist()
            firsts += first_ious[image]
    fusion.train()
    return {"val_loss": sum(losses) / max(1, len(refined_ious)), "val_miou": float(np.mean(refined_ious)),
            "val_miou_first": float(np.mean(firsts)), "val_ious": refined_ious}


@dataclass
class FusionInputs:
    """What every module trained on the same data shares: the frozen encodings of both splits and the
    validation bank (clean boxes, every object). ``train_bank`` makes a seed's training bank."""

    predictor: Predictor
    train_data: object  # FitData at the model's input size
    val_data: object
    train_features: object  # training.FrozenFeatures
    val_features: object
    val_bank: FirstPassBank
    posterior: object = None
    kinds: tuple = ("laplace", "sam")
    encode_seconds: float = 0.0

    @classmethod
    def build(cls, predictor: Predictor, train_data, val_data, *, kinds, posterior=None, progress: bool = False,
              batch: int = 8) -> "FusionInputs":
        tic = time.perf_counter()
        train = encode_split(predictor, train_data, batch, progress=progress, label="encode fit/train")
        val = encode_split(predictor, val_data, batch, progress=progress, label="encode fit/val")
        kinds = tuple(sorted(set(kinds)))
        val_bank = FirstPassBank(predictor, val, val_data, kinds=kinds, posterior=posterior, jitter=False,
                                 max_objects=None)
        return cls(predictor, train_data, val_data, train, val, val_bank, posterior, kinds, time.perf_counter() - tic)

    def train_bank(self, seed: int, config: FusionTrainConfig) -> FirstPassBank:
        """The box regime's first passes of one seed (shared by the variants trained with it)."""
        return FirstPassBank(self.predictor, self.train_features, self.train_data, kinds=self.kinds,
                             posterior=self.posterior, seed=seed, jitter=config.jitter, max_objects=config.max_objects)


@dataclass
class FusionTrainResult:
    fusion: DenseFusion  # the selected module, in eval mode
    history: list[dict]
    best_epoch: int
    out: Path | None
    record: dict
    last_state: dict | None = None  # the module after the last trained epoch


@dataclass
class FusionTrainer:
    """The fusion module's part of the training loop (``training.Trainer``): its model, loss and data."""

    module: DenseFusion
    posterior: object  # the fitted Laplace posterior of a Laplace first pass, else None
    inputs: FusionInputs
    config: FusionTrainConfig
    bank: FirstPassBank | None = None  # the box regime's training bank (given: shared with other variants)
    seed: int = 0
    state_name = "fusion"

    def __post_init__(self):
        self._first_ious: dict = {}

    def prepare(self) -> None:
        if self.config.regime == "box" and self.bank is None:
            self.bank = self.inputs.train_bank(self.seed, self.config)

    def batches(self, order: torch.Tensor, start: int, generator: torch.Generator, epoch: int):
        for position in range(start, len(order)):
            image = int(order[position])
            if self.config.regime == "box":
                yield image, self.bank.entry(epoch, image)
            else:
                yield image, image_prompts(self.inputs.train_data, image, self.config, generator)

    def backward(self, batch) -> dict[str, float]:
        image, item = batch
        predictor = self.inputs.predictor
        encoding = self.inputs.train_features.encoding(torch.tensor([image]))
        if isinstance(item, BankEntry):
            return bank_step(predictor, self.module, self.inputs.train_data, item, self.config, encoding)
        return prompted_step(predictor, self.module, self.posterior, self.inputs.train_data, image, item, self.config,
                             encoding)

    def validate(self) -> dict:
        return validate(self.inputs.predictor, self.module, self.inputs, self.config, self._first_ious)

    def describe(self, row: dict, seconds: float) -> str:
        return (f"fusion {self.config.uncertainty} ({self.config.regime}) epoch {row['epoch']}/{self.config.epochs}: "
                f"train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  val mIoU first pass "
                f"{row['val_miou_first']:.4f} -> refined {row['val_miou']:.4f}")


def train_fusion(loaded_model, train_data, val_data, *, config: FusionTrainConfig = FusionTrainConfig(),
                 posterior=None, out: Path | None = None, seed: int = 0, resume: bool = False, progress: bool = True,
                 extra_record: dict | None = None, stop_after_steps: int | None = None, inputs: FusionInputs | None = None,
                 bank: FirstPassBank | None = None, log: Callable[[str], None] = print) -> FusionTrainResult:
    """Train a fusion module for ``loaded_model`` (frozen) on in-memory ``FitData``; write it to ``out``
    (the selected module and the last trained epoch's, with the training record).

    ``posterior``: the fitted Laplace posterior of a Laplace first pass. ``inputs`` / ``bank``: encodings
    and first passes shared with other runs (``family.train_fusion_family``); made here when missing.
    ``stop_after_steps`` ends the run early after writing the resume state (for tests of resuming)."""
    if config.first_pass == "laplace" and posterior is None:
        raise ValueError(f"--uncertainty {config.uncertainty} has a Laplace first pass: give a fitted posterior")
    model = loaded_model.model.eval()
    if inputs is None:
        kinds = (config.first_pass,)
        inputs = FusionInputs.build(Predictor(model), train_data, val_data, kinds=kinds, posterior=posterior,
                                    progress=progress)
    if posterior is not None:
        posterior.check_layer(inputs.predictor.treated_layer)
    fusion = DenseFusion(embed_dim_of(model), init=config.init, seed=seed).to(inputs.predictor.device).train()
    total_steps = config.epochs * train_data.num_images
    optimizer, scheduler = adamw_with_schedule(
        fusion, lr=config.lr, weight_decay=config.weight_decay,
        lr_factor=lambda step: warmup_constant_decay(step, total_steps, config.warmup_fraction, config.decay_fraction))
    key = {"seed": int(seed), "config": dataclasses.asdict(config), "model": model_identity(loaded_model),
           "train": train_data.fingerprint, "val": val_data.fingerprint,
           "posterior": None if posterior is None else posterior_fingerprint(posterior)}
    criterion, maximize = SELECTIONS[config.select]
    loop_config = LoopConfig(epochs=config.epochs, items=train_data.num_images, steps_per_epoch=train_data.num_images,
                             grad_clip=config.grad_clip, stream_tag=_STREAM_TAG, label=f"fusion {config.uncertainty}",
                             unit="img", checkpoint_every=config.checkpoint_every, criterion=criterion,
                             maximize=maximize, select_initial=config.select_initial, patience=config.patience)
    resume_file = ResumeFile.beside(out, key)
    trainer = FusionTrainer(fusion, posterior, inputs, config, bank, seed)
    loop = EpochLoop(trainer, optimizer, scheduler, loop_config, seed=seed, resume_file=resume_file,
                     progress=progress, log=log)
    cpu = time.process_time()
    with frozen(model):
        result = loop.run(resume=resume, stop_after_steps=stop_after_steps)
    if not result.finished:
        return FusionTrainResult(fusion, result.history, -1, None, {"stopped_after_steps": result.steps})
    record = {"seed": int(seed), "config": dataclasses.asdict(config), "regime": config.regime,
              "history": result.history, "best_epoch": result.best_epoch, "last_epoch": result.last_epoch,
              "stopped_early": result.stopped_early, "train_seconds": round(result.seconds, 1),
              "cpu_seconds": round(time.process_time() - cpu, 1), "threads": torch.get_num_threads(),
              "train_data": {"images": train_data.num_images, "masks": train_data.num_masks,
                             "fingerprint": train_data.fingerprint},
              "val_images": min(config.val_images, val_data.num_images),
              "posterior": key["posterior"], "model_label": loaded_model.label, **(extra_record or {})}
    if out is not None:
        save_fusion(fusion, out, model_identity(loaded_model), uncertainty=config.uncertainty, training=record,
                    last_state=result.last_state)
        resume_file.remove()
    return FusionTrainResult(fusion, result.history, result.best_epoch, out, record, result.last_state)


def posterior_fingerprint(posterior) -> str:
    """A short hash of a fitted posterior's state (what a fusion module trained on it depends on)."""
    digest = hashlib.blake2b(digest_size=8)

    def feed(value) -> None:
        if torch.is_tensor(value):
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(value, dict):
            for name in sorted(value, key=str):
                digest.update(str(name).encode())
                feed(value[name])
        elif isinstance(value, (list, tuple)):
            for item in value:
                feed(item)
        else:
            digest.update(repr(value).encode())

    feed([posterior.recipe, posterior.structure, posterior.la.state_dict()])
    return digest.hexdigest()


def load_training_data(root: Path, size: int, *, limit: int | None = None, val_images: int = 200, progress: bool = False):
    """``fit/train`` (its first ``limit`` images) and the first ``val_images`` of ``fit/val``."""
    return (load_fit_split(root, "train", size, limit=limit, progress=progress),
            load_fit_split(root, "val", size, limit=val_images, progress=progress))


__all__ = ["FusionInputs", "FusionTrainConfig", "FusionTrainResult", "REGIMES", "load_training_data",
           "posterior_fingerprint", "refinement_loss", "sigmoid_focal", "train_fusion"]
