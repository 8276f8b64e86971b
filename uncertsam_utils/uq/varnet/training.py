"""Train the variance network's head (paper §3.4) on a fit set, with SAM-2 frozen.

The recipe (``VarnetTrainConfig``; what differs from the reference code is marked *fix*):

* **Data**: ``<root>/fit/train`` for training, ``<root>/fit/val`` for model selection, read
  once into memory at the model's square input size (masks bit-packed).
* **Frozen features, computed once**: the image encoder runs once per image before the first
  epoch and its outputs stay in memory, so an epoch costs only the frozen decoder (one call
  per step, no gradient) plus the head.
* **Prompts**: every object of an image (at most ``max_objects``, a random subset beyond) is
  prompted with its tight box, jittered with SAM's box noise (``prompts.jitter_boxes``), redrawn
  every epoch. The evaluation prompt is the tight box, so the head trains on what it is used
  with. (The reference's 8-step box+point prompts are not used: our evaluation and the nano
  model are box-only.) Validation uses the tight boxes without jitter, i.e. the eval prompt.
* **Loss**: ½[e^(−s)(σ(z) − y)² + s] per pixel on s and the frozen logits z upsampled
  bilinearly to the input frame (the paper: 1024²), y the mask in that frame; mean over objects
  and pixels of a step. σ(z) has no gradient (SAM is frozen).
* **Optimiser** (the paper's): AdamW, lr 1e-4, weight decay 1e-4 on conv/linear weights only
  (*fix*: the reference decayed its LayerNorm2d weights, whose names missed its "LayerNorm"
  filter), gradient-norm clipping 0.1, step-wise schedule with linear warm-up over the first
  1/90 of the steps and linear decay to 0 over the last 5/90.
* **Epochs**: as configured (*fix*: the reference hard-coded 2 and ignored its config).
* **Selection**: the head with the lowest validation loss is kept; the validation Pearson
  correlation between s and |y − σ(z)| (all pixels of all objects) is reported with it.
* **Determinism and resuming**: the head is initialised from ``seed``; shuffling, object
  subsets and box jitter come from one explicit ``torch.Generator`` seeded with ``seed``. After
  every epoch ``<out>.resume.pt`` holds head, optimiser, scheduler, epoch, generator state,
  history and the best head so far; ``resume=True`` continues exactly as an uninterrupted run.

The loop itself (sampling, steps, selection, resume state) is the package's one training loop
(``training/loop.py``); this module supplies the head, its loss and its data (``HeadTrainer``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ...artifacts import cache_digest, fit_data_key, model_identity, model_key
from ...model.predictor import Decoded, Predictor
from ...prompts import jitter_boxes
from ...training import (RESUME_SUFFIX, EpochLoop, FrozenFeatures, LoopConfig, ResumeFile,  # noqa: F401
                         adamw_with_schedule, encode_split, load_fit_split,
                         optimisation_step as loop_step, resume_path, warmup_constant_decay)
from .head import VarianceHead, gaussian_nll, save_head, transformer_dim

# Part of the cache key of trained heads: bump it when the training code changes what a head, or
# the record stored with it, holds, so that caches made by older code are not reused.
RECIPE_VERSION = 2
_STREAM_TAG = 0x7661726E  # "varn": separates this run's data stream from other uses of the seed


@dataclass(frozen=True)
class VarnetTrainConfig:
    epochs: int = 6  # ~1 min of CPU each on the nano fit set; 20 min on 2 cores is the budget
    lr: float = 1e-4
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    warmup_fraction: float = 1 / 90  # SAM-2's 1k of 90k steps, as the paper
    decay_fraction: float = 5 / 90  # SAM-2's last 5k of 90k steps
    images_per_step: int = 1  # the paper: one image (all its objects, up to max_objects) per step
    max_objects: int = 32
    jitter: bool = True
    encode_batch: int = 8  # images per encoder call when caching the frozen features
    decode_steps: int = 16  # steps whose prompts share one frozen decoder call (fewer, larger calls)

    def lr_factor(self, step: int, total_steps: int) -> float:
        return warmup_constant_decay(step, total_steps, self.warmup_fraction, self.decay_fraction)


# ------------------------------------------------------------------------------- frozen part

@dataclass
class PromptBatch:
    image_ids: torch.Tensor  # (B,) images of the step
    owner: torch.Tensor  # (n,) position in image_ids of each prompt's image
    mask_ids: np.ndarray  # (n,) rows of data.packed
    boxes: torch.Tensor  # (n, 4) xyxy in the input frame


def prompt_batch(data, image_ids: torch.Tensor, config: VarnetTrainConfig, generator: torch.Generator | None) -> PromptBatch:
    """All objects of the chosen images (a random ``max_objects`` subset beyond that), with SAM's
    box jitter when a generator is given (training) and the tight box otherwise (validation)."""
    owner, mask_ids = [], []
    for position, image in enumerate(image_ids.tolist()):
        first, stop = int(data.first[image]), int(data.first[image + 1])
        objects = torch.arange(first, stop)
        if generator is not None and len(objects) > config.max_objects:
            objects = objects[torch.randperm(len(objects), generator=generator)[: config.max_objects]]
        mask_ids.append(objects.numpy())
        owner.append(np.full(len(objects), position))
    mask_ids = np.concatenate(mask_ids)
    boxes = torch.from_numpy(data.boxes[mask_ids])
    if generator is not None and config.jitter:
        boxes = jitter_boxes(boxes, data.size, generator)
    return PromptBatch(image_ids, torch.from_numpy(np.concatenate(owner)), mask_ids, boxes)


def frozen_outputs(predictor: Predictor, features: FrozenFeatures, prompts: PromptBatch):
    """The frozen decoder's logits and the head's inputs for a batch of prompts (no gradient)."""
    with torch.no_grad():
        return predictor.decode(
            features.encoding(prompts.image_ids.to(features.image_embed.device)),
            boxes=prompts.boxes,
            image_index=prompts.owner,
            return_tokens=True,
        )


def frozen_steps(predictor: Predictor, data, features: FrozenFeatures, order: torch.Tensor, config: VarnetTrainConfig,
                 generator: torch.Generator):
    """Yield each step's frozen decoder outputs and targets, images taken in ``order``.

    The frozen decoder runs once for ``decode_steps`` steps: one call with many prompts costs
    much less than many small calls, and the head's gradient never reaches the decoder."""
    per_call = config.images_per_step * config.decode_steps
    for start in range(0, len(order), per_call):
        chunk = order[start : start + per_call]
        prompts = prompt_batch(data, chunk, config, generator)
        decoded = frozen_outputs(predictor, features, prompts)
        step_of_prompt = prompts.owner // config.images_per_step
        for step in range(math.ceil(len(chunk) / config.images_per_step)):
            rows = (step_of_prompt == step).nonzero()[:, 0]
            targets = torch.from_numpy(data.masks(prompts.mask_ids[rows.numpy()])).float().to(predictor.device)
            rows = rows.to(decoded.logits.device)
            yield Decoded(
                logits=decoded.logits[rows], iou=decoded.iou[rows], object_score=decoded.object_score[rows],
                image_tokens=decoded.image_tokens[rows], mask_token=decoded.mask_token[rows],
            ), targets


