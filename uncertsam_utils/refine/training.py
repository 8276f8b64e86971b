"""Train a dense-fusion module (paper §5.3) with SAM-2 frozen: ``uncertsam train fusion``.

Recipe (``FusionTrainConfig``; the paper's values unless marked):

* **Data**: ``<root>/fit/train`` (selection on the first ``val_images`` of ``fit/val``), at the
  model's square input size; one image per step with all its objects (at most ``max_objects``, a
  random subset beyond), horizontal flips are not used (the fit scenes are symmetric already).
* **Iterative prompts**: per object ``clicks`` = 8 distinct clicks (the first in the object, each
  later one in it with probability 0.5, else in the background; ``prompts.sample_clicks``) and its
  box with SAM's jitter. Per image the prompt starts with the box with probability 0.5 (SAM-2
  decides per frame), else with the first click; each step adds one click: 8 steps.
* **Per step**: the first pass (``passes.first_pass``: Laplace or SAM-2, no gradient) gives z₀ and
  its entropy; the second pass with the fused dense prompt gives z₁ and its predicted IoU; loss
  20 · focal (α 0.25, γ 2, mean over objects and pixels) + Dice (+1 smoothing, mean over objects)
  + |IoU_pred − IoU(z₁ > 0, y)| (mean over objects), on z₁ upsampled to the input frame; summed over
  the steps (each step back-propagated at once: the same gradient, one step's graph in memory).
* **Optimiser**: AdamW lr 1e-4, gradient-norm clipping 0.1, SAM-2's warm-up / constant / decay
  schedule (``training/schedule.py``); weight decay 0.01 for every map (*change*: the paper used 0.001 for
  its ones-map runs; one value keeps the ones-map ablation a change of the map alone).
* **Initialisation**: ``"exact"`` (*default, ours*; the untrained module is mask-prompt refinement)
  or ``"paper"`` (PyTorch's default init).
* **Selection** (the paper's ``ModelCheckpoint``): after every epoch the validation loss under the
  evaluation prompt (the clean box, one step) is computed; the module with the lowest is kept.
  Validation also reports the refined and the first-pass mIoU.
* **Determinism and resuming**: init from ``seed``; every draw (order, objects, jitter, clicks, box
  or click) from one ``torch.Generator``. ``<out>.resume.pt`` is written every
  ``checkpoint_every`` steps and after each epoch (module, optimiser, scheduler, generator, epoch
  order and position); ``resume=True`` continues exactly as an uninterrupted run.

The loop itself is the package's one training loop (``training/loop.py``); this module supplies the
fusion module, its loss and its data (``FusionTrainer``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..artifacts import cache_digest, fit_data_key, model_identity
from ..model.predictor import Predictor
from ..prompts import jitter_boxes, sample_clicks
from ..training import (RESUME_SUFFIX, EpochLoop, LoopConfig, ResumeFile, adamw_with_schedule,  # noqa: F401
                        load_fit_split, resume_path, warmup_constant_decay)
from .fusion import INITS, DenseFusion, embed_dim_of, save_fusion
from .passes import UNCERTAINTY_SOURCES, box_points, first_pass, second_pass

RECIPE_VERSION = 1  # part of the cache key: bump when the training code changes what it produces
_STREAM_TAG = 0x66757365  # "fuse": separates this run's data stream from other uses of the seed


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
    clicks: int = 8
    box_probability: float = 0.5
    positive_probability: float = 0.5
    jitter: bool = True
    focal_weight: float = 20.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    init: str = "exact"
    val_images: int = 64
    checkpoint_every: int = 200

    def __post_init__(self):
        if self.uncertainty not in UNCERTAINTY_SOURCES:
            raise ValueError(f"uncertainty must be one of {tuple(UNCERTAINTY_SOURCES)}, got {self.uncertainty!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.clicks < 1:
            raise ValueError("clicks must be at least 1")

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


def _encode(predictor: Predictor, data, images) -> object:
    batch = torch.from_numpy(data.images[images]).to(predictor.device).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        return predictor.encode_inputs(batch, [(data.size, data.size)] * len(images))


def train_step(predictor: Predictor, fusion: DenseFusion, posterior, data, image: int, config: FusionTrainConfig,
               generator: torch.Generator) -> dict[str, float]:
    """Forward and backward of one image's steps (gradients accumulate in ``fusion``); its mean loss."""
    return prompted_step(predictor, fusion, posterior, data, image, image_prompts(data, image, config, generator), config)


