"""The nano SAM-2's training run: ``train`` (from scratch, or resumed) and ``uncertsam train nano``
(``train_from_root``). The recipe is in ``recipe.py``; sampling and loss in ``sampling.py`` and ``loss.py``.

A step-based loop of its own (a fixed number of steps, each drawing its images from a ``numpy``
generator, validation every ``val_every`` steps without selection), sharing the resume state,
progress bar and clocks of ``uncertsam_utils.training`` with the epoch loop of the post-hoc modules.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ...training import (RESUME_SUFFIX, FitData, ResumeFile, RunningMean, Stopwatch, load_fit_split,  # noqa: F401
                         progress_bar, read_split, resume_path)
from .card import evaluate_items, items_from_samples, summarise
from .loss import batch_loss
from .recipe import DEFAULT_STEPS, IMAGE_SIZE, TrainConfig  # noqa: F401  (DEFAULT_STEPS: the CLI's default)
from .sampling import Batch, sample_batch

_DATA_SEED_TAG = 0x6E616E6F  # "nano": separates the data stream from the model-init stream


def load_fit(root: Path, split: str = "train", limit: int | None = None, *, progress: bool = False) -> FitData:
    """``<root>/fit/<split>`` in memory at the nano's input size."""
    return load_fit_split(root, split, IMAGE_SIZE, limit=limit, progress=progress)


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


def _run_key(cfg: TrainConfig, seed: int, data: FitData) -> dict:
    return {"seed": int(seed), "recipe": dataclasses.asdict(cfg), "data": data.fingerprint}


@dataclass
class TrainResult:
    out: Path | None  # the final {'model': state_dict} file; None when stopped early
    record: dict
    model: torch.nn.Module
    step: int


def train(out: Path, train_data: FitData, val_items: Sequence | None = None, **kwargs) -> TrainResult:
    """Train from scratch (or ``resume``) and write ``out`` (``{'model': state_dict}``) + ``out``.json.

    ``val_items`` are ``card.EvalItem``s scored box-only every ``cfg.val_every`` steps.
    ``stop_after`` ends the run after that many steps with a resume checkpoint (for tests).
    Denormal floats are flushed to zero while training (about 10 % faster on CPU; part of the
    recipe, so results are still deterministic)."""
    torch.set_flush_denormal(True)
    try:
        return _train(out, train_data, val_items, **kwargs)
    finally:
        torch.set_flush_denormal(False)  # torch's default


def _train(out: Path, train_data: FitData, val_items: Sequence | None = None, *, seed: int = 0,
           cfg: TrainConfig = TrainConfig(), resume: bool = False, stop_after: int | None = None, progress: bool = True,
           extra_record: dict | None = None, log: Callable[[str], None] = print) -> TrainResult:
    out = Path(out)
    run = _Run(train_data, val_items, seed, cfg, ResumeFile.beside(out, _run_key(cfg, seed, train_data)), log)
    if resume:
        run.restore()
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    run.steps_to(end, progress)
    run.model.eval()
    record = {
        "seed": int(seed),
        "steps": int(cfg.steps),
        "train_seconds": round(run.seconds, 1),
        "seconds_per_step": round(run.seconds / max(1, cfg.steps), 4),
        # wall and process CPU time of the training loop (validation and checkpoints included); with
        # one thread, CPU time is about the wall time on an idle core (a busy machine inflates the wall)
        "cpu_seconds": round(run.cpu_seconds, 1),
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in run.model.parameters()),
        "recipe": dataclasses.asdict(cfg),
        "train_data": {"images": train_data.num_images, "masks": train_data.num_masks, "fingerprint": train_data.fingerprint},
        "validation": run.history,
        "versions": _versions(),
        **(extra_record or {}),
    }
    if run.step < cfg.steps:
        return TrainResult(None, record, run.model, run.step)
    write_weights(run.model, out, record)
    run.resume_file.remove()  # the run is complete; its resume state is no longer needed
    return TrainResult(out, record, run.model, run.step)