def upsample_to(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(n, m, m) → (n, size, size), bilinear with align_corners=False (as SAM-2 upsamples masks)."""
    if maps.shape[-1] == size:
        return maps
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


class PixelTerms(NamedTuple):
    loss: torch.Tensor  # per-pixel ½[e^(−s)(p − y)² + s]
    log_variance: torch.Tensor  # s
    abs_error: torch.Tensor  # |y − p|
    prob: torch.Tensor  # p = σ(z), SAM's frozen prediction


def pixel_terms(head: VarianceHead, decoded, targets: torch.Tensor) -> PixelTerms:
    """Per-pixel loss, s, |y − p| and p at the targets' resolution (the model's input frame)."""
    size = targets.shape[-1]
    log_variance = upsample_to(head(decoded.image_tokens, decoded.mask_token), size)
    prob = torch.sigmoid(upsample_to(decoded.logits.float(), size))
    return PixelTerms(gaussian_nll(log_variance, prob, targets), log_variance, (targets - prob).abs(), prob)


class PearsonAccumulator:
    """Streaming Pearson correlation over many pixels (float64 sums, so order does not matter much)."""

    def __init__(self):
        self.sums = torch.zeros(6, dtype=torch.float64)  # n, Σx, Σy, Σxx, Σyy, Σxy

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.detach().reshape(-1).double().cpu(), y.detach().reshape(-1).double().cpu()
        self.sums += torch.stack([torch.tensor(float(x.numel()), dtype=torch.float64), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()])

    def value(self) -> float:
        n, sx, sy, sxx, syy, sxy = self.sums.tolist()
        cov = sxy - sx * sy / n
        var_x, var_y = sxx - sx * sx / n, syy - sy * sy / n
        return float(cov / math.sqrt(var_x * var_y)) if var_x > 0 and var_y > 0 else float("nan")


def evaluate_head(head: VarianceHead, predictor: Predictor, data, features: FrozenFeatures, config: VarnetTrainConfig,
                  *, batch_images: int = 8) -> dict[str, float]:
    """Validation loss (mean over all pixels of all objects) and Pearson correlations with |y − p|
    of s (the paper's ``val_pearson``), of e^s (the variance map we report) and, for reference, of
    the entropy of SAM's own prediction (the baseline's map); tight boxes."""
    from ..measures import binary_entropy

    was_training = head.training
    head.eval()
    total, count = 0.0, 0
    pearson, pearson_variance, pearson_entropy = PearsonAccumulator(), PearsonAccumulator(), PearsonAccumulator()
    with torch.no_grad():
        for start in range(0, data.num_images, batch_images):
            image_ids = torch.arange(start, min(start + batch_images, data.num_images))
            prompts = prompt_batch(data, image_ids, config, None)  # every object, tight boxes
            targets = torch.from_numpy(data.masks(prompts.mask_ids)).float().to(predictor.device)
            terms = pixel_terms(head, frozen_outputs(predictor, features, prompts), targets)
            total += float(terms.loss.double().sum())
            count += terms.loss.numel()
            pearson.add(terms.log_variance, terms.abs_error)
            pearson_variance.add(terms.log_variance.exp(), terms.abs_error)
            pearson_entropy.add(binary_entropy(terms.prob), terms.abs_error)
    head.train(was_training)
    return {"val_loss": total / count, "val_pearson": pearson.value(), "val_pearson_variance": pearson_variance.value(),
            "val_pearson_entropy": pearson_entropy.value()}


def make_optimizer(head: VarianceHead, config: VarnetTrainConfig, total_steps: int):
    """AdamW with weight decay on conv and linear weights only (not on biases and norms)."""
    return adamw_with_schedule(head, lr=config.lr, weight_decay=config.weight_decay,
                               lr_factor=lambda step: config.lr_factor(step, total_steps))


def head_backward(head: VarianceHead, decoded, targets: torch.Tensor) -> dict[str, float]:
    """The mean loss of a batch of frozen decoder outputs, back-propagated into the head."""
    loss = pixel_terms(head, decoded, targets).loss.mean()
    loss.backward()
    return {"loss": float(loss.detach())}


def optimisation_step(head: VarianceHead, optimizer, scheduler, decoded, targets: torch.Tensor, grad_clip: float) -> float:
    """One step on a batch of frozen decoder outputs (image_tokens, mask_token, logits); the mean loss."""
    return loop_step(head, optimizer, scheduler, lambda: head_backward(head, decoded, targets), grad_clip)["loss"]


# ---------------------------------------------------------------------------------- training

@dataclass
class VarnetTrainResult:
    head: VarianceHead  # the selected (lowest validation loss) head, in eval mode
    history: list[dict]  # one row per epoch: epoch, train_loss, val_loss, val_pearson, lr, seconds
    best_epoch: int
    out: Path | None
    record: dict


@dataclass
class HeadTrainer:
    """The variance head's part of the training loop (``training.Trainer``): its model, loss and data."""

    module: VarianceHead
    predictor: Predictor
    train_data: object  # FitData at the model's input size
    val_data: object
    config: VarnetTrainConfig
    progress: bool = True
    state_name = "head"
    train_features: FrozenFeatures | None = None
    val_features: FrozenFeatures | None = None

    def prepare(self) -> None:
        """The frozen image encoder's outputs of both splits, once per run (unless given: shared by seeds)."""
        batch, progress = self.config.encode_batch, self.progress
        if self.train_features is None:
            self.train_features = encode_split(self.predictor, self.train_data, batch, progress=progress,
                                               label="encode fit/train")
        if self.val_features is None:
            self.val_features = encode_split(self.predictor, self.val_data, batch, progress=progress,
                                             label="encode fit/val")

    def batches(self, order: torch.Tensor, start: int, generator: torch.Generator, epoch: int):
        if start:
            raise ValueError("the variance head's resume state is written at the end of an epoch only")
        return frozen_steps(self.predictor, self.train_data, self.train_features, order, self.config, generator)

    def backward(self, batch) -> dict[str, float]:
        return head_backward(self.module, *batch)

    def validate(self) -> dict[str, float]:
        return evaluate_head(self.module, self.predictor, self.val_data, self.val_features, self.config)

    def describe(self, row: dict, seconds: float) -> str:
        return (f"epoch {row['epoch']}/{self.config.epochs}: train loss {row['train_loss']:.4f}  val loss "
                f"{row['val_loss']:.4f}  val Pearson(s, |y-p|) {row['val_pearson']:.3f}, (e^s, |y-p|) "
                f"{row['val_pearson_variance']:.3f}  ({seconds:.1f} s)")