def prompted_step(predictor: Predictor, fusion: DenseFusion, posterior, data, image: int, prompts: ImagePrompts,
                  config: FusionTrainConfig) -> dict[str, float]:
    """``train_step`` with the image's prompts already drawn."""
    encoding = _encode(predictor, data, [image])
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


def validate(predictor: Predictor, fusion: DenseFusion, posterior, data, config: FusionTrainConfig) -> dict[str, float]:
    """Loss and mIoU under the evaluation prompt (the clean box, one step) on the first ``val_images``."""
    fusion.eval()
    losses, first_ious, refined_ious = [], [], []
    with torch.no_grad():
        for image in range(min(config.val_images, data.num_images)):
            first_id, stop = int(data.first[image]), int(data.first[image + 1])
            mask_ids = np.arange(first_id, stop)
            targets = torch.from_numpy(data.masks(mask_ids)).float().to(predictor.device)
            points, labels = box_points(torch.from_numpy(data.boxes[mask_ids]))
            encoding = _encode(predictor, data, [image])
            first = first_pass(config.first_pass, predictor, encoding, points=points, labels=labels, posterior=posterior)
            refined = second_pass(predictor, encoding, fusion, first.logits, first.uncertainty(config.map_name),
                                  points=points, labels=labels)
            loss, actual = refinement_loss(refined.logits, refined.iou, targets, config)
            _, first_actual = refinement_loss(first.logits, first.iou, targets, config)
            losses.append(float(loss) * len(mask_ids))
            refined_ious += actual.tolist()
            first_ious += first_actual.tolist()
    fusion.train()
    return {"val_loss": sum(losses) / max(1, len(refined_ious)), "val_miou_refined": float(np.mean(refined_ious)),
            "val_miou_first": float(np.mean(first_ious))}


@dataclass
class FusionTrainResult:
    fusion: DenseFusion  # the selected module (lowest validation loss), in eval mode
    history: list[dict]
    best_epoch: int
    out: Path | None
    record: dict


@dataclass
class FusionTrainer:
    """The fusion module's part of the training loop (``training.Trainer``): its model, loss and data."""

    module: DenseFusion
    predictor: Predictor
    posterior: object  # the fitted Laplace posterior of a Laplace first pass, else None
    train_data: object  # FitData at the model's input size
    val_data: object
    config: FusionTrainConfig
    state_name = "fusion"

    def prepare(self) -> None:
        pass  # the image encoder runs per step: nothing to compute before

    def batches(self, order: torch.Tensor, start: int, generator: torch.Generator):
        for position in range(start, len(order)):
            image = int(order[position])
            yield image, image_prompts(self.train_data, image, self.config, generator)

    def backward(self, batch) -> dict[str, float]:
        image, prompts = batch
        return prompted_step(self.predictor, self.module, self.posterior, self.train_data, image, prompts, self.config)

    def validate(self) -> dict[str, float]:
        return validate(self.predictor, self.module, self.posterior, self.val_data, self.config)

    def describe(self, row: dict, seconds: float) -> str:
        return (f"fusion {self.config.uncertainty} epoch {row['epoch']}/{self.config.epochs}: train loss "
                f"{row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  val mIoU first pass "
                f"{row['val_miou_first']:.4f} -> refined {row['val_miou_refined']:.4f}")


