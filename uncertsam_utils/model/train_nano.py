"""Train the nano SAM-2 (``configs/nano_sam2_256.yaml``) from scratch on the UncertSAM-mini fit set.

The recipe (see ``TrainConfig``; measurements in ``docs`` / the issue report):

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

import dataclasses
import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..artifacts import read_resume, save_atomic

IMAGE_SIZE = 256
# Fixed so that retraining reproduces. With one torch thread (the default of ``uncertsam train
# nano``, bit-reproducible) a step costs about 0.4 s of CPU: 8000 steps take 53-62 min (the 45-min
# guide buys ~6,500); 6000 steps reached 0.835 fit-test mIoU, 8000 steps 0.868. See ``cpu_seconds`` /
# ``train_seconds`` in the shipped JSON for the measured run.
DEFAULT_STEPS = 8000
RESUME_SUFFIX = ".resume.pt"
_DATA_SEED_TAG = 0x6E616E6F  # "nano": separates the data stream from the model-init stream


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


# ------------------------------------------------------------------------------------------ data

def tight_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool → (N, 4) float32 xyxy tight boxes, inclusive pixel indices (the paper's)."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    y1, y2 = rows.argmax(1), rows.shape[1] - 1 - rows[:, ::-1].argmax(1)
    x1, x2 = cols.argmax(1), cols.shape[1] - 1 - cols[:, ::-1].argmax(1)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


@dataclass
class FitData:
    """A split held in memory at the model's input size: images uint8, masks bit-packed."""

    images: np.ndarray  # (N, S, S, 3) uint8
    packed: np.ndarray  # (K, S*S/8) uint8, np.packbits of each flattened mask
    boxes: np.ndarray  # (K, 4) float32 tight boxes in the S frame
    first: np.ndarray  # (N + 1,) mask offsets per image
    size: int = IMAGE_SIZE
    fingerprint: str = ""

    @property
    def num_images(self) -> int:
        return self.images.shape[0]

    @property
    def num_masks(self) -> int:
        return self.packed.shape[0]

    def masks(self, index: np.ndarray) -> np.ndarray:
        flat = np.unpackbits(self.packed[index], axis=-1, count=self.size * self.size)
        return flat.reshape(len(index), self.size, self.size).astype(bool)

    @classmethod
    def from_items(cls, items: Iterable[tuple[np.ndarray, np.ndarray]], size: int = IMAGE_SIZE) -> "FitData":
        """From (image (H, W, 3) uint8, masks (N, H, W) bool) pairs; resized to size² if needed.

        Images without a mask left at that size are skipped (they give no training prompt)."""
        images, packed, boxes, first = [], [], [], [0]
        digest = hashlib.blake2b(digest_size=16)
        for image, masks in items:
            image, masks = _to_square(np.asarray(image), np.asarray(masks, dtype=bool).reshape(-1, *np.shape(image)[:2]), size)
            masks = masks[masks.reshape(len(masks), -1).any(1)]
            if not len(masks):
                continue
            images.append(image)
            packed.append(np.packbits(masks.reshape(len(masks), -1), axis=-1))
            boxes.append(tight_boxes(masks))
            first.append(first[-1] + len(masks))
            digest.update(image.tobytes())
            digest.update(packed[-1].tobytes())
        if not images:
            raise ValueError("no image with a non-empty mask")
        return cls(np.stack(images), np.concatenate(packed), np.concatenate(boxes), np.array(first), size, digest.hexdigest())