def train_variance_head(
    loaded_model,
    train_data,
    val_data,
    *,
    out: Path | None = None,
    config: VarnetTrainConfig = VarnetTrainConfig(),
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    extra_record: dict | None = None,
    stop_after_epochs: int | None = None,
    features: tuple | None = None,
    log: Callable[[str], None] = print,
) -> VarnetTrainResult:
    """Train a head for ``loaded_model`` (a ``LoadedModel``; frozen) on in-memory ``FitData``.

    Writes the selected head to ``out`` (``save_head``) when given, with a training record.
    ``features``: the (train, val) ``FrozenFeatures`` of these data, shared by several runs (seeds).
    ``stop_after_epochs`` ends the run early, leaving only the resume state (for tests)."""
    model = loaded_model.model.eval()  # frozen: it only ever runs under no_grad (frozen_outputs)
    predictor = Predictor(model)
    head = VarianceHead(transformer_dim(model), seed=seed).to(predictor.device).train()
    steps_per_epoch = math.ceil(train_data.num_images / config.images_per_step)
    optimizer, scheduler = make_optimizer(head, config, config.epochs * steps_per_epoch)
    key = {"seed": int(seed), "config": dataclasses.asdict(config), "model": model_identity(loaded_model),
           "train": train_data.fingerprint, "val": val_data.fingerprint}
    loop_config = LoopConfig(epochs=config.epochs, items=train_data.num_images, steps_per_epoch=steps_per_epoch,
                             grad_clip=config.grad_clip, stream_tag=_STREAM_TAG, label="varnet", row_seconds=True)
    resume_file = ResumeFile.beside(out, key)
    trainer = HeadTrainer(head, predictor, train_data, val_data, config, progress, *(features or (None, None)))
    loop = EpochLoop(trainer, optimizer, scheduler, loop_config, seed=seed, resume_file=resume_file, progress=progress,
                     log=log)
    cpu = time.process_time()
    result = loop.run(resume=resume, stop_after_epochs=stop_after_epochs)
    cpu = time.process_time() - cpu
    if not result.finished:
        return VarnetTrainResult(head, result.history, result.best_epoch, None, {"stopped_after_epoch": loop.state.epoch})
    record = _record(loaded_model, train_data, val_data, config, seed, result, {"cpu_seconds": round(cpu, 1),
                                                                                  **(extra_record or {})})
    if out is not None:
        save_head(head, out, loaded_model, training=record)
        resume_file.remove()
    return VarnetTrainResult(head, result.history, result.best_epoch, out, record)