def train_fusion(loaded_model, train_data, val_data, *, config: FusionTrainConfig = FusionTrainConfig(),
                 posterior=None, out: Path | None = None, seed: int = 0, resume: bool = False, progress: bool = True,
                 extra_record: dict | None = None, stop_after_steps: int | None = None,
                 log: Callable[[str], None] = print) -> FusionTrainResult:
    """Train a fusion module for ``loaded_model`` (frozen) on in-memory ``FitData``; write it to ``out``.

    ``posterior``: the fitted Laplace posterior of a Laplace first pass. ``stop_after_steps`` ends the
    run early after writing the resume state (for tests of resuming)."""
    if config.first_pass == "laplace" and posterior is None:
        raise ValueError(f"--uncertainty {config.uncertainty} has a Laplace first pass: give a fitted posterior")
    model = loaded_model.model.eval()
    predictor = Predictor(model)
    if posterior is not None:
        posterior.check_layer(predictor.treated_layer)
    fusion = DenseFusion(embed_dim_of(model), init=config.init, seed=seed).to(predictor.device).train()
    total_steps = config.epochs * train_data.num_images
    optimizer, scheduler = adamw_with_schedule(
        fusion, lr=config.lr, weight_decay=config.weight_decay,
        lr_factor=lambda step: warmup_constant_decay(step, total_steps, config.warmup_fraction, config.decay_fraction))
    key = {"seed": int(seed), "config": dataclasses.asdict(config), "model": model_identity(loaded_model),
           "train": train_data.fingerprint, "val": val_data.fingerprint,
           "posterior": None if posterior is None else posterior_fingerprint(posterior)}
    loop_config = LoopConfig(epochs=config.epochs, items=train_data.num_images, steps_per_epoch=train_data.num_images,
                             grad_clip=config.grad_clip, stream_tag=_STREAM_TAG, label=f"fusion {config.uncertainty}",
                             unit="img", checkpoint_every=config.checkpoint_every)
    resume_file = ResumeFile.beside(out, key)
    trainer = FusionTrainer(fusion, predictor, posterior, train_data, val_data, config)
    loop = EpochLoop(trainer, optimizer, scheduler, loop_config, seed=seed, resume_file=resume_file,
                     progress=progress, log=log)
    with frozen(model):
        result = loop.run(resume=resume, stop_after_steps=stop_after_steps)
    if not result.finished:
        return FusionTrainResult(fusion, result.history, -1, None, {"stopped_after_steps": result.steps})
    record = {"seed": int(seed), "config": dataclasses.asdict(config), "history": result.history,
              "best_epoch": result.best_epoch, "train_seconds": round(result.seconds, 1),
              "threads": torch.get_num_threads(),
              "train_data": {"images": train_data.num_images, "masks": train_data.num_masks,
                             "fingerprint": train_data.fingerprint},
              "val_images": min(config.val_images, val_data.num_images),
              "posterior": key["posterior"], "model_label": loaded_model.label, **(extra_record or {})}
    if out is not None:
        save_fusion(fusion, out, model_identity(loaded_model), uncertainty=config.uncertainty, training=record)
        resume_file.remove()
    return FusionTrainResult(fusion, result.history, result.best_epoch, out, record)


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


# ------------------------------------------------------------------------------------ caching, CLI

def fusion_cache_key(root: Path, loaded_model, config: FusionTrainConfig, seed: int, posterior=None,
                     limit: int | None = None) -> dict:
    """What a module trained by ``train_or_load_fusion`` depends on (with ``artifacts.full_key``'s code
    and libraries): the model, the recipe, the seed, the fit data's content, ``limit`` and the
    Laplace first pass's posterior."""
    return {"model": model_identity(loaded_model), "config": dataclasses.asdict(config), "seed": int(seed),
            "data": fit_data_key(root), "recipe_version": RECIPE_VERSION, "limit": limit,
            "posterior": None if posterior is None or config.first_pass != "laplace" else posterior_fingerprint(posterior)}