class _Run:
    """One training run's model, optimiser, generators, validation history, clocks and resume state."""

    def __init__(self, data: FitData, val_items, seed: int, cfg: TrainConfig, resume_file: ResumeFile,
                 log: Callable[[str], None]):
        from ..predictor import Predictor
        from ..registry import load_model

        self.data, self.val_items, self.cfg, self.resume_file, self.log = data, val_items, cfg, resume_file, log
        self.model = load_model("nano", "random", seed=seed).model.train()
        # The package's own decoder body: the shipped weights were trained through it, so retraining
        # reproduces them bit for bit (the restructured decoder equals it only up to rounding).
        self.predictor = Predictor(self.model, decoder="sam2")
        self.optimizer, self.scheduler = make_optimizer(self.model, cfg)
        self.rng = np.random.default_rng(np.random.SeedSequence([int(seed), _DATA_SEED_TAG]))
        torch.manual_seed(seed)
        self.step, self.history, self.bar = 0, [], None
        self.seconds, self.cpu_seconds = 0.0, 0.0  # wall and CPU time of the run's steps so far
        self.clock = Stopwatch()

    def restore(self) -> None:
        """Continue from the resume state, when there is one (clocks included)."""
        if not self.resume_file.exists():
            self.log(f"no resume checkpoint at {self.resume_file.path}; starting from step 0")
            return
        state = self.resume_file.read()
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step, self.history = state["step"], state["history"]
        self.seconds, self.cpu_seconds = state["train_seconds"], state["cpu_seconds"]
        self.log(f"resumed from {self.resume_file.path} at step {self.step}")

    def steps_to(self, end: int, progress: bool) -> None:
        """Train up to step ``end``, validating every ``val_every`` steps, checkpointing every
        ``checkpoint_every`` steps and at ``end``."""
        cfg = self.cfg
        self.bar = progress_bar(cfg.steps, initial=self.step, desc="train nano", enabled=progress, leave=True)
        self.clock = Stopwatch(self.seconds, self.cpu_seconds)  # continues the clocks of a resumed run
        running = RunningMean()
        for step in range(self.step, end):
            batch = sample_batch(self.data, self.rng, cfg, cfg.dense_probability(step))
            parts = train_step(self.predictor, self.optimizer, self.scheduler, batch, cfg)
            running.add(parts["loss"])
            self.bar.update(1)
            self.step = done = step + 1
            if done % 25 == 0:
                self.bar.set_postfix_str(f"loss {running.value:.3f} p_dense {cfg.dense_probability(step):.2f}"
                                         + (f" val {self.history[-1]['miou']:.3f}" if self.history else ""))
            if done % cfg.val_every == 0 or done == cfg.steps:
                self.validate()
            if done % cfg.checkpoint_every == 0 or done == end:
                self.save()
        self.seconds, self.cpu_seconds = self.clock.wall, self.clock.cpu
        self.bar.close()

    def validate(self) -> None:
        """Box-only mIoU / mBIoU on the validation items (no selection: the last step is the model)."""
        if not self.val_items:
            return
        self.model.eval()
        summary = summarise(evaluate_items(self.predictor, self.val_items))
        self.model.train()
        self.history.append({"step": self.step, "miou": summary["miou"], "mbiou": summary["mbiou"]})
        self.bar.set_postfix_str(f"val mIoU {summary['miou']:.3f}")
        self.log(f"step {self.step}: val box-only mIoU {summary['miou']:.4f}  mBIoU {summary['mbiou']:.4f}")

    def save(self) -> None:
        self.resume_file.write({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "step": self.step, "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "history": self.history, "train_seconds": self.clock.wall,
            "cpu_seconds": self.clock.cpu})


def _versions() -> dict:
    import sam2  # noqa: F401
    from importlib.metadata import version

    return {"torch": torch.__version__, "sam2": version("sam2"), "numpy": np.__version__}


def write_weights(model: torch.nn.Module, out: Path, record: dict) -> dict:
    """Save ``{'model': state_dict}`` to ``out`` and the record (with its SHA-256) to ``out``.json."""
    from ..checkpoints import sha256_of

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
    from ...data.mini import read_marker

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