def _record(loaded_model, train_data, val_data, config: VarnetTrainConfig, seed: int, result, extra: dict | None) -> dict:
    """What the head file records about its training."""
    best = next(row for row in result.history if row["epoch"] == result.best_epoch)
    return {
        "seed": int(seed),
        "config": dataclasses.asdict(config),
        "history": result.history,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best["val_loss"],
        "best_val_pearson": best["val_pearson"],
        "best_val_pearson_variance": best["val_pearson_variance"],
        "train_seconds": round(result.seconds, 1),
        "encode_seconds": round(result.prepare_seconds, 1),
        "threads": torch.get_num_threads(),
        "train_data": {"images": train_data.num_images, "masks": train_data.num_masks, "fingerprint": train_data.fingerprint},
        "val_data": {"images": val_data.num_images, "masks": val_data.num_masks, "fingerprint": val_data.fingerprint},
        "model_label": loaded_model.label,
        **(extra or {}),
    }


# ---------------------------------------------------------------------------------- data, CLI

def load_fit_splits(root: Path, size: int, *, limit: int | None = None, progress: bool = False):
    """``fit/train`` and ``fit/val``; ``limit`` keeps the first ``limit`` training images and a
    quarter as many validation images (smoke tests)."""
    val_limit = None if limit is None else max(1, limit // 4)
    return (load_fit_split(root, "train", size, limit=limit, progress=progress),
            load_fit_split(root, "val", size, limit=val_limit, progress=progress))


def train_from_root(
    root: Path,
    out: Path,
    *,
    model: str = "nano",
    checkpoint: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    resume: bool = False,
    limit: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> VarnetTrainResult:
    """The ``uncertsam train varnet`` entry point: read ``<root>/fit/{train,val}`` and train."""
    from ...data.mini import read_marker
    from ...model import load_model

    root = Path(root)
    loaded = load_model(model, checkpoint, device=device)
    size = loaded.image_size
    train_data, val_data = load_fit_splits(root, size, limit=limit, progress=progress)
    log(f"model {loaded.label}; fit/train {train_data.num_images} images, {train_data.num_masks} masks; "
        f"fit/val {val_data.num_images} images, {val_data.num_masks} masks")
    config = VarnetTrainConfig() if epochs is None else VarnetTrainConfig(epochs=int(epochs))
    marker = read_marker(root) or {}
    extra = {"command": command, "data": {"root": str(root.resolve()), "generator": marker.get("generator"),
                                          "version": marker.get("version"), "seed": marker.get("seed")}}
    return train_variance_head(loaded, train_data, val_data, out=Path(out), config=config, seed=seed, resume=resume,
                               progress=progress, extra_record=extra, log=log)


def head_cache_key(root: Path, loaded_model, config: VarnetTrainConfig, seed: int, limit: int | None = None) -> dict:
    """What a head trained by ``train_or_load`` depends on (with ``artifacts.full_key``'s code and
    libraries): the model's identity, the recipe, the seed, the fit data's content and ``limit``
    when the training images are limited."""
    key = {"model": model_key(loaded_model), "config": dataclasses.asdict(config), "seed": int(seed),
           "data": fit_data_key(root), "recipe_version": RECIPE_VERSION}
    if limit is not None:
        key["limit"] = int(limit)
    return key


def cached_head_path(root: Path, loaded_model, config: VarnetTrainConfig, seed: int, limit: int | None = None) -> Path:
    """Where ``train_or_load`` keeps the head trained from these inputs (``head_cache_key``), under
    the results cache."""
    from ...paths import results_cache_dir

    digest = cache_digest(head_cache_key(root, loaded_model, config, seed, limit))
    return results_cache_dir() / "varnet" / f"{loaded_model.info.name}-{digest}.pt"


def train_or_load(root: Path, loaded_model, *, config: VarnetTrainConfig = VarnetTrainConfig(), seed: int = 0,
                  limit: int | None = None, progress: bool = True, log: Callable[[str], None] = print):
    """The head for these inputs from the cache (verified), training it first (resumably) when missing.

    Returns ``(head, record)``; ``record`` holds the training history (``record["history"]``)."""
    from ...artifacts import full_key
    from ...cache.entries import record_entry, reuse_entry
    from .head import load_head

    path = cached_head_path(root, loaded_model, config, seed, limit)
    if not reuse_entry(path, log):
        train_data, val_data = load_fit_splits(root, loaded_model.image_size, limit=limit, progress=progress)
        train_variance_head(loaded_model, train_data, val_data, out=path, config=config, seed=seed, resume=True,
                            progress=progress, extra_record={"data": {"root": Path(root).name, "limit": limit}},
                            log=log)
        record_entry(path, "varnet", full_key(head_cache_key(root, loaded_model, config, seed, limit)))
    else:
        log(f"using the cached head {path.name}")
    head = load_head(path, loaded_model)
    return head, head.training_record


def train_or_load_seeds(root: Path, loaded_model, seeds, *, config: VarnetTrainConfig = VarnetTrainConfig(),
                        limit: int | None = None, train_missing: bool = True, progress: bool = True,
                        log: Callable[[str], None] = print) -> dict[int, Path | None]:
    """``{seed: head file}`` of one recipe trained with each of ``seeds`` (each cached as ``train_or_load``
    caches it, verified): the data are read and encoded once for every missing seed. None: missing."""
    from ...artifacts import full_key
    from ...cache.entries import record_entry, reuse_entry

    paths = {int(s): cached_head_path(root, loaded_model, config, int(s), limit) for s in seeds}
    missing = [s for s, p in paths.items() if not reuse_entry(p, log)]
    if missing and train_missing:
        train_data, val_data = load_fit_splits(root, loaded_model.image_size, limit=limit, progress=progress)
        predictor = Predictor(loaded_model.model.eval())
        features = tuple(encode_split(predictor, d, config.encode_batch, progress=progress, label=f"encode fit/{n}")
                         for d, n in ((train_data, "train"), (val_data, "val")))
        for seed in missing:
            log(f"training the variance head with seed {seed}")
            train_variance_head(loaded_model, train_data, val_data, out=paths[seed], config=config, seed=seed,
                                resume=True, progress=progress, features=features, log=log,
                                extra_record={"data": {"root": Path(root).name, "limit": limit}})
            record_entry(paths[seed], "varnet", full_key(head_cache_key(root, loaded_model, config, seed, limit)))
    return {s: (p if p.is_file() else None) for s, p in paths.items()}


def seed_methods(heads: dict, loaded_model, *, plain_seed: int) -> dict:
    """``{name: VarianceNetwork}`` of ``train_or_load_seeds``' heads: ``varnet`` for ``plain_seed`` (what
    the per-dataset tables and the paper's claims read), ``varnet.s<seed>`` for the others; missing
    heads left out. For the spread over seeds (``analysis``) in one evaluation."""
    from ...seeds import seed_names
    from .method import VarianceNetwork

    names = seed_names("varnet", list(heads), plain_seed=plain_seed)
    return {names[s]: VarianceNetwork.load(path, loaded_model) for s, path in heads.items() if path is not None}