def cached_fusion_path(root: Path, loaded_model, config: FusionTrainConfig, seed: int, posterior=None,
                       limit: int | None = None) -> Path:
    """Where ``train_or_load_fusion`` keeps the module trained from these inputs (under the results cache)."""
    from ..paths import results_cache_dir

    digest = cache_digest(fusion_cache_key(root, loaded_model, config, seed, posterior, limit))
    return results_cache_dir() / "fusion" / f"{loaded_model.info.name}-{config.uncertainty}-{digest}.pt"


def load_training_data(root: Path, size: int, *, limit: int | None = None, val_images: int = 64, progress: bool = False):
    """``fit/train`` (its first ``limit`` images) and the first ``val_images`` of ``fit/val``."""
    return (load_fit_split(root, "train", size, limit=limit, progress=progress),
            load_fit_split(root, "val", size, limit=val_images, progress=progress))


def train_or_load_fusion(root: Path, loaded_model, *, config: FusionTrainConfig, posterior=None, seed: int = 0,
                         limit: int | None = None, progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """The module for these inputs from the cache (verified), training it first (resumably) when missing; its path."""
    from ..artifacts import full_key
    from ..cache.entries import record_entry, reuse_entry

    path = cached_fusion_path(root, loaded_model, config, seed, posterior, limit)
    if reuse_entry(path, log):
        log(f"using the cached fusion module {path.name}")
        return path
    train_data, val_data = load_training_data(Path(root), loaded_model.image_size, limit=limit,
                                              val_images=config.val_images, progress=progress)
    train_fusion(loaded_model, train_data, val_data, config=config, posterior=posterior, out=path, seed=seed,
                 resume=True, progress=progress, extra_record={"data": {"root": Path(root).name, "limit": limit}},
                 log=log)
    record_entry(path, "fusion", full_key(fusion_cache_key(root, loaded_model, config, seed, posterior, limit)))
    return path


__all__ = ["FusionTrainConfig", "train_fusion", "train_or_load_fusion", "cached_fusion_path", "refinement_loss",
           "sigmoid_focal"]


def find_fusion_modules(root: Path, loaded_model, variants, *, given: dict | None = None, posterior=None,
                        epochs: int = 5, clicks: int = 8, box_probability: float = 0.5, limit: int | None = None,
                        seed: int = 0,
                        train_missing: bool = False, progress: bool = True,
                        log: Callable[[str], None] = print) -> dict[str, Path]:
    """Fusion files for the ``fusion-*`` methods among ``variants`` (method name → file): the files
    ``given``; else the module cached for these inputs; else, with ``train_missing``, trained now on
    ``<root>/fit/train`` (``limit``: its first N images) and cached. ``posterior`` (a file or a
    fitted posterior) is the Laplace first pass of ``fusion-laplace`` and ``fusion-ones``. Variants
    whose module is missing are left out of the result (``build_methods`` then says what is missing)."""
    from ..cache.entries import reuse_entry
    from ..uq import METHODS

    given = dict(given or {})
    if isinstance(posterior, (str, Path)):
        from ..uq.laplace import LastLayerPosterior

        posterior = LastLayerPosterior.load(posterior, loaded_model)
    out: dict[str, Path] = {}
    for name in variants:
        uncertainty = getattr(METHODS.get(name), "uncertainty", None)
        if uncertainty is None:
            continue
        if given.get(name) is not None:
            out[name] = Path(given[name])
            continue
        config = FusionTrainConfig(uncertainty=uncertainty, epochs=epochs, clicks=clicks, box_probability=box_probability)
        if config.first_pass == "laplace" and posterior is None:
            log(f"{name}: no Laplace posterior, so no first pass to train on")
            continue
        path = cached_fusion_path(Path(root), loaded_model, config, seed, posterior, limit)
        if reuse_entry(path, log) or train_missing:
            out[name] = train_or_load_fusion(Path(root), loaded_model, config=config, posterior=posterior, seed=seed,
                                             limit=limit, progress=progress, log=log)
    return out