def _to_square(image: np.ndarray, masks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    if image.shape[:2] == (size, size):
        return image, masks
    from ..data.resize import resize_masks
    from .images import to_rgb_uint8

    tensor = torch.from_numpy(to_rgb_uint8(image)).permute(2, 0, 1)[None].float()
    image = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    image = image[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return image, resize_masks(masks, size)  # the paper's squash, as ``Sample.boxes`` uses


def read_split(root: Path, dataset: str, split: str, limit: int | None = None, *, progress: bool = False):
    """The first ``limit`` samples of ``<root>/<dataset>/<split>`` (published layout), in id order."""
    from ..data.layout import SplitReader

    reader = SplitReader(Path(root), dataset, split)
    count = len(reader) if limit is None else min(limit, len(reader))
    indices: Iterable[int] = range(count)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"read {dataset}/{split}", unit="img", leave=False)
    return [reader[i] for i in indices]


def load_fit(root: Path, split: str = "train", limit: int | None = None, *, progress: bool = False) -> FitData:
    samples = read_split(root, "fit", split, limit, progress=progress)
    return FitData.from_items((s.image, s.masks) for s in samples)


# ----------------------------------------------------------------------------------- sampling

@dataclass
class Batch:
    """One training step's inputs. Prompts are grouped by kind, in this order: box only, box
    plus dense box, points; ``targets`` follow the same order."""

    images: torch.Tensor  # (B, 3, S, S) float in [0, 1]
    targets: torch.Tensor  # (n, S, S) float {0, 1}
    image_index: torch.Tensor  # (n,) long
    boxes: torch.Tensor  # (n, 4) jittered boxes (rows of point prompts unused)
    kinds: list[str]  # per prompt: "box" | "dense" | "points"
    points: torch.Tensor  # (n, 2, 2)
    point_labels: torch.Tensor  # (n, 2)
    refine: bool = False  # also decode the box prompts with their own first-pass mask as prompt

    def group(self, kind: str) -> torch.Tensor:
        return torch.tensor([i for i, k in enumerate(self.kinds) if k == kind], dtype=torch.long)


KINDS = ("box", "dense", "points")


def sample_batch(data: FitData, rng: np.random.Generator, cfg: TrainConfig, p_dense: float) -> Batch:
    """Draw one step's images, objects, flips, jitter and prompt kinds from ``rng``."""
    s = data.size
    chosen = rng.choice(data.num_images, size=min(cfg.images_per_step, data.num_images), replace=False)
    flips = rng.random(len(chosen)) < cfg.flip_prob
    mask_ids, owner = [], []
    for b, image in enumerate(chosen):
        start, stop = data.first[image], data.first[image + 1]
        picked = rng.permutation(stop - start)[: cfg.objects_per_image] + start
        mask_ids.extend(picked.tolist())
        owner.extend([b] * len(picked))
    mask_ids, owner = np.array(mask_ids), np.array(owner)
    images = data.images[chosen].copy()
    images[flips] = images[flips, :, ::-1]
    masks = data.masks(mask_ids)
    flipped = flips[owner]
    masks[flipped] = masks[flipped, :, ::-1]
    boxes = data.boxes[mask_ids].copy()
    boxes[flipped] = np.stack([s - 1 - boxes[flipped, 2], boxes[flipped, 1], s - 1 - boxes[flipped, 0], boxes[flipped, 3]], 1)
    side = np.concatenate([boxes[:, 2:3] - boxes[:, 0:1], boxes[:, 3:4] - boxes[:, 1:2]], 1)[:, [0, 1, 0, 1]]
    noise = rng.uniform(-1.0, 1.0, size=boxes.shape) * np.minimum(cfg.jitter_frac * side, cfg.jitter_px)
    boxes = np.clip(boxes + noise, 0, s - 1).astype(np.float32)

    n = len(mask_ids)
    u_points, u_dense = rng.random(n), rng.random(n)
    kinds = np.where(u_points < cfg.point_prompt_prob, 2, np.where(u_dense < p_dense, 1, 0))
    points = np.zeros((n, 2, 2), np.float32)
    labels = np.ones((n, 2), np.int64)
    for i in np.flatnonzero(kinds == 2):
        points[i], labels[i] = _sample_points(rng, masks[i], boxes[i])
    order = np.argsort(kinds, kind="stable")
    refine = bool(rng.random() < cfg.refine_prob)
    return Batch(
        images=torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0,
        targets=torch.from_numpy(masks[order]).float(),
        image_index=torch.from_numpy(owner[order]).long(),
        boxes=torch.from_numpy(boxes[order]),
        kinds=[KINDS[k] for k in kinds[order]],
        points=torch.from_numpy(points[order]),
        point_labels=torch.from_numpy(labels[order]),
        refine=refine,
    )


def _sample_points(rng: np.random.Generator, mask: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A positive point, then a positive (p = 0.5) or a negative one (inside the box if possible)."""
    inside = np.flatnonzero(mask)
    first = inside[rng.integers(len(inside))]
    if rng.random() < 0.5:
        second, label = inside[rng.integers(len(inside))], 1
    else:
        outside = ~mask
        x1, y1, x2, y2 = np.round(box).astype(int)
        in_box = np.zeros_like(mask)
        in_box[y1:y2 + 1, x1:x2 + 1] = True
        candidates = np.flatnonzero(outside & in_box)
        if not len(candidates):
            candidates = np.flatnonzero(outside)
        second, label = candidates[rng.integers(len(candidates))], 0
    w = mask.shape[1]
    pts = np.array([[first % w, first // w], [second % w, second // w]], np.float32)
    return pts, np.array([1, label], np.int64)


def box_raster(boxes: torch.Tensor, mask_size: int, image_size: int, logit: float) -> torch.Tensor:
    """Dense box prompt: (n, 4) boxes → (n, m, m) logits, +logit inside the box, -logit outside."""
    centres = (torch.arange(mask_size, dtype=torch.float32) + 0.5) * (image_size / mask_size)
    in_x = (centres[None] >= boxes[:, 0:1]) & (centres[None] <= boxes[:, 2:3] + 1)
    in_y = (centres[None] >= boxes[:, 1:2]) & (centres[None] <= boxes[:, 3:4] + 1)
    return ((in_y[:, :, None] & in_x[:, None, :]).float() * 2 - 1) * logit


# --------------------------------------------------------------------------------------- loss

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


# ---------------------------------------------------------------------------------- training

def make_optimizer(model: torch.nn.Module, cfg: TrainConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cfg.lr_factor)
    return optimizer, scheduler


def train_step(predictor, optimizer, scheduler, batch: Batch, cfg: TrainConfig) -> dict[str, float]:
    loss, parts = batch_loss(predictor, batch, cfg)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(predictor.model.parameters(), cfg.grad_clip))
    optimizer.step()
    scheduler.step()
    return parts


def resume_path(out: Path) -> Path:
    return Path(str(out) + RESUME_SUFFIX)


def _run_key(cfg: TrainConfig, seed: int, data: FitData) -> dict:
    return {"seed": int(seed), "recipe": dataclasses.asdict(cfg), "data": data.fingerprint}


def _save_resume(path: Path, model, optimizer, scheduler, step, rng, key, history, seconds, cpu) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "key": key,
        "history": history,
        "train_seconds": seconds,
        "cpu_seconds": cpu,
    }
    save_atomic(state, path)


@dataclass
class TrainResult:
    out: Path | None  # the final {'model': state_dict} file; None when stopped early
    record: dict
    model: torch.nn.Module
    step: int


def train(out: Path, train_data: FitData, val_items: Sequence | None = None, **kwargs) -> TrainResult:
    """Train from scratch (or ``resume``) and write ``out`` (``{'model': state_dict}``) + ``out``.json.

    ``val_items`` are ``nano_card.EvalItem``s scored box-only every ``cfg.val_every`` steps.
    ``stop_after`` ends the run after that many steps with a resume checkpoint (for tests).
    Denormal floats are flushed to zero while training (about 10 % faster on CPU; part of the
    recipe, so results are still deterministic)."""
    torch.set_flush_denormal(True)
    try:
        return _train(out, train_data, val_items, **kwargs)
    finally:
        torch.set_flush_denormal(False)  # torch's default


def _train(
    out: Path,
    train_data: FitData,
    val_items: Sequence | None = None,
    *,
    seed: int = 0,
    cfg: TrainConfig = TrainConfig(),
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    extra_record: dict | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    from .nano_card import evaluate_items, summarise
    from .predictor import Predictor
    from .registry import load_model

    out = Path(out)
    ckpt = resume_path(out)
    loaded = load_model("nano", "random", seed=seed)
    model = loaded.model.train()
    # The package's own decoder body: the shipped weights were trained through it, so retraining
    # reproduces them bit for bit (the restructured decoder equals it only up to rounding).
    predictor = Predictor(model, decoder="sam2")
    optimizer, scheduler = make_optimizer(model, cfg)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _DATA_SEED_TAG]))
    torch.manual_seed(seed)
    key = _run_key(cfg, seed, train_data)
    start, history, seconds, cpu = 0, [], 0.0, 0.0
    if resume and ckpt.is_file():
        state = read_resume(ckpt, key)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        start, history, seconds, cpu = state["step"], state["history"], state["train_seconds"], state["cpu_seconds"]
        log(f"resumed from {ckpt} at step {start}")
    elif resume:
        log(f"no resume checkpoint at {ckpt}; starting from step 0")

    def validate(step: int) -> None:
        if not val_items:
            return
        model.eval()
        rows = evaluate_items(predictor, val_items)
        model.train()
        summary = summarise(rows)
        history.append({"step": step, "miou": summary["miou"], "mbiou": summary["mbiou"]})
        bar.set_postfix_str(f"val mIoU {summary['miou']:.3f}")
        log(f"step {step}: val box-only mIoU {summary['miou']:.4f}  mBIoU {summary['mbiou']:.4f}")

    from tqdm.auto import tqdm

    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = tqdm(total=cfg.steps, initial=start, desc="train nano", unit="step", disable=not progress, smoothing=0.05)
    running = None
    wall0, cpu0 = time.perf_counter() - seconds, time.process_time() - cpu  # continue the clocks on resume
    for step in range(start, end):
        batch = sample_batch(train_data, rng, cfg, cfg.dense_probability(step))
        parts = train_step(predictor, optimizer, scheduler, batch, cfg)
        running = parts["loss"] if running is None else 0.98 * running + 0.02 * parts["loss"]
        bar.update(1)
        done = step + 1
        if done % 25 == 0:
            bar.set_postfix_str(f"loss {running:.3f} p_dense {cfg.dense_probability(step):.2f}"
                                + (f" val {history[-1]['miou']:.3f}" if history else ""))
        if done % cfg.val_every == 0 or done == cfg.steps:
            validate(done)
        if done % cfg.checkpoint_every == 0 or done == end:
            _save_resume(ckpt, model, optimizer, scheduler, done, rng, key, history,
                         time.perf_counter() - wall0, time.process_time() - cpu0)
    seconds, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    bar.close()
    model.eval()
    done = max(start, end)
    record = {
        "seed": int(seed),
        "steps": int(cfg.steps),
        "train_seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / max(1, cfg.steps), 4),
        # wall and process CPU time of the training loop (validation and checkpoints included); with
        # one thread, CPU time is about the wall time on an idle core (a busy machine inflates the wall)
        "cpu_seconds": round(cpu, 1),
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "recipe": dataclasses.asdict(cfg),
        "train_data": {"images": train_data.num_images, "masks": train_data.num_masks, "fingerprint": train_data.fingerprint},
        "validation": history,
        "versions": _versions(),
        **(extra_record or {}),
    }
    if done < cfg.steps:
        return TrainResult(None, record, model, done)
    write_weights(model, out, record)
    ckpt.unlink(missing_ok=True)  # the run is complete; its resume state is no longer needed
    return TrainResult(out, record, model, done)


def _versions() -> dict:
    import sam2  # noqa: F401
    from importlib.metadata import version

    return {"torch": torch.__version__, "sam2": version("sam2"), "numpy": np.__version__}


def write_weights(model: torch.nn.Module, out: Path, record: dict) -> dict:
    """Save ``{'model': state_dict}`` to ``out`` and the record (with its SHA-256) to ``out``.json."""
    from .checkpoints import sha256_of

    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()  # saved through a buffer: torch names the zip's root folder after the file
    torch.save({"model": state}, buffer)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, out)
    record = {"file": out.name, "sha256": sha256_of(out), "bytes": out.stat().st_size, **record}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def train_from_root(root: Path, out: Path, *, seed: int = 0, steps: int | None = None, resume: bool = False,
                    command: str | None = None, progress: bool = True, threads: int | None = 2,
                    log: Callable[[str], None] = print) -> TrainResult:
    """The ``uncertsam train nano`` entry point: read the fit set under ``root`` and train."""
    from ..data.mini import read_marker
    from .nano_card import items_from_samples

    if threads:
        torch.set_num_threads(int(threads))
    cfg = TrainConfig() if steps is None else dataclasses.replace(TrainConfig(), steps=int(steps))
    tic = time.perf_counter()
    train_data = load_fit(root, "train", progress=progress)
    val_items = items_from_samples(read_split(root, "fit", "val", cfg.val_images), IMAGE_SIZE)
    load_seconds = time.perf_counter() - tic
    log(f"fit/train: {train_data.num_images} images, {train_data.num_masks} masks; "
        f"val: {len(val_items)} images ({load_seconds:.1f} s to read)")
    marker = read_marker(root) or {}
    extra = {
        "command": command,
        "data": {
            "root": str(Path(root).resolve()),
            "generator": marker.get("generator"),
            "version": marker.get("version"),
            "seed": marker.get("seed"),
            "fit_sizes": marker.get("fit_sizes"),
            "fingerprint": marker.get("fingerprint"),
            "split": "fit/train",
            "val": f"fit/val, first {len(val_items)} images",
        },
        "data_load_seconds": round(load_seconds, 1),
    }
    return train(out, train_data, val_items, seed=seed, cfg=cfg, resume=resume, progress=progress,
                 extra_record=extra, log=log)
