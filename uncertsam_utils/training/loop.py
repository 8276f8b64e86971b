"""The one training loop of the modules trained on a frozen SAM-2 (the variance head, the fusion modules).

The loop owns what every such trainer does the same way:

* **seeded sampling**: the run's ``torch.Generator`` (from the seed and the trainer's tag, ``sampling``)
  and a fresh permutation of the training items at the start of every epoch;
* **the optimisation step**: zero the gradients, the trainer's backward, gradient-norm clipping,
  optimiser and schedule step;
* **progress and time**: a bar per epoch with the running loss, the run's wall seconds;
* **validation and selection**: after every epoch the trainer's validation scores; the state of the
  epoch with the best ``criterion`` (the lowest, or the highest with ``maximize``; ties keep the
  earlier epoch) is kept and restored at the end, and the last trained epoch's state is returned
  beside it (``LoopResult.last_state``: what training made, whether or not selection kept it);
* **resume state**: written atomically after every epoch and every ``checkpoint_every`` steps
  (``resume.ResumeFile``); a resumed run continues exactly as an uninterrupted one.

A trainer (``Trainer``) supplies only its model, loss and data: the module, its steps' batches, the
backward pass of one batch, the validation scores and a log line. Off by default (issue 18 turns
them on per trainer): ``select_initial`` makes the untrained module a candidate (validated as epoch 0,
before the first step), ``patience`` stops after that many epochs without a better criterion, and
``Trainer.prepare`` is where a trainer computes (or caches) its expensive inputs once per run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import torch

from .progress import RunningMean, progress_bar
from .resume import ResumeFile
from .sampling import epoch_order, stream


class Trainer(Protocol):
    """What a trainer gives the loop: its model, its loss and its data."""

    module: torch.nn.Module  # what is trained (the rest of the model stays frozen)
    state_name: str  # the module's key in the resume state

    def prepare(self) -> None:
        """Compute the run's expensive inputs once, before the first step (e.g. frozen features)."""

    def batches(self, order: torch.Tensor, start: int, generator: torch.Generator, epoch: int) -> Iterator[Any]:
        """Epoch ``epoch``'s (0-based) batches from step ``start`` on, items visited in ``order``; every
        random draw from ``generator``, lazily (a batch is drawn when the loop asks for it), or from
        draws of its own keyed by the epoch (the fusion modules' first-pass bank)."""

    def backward(self, batch) -> dict[str, float]:
        """Loss of one batch, back-propagated (gradients accumulate in ``module``); the numbers to
        average over the epoch (``loss`` first), reported as ``train_<name>``."""

    def validate(self) -> dict[str, float]:
        """Validation scores of the module as it is now, the criterion among them."""

    def describe(self, row: dict, seconds: float) -> str:
        """The log line of a finished epoch (its history row)."""


@dataclass(frozen=True)
class LoopConfig:
    epochs: int
    items: int  # training items permuted per epoch (images)
    steps_per_epoch: int
    grad_clip: float
    stream_tag: int  # separates this trainer's draws from other uses of the seed
    label: str = "train"  # progress bar: "<label> epoch e/E"
    unit: str = "step"
    criterion: str = "val_loss"  # the validation score that selects the epoch
    maximize: bool = False  # the criterion is a score to maximise (e.g. validation mIoU), not a loss
    checkpoint_every: int | None = None  # steps; None: resume state at the end of each epoch only
    row_seconds: bool = False  # history rows carry the epoch's seconds
    select_initial: bool = False  # the untrained module is a selection candidate (epoch 0)
    patience: int | None = None  # stop after this many epochs without a better criterion


@dataclass
class LoopState:
    """Everything a resumed run needs besides the module, optimiser, schedule and generator."""

    epoch: int = 0  # the epoch in progress (0-based): the number of finished epochs when position is 0
    position: int = 0  # steps of it done
    order: torch.Tensor | None = None  # its item order (None until it starts)
    sums: dict = field(default_factory=dict)  # its running totals of the backward's numbers
    history: list = field(default_factory=list)  # one row per finished epoch
    best: dict | None = None  # {"epoch", criterion, "state"}: the selected module so far
    seconds: float = 0.0


@dataclass
class LoopResult:
    history: list[dict]
    best: dict | None
    finished: bool  # every epoch done, or stopped early by ``patience``
    stopped_early: bool  # by ``patience``
    seconds: float
    prepare_seconds: float
    steps: int  # optimisation steps in this call
    last_state: dict | None = None  # the module after the last trained epoch (None if no epoch was trained)
    last_epoch: int = 0  # that epoch (0: nothing trained)

    @property
    def best_epoch(self) -> int:
        return -1 if self.best is None else self.best["epoch"]


def optimisation_step(module: torch.nn.Module, optimizer, scheduler, backward: Callable[[], dict],
                      grad_clip: float) -> dict[str, float]:
    """One step: zero the gradients, ``backward()``, clip their norm, optimiser and schedule step."""
    optimizer.zero_grad(set_to_none=True)
    parts = backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return parts


class EpochLoop:
    """One training run of a ``Trainer``: ``EpochLoop(...).run()``; ``state`` is what its resume file holds."""

    def __init__(self, trainer: Trainer, optimizer, scheduler, config: LoopConfig, *, seed: int,
                 resume_file: ResumeFile | None = None, progress: bool = True, log: Callable[[str], None] = print):
        self.trainer, self.optimizer, self.scheduler, self.config = trainer, optimizer, scheduler, config
        self.generator = stream(seed, config.stream_tag)
        self.resume_file, self.progress, self.log = resume_file, progress, log
        self.state = LoopState()

    def run(self, *, resume: bool = False, stop_after_steps: int | None = None,
            stop_after_epochs: int | None = None) -> LoopResult:
        """Train (continuing the resume state when ``resume``). ``stop_after_steps`` / ``stop_after_epochs``
        end this call early, leaving the resume state (tests of resuming); the module is then as trained
        so far after a stop within an epoch, else the selected one; in eval mode."""
        resumed = resume and self.resume_file is not None and self.resume_file.exists()
        if resumed:
            self._restore()
        elif resume:
            self.log(f"no resume state at {None if self.resume_file is None else self.resume_file.path}; "
                     "starting from epoch 0")
        tic = time.perf_counter()
        self.trainer.prepare()
        prepare_seconds = time.perf_counter() - tic
        self.state.seconds += 0.0 if resumed else prepare_seconds
        if self.config.select_initial and not self.state.history and not self.state.position:
            self._initial_candidate()
        end = self.config.epochs if stop_after_epochs is None else min(self.config.epochs, stop_after_epochs)
        steps, stopped_early = 0, False
        while self.state.epoch < end:
            if self._patience_spent():
                stopped_early = True
                self.log(f"no better {self.config.criterion} for {self.config.patience} epochs: stopping early")
                break
            steps, whole = self._epoch(steps, stop_after_steps)
            if not whole:
                self.trainer.module.eval()
                return self._result(False, False, prepare_seconds, steps)
        last = _cloned(self.trainer.module.state_dict()) if self.state.epoch else None
        if self.state.best is not None:
            self.trainer.module.load_state_dict(self.state.best["state"])
        self.trainer.module.eval()
        finished = stopped_early or self.state.epoch >= self.config.epochs
        result = self._result(finished, stopped_early, prepare_seconds, steps)
        result.last_state, result.last_epoch = last, self.state.epoch
        return result

    # ----------------------------------------------------------------------------------- epochs

    def _epoch(self, steps: int, stop_after_steps: int | None) -> tuple[int, bool]:
        """Train the epoch in progress to its end (then validate); False when stopped within it."""
        state, config = self.state, self.config
        if state.order is None:
            state.order = epoch_order(config.items, self.generator)
        tic = time.perf_counter()
        bar = progress_bar(config.steps_per_epoch, initial=state.position, unit=config.unit, enabled=self.progress,
                           desc=f"{config.label} epoch {state.epoch + 1}/{config.epochs}")
        running = RunningMean()
        for batch in self.trainer.batches(state.order, state.position, self.generator, state.epoch):
            parts = optimisation_step(self.trainer.module, self.optimizer, self.scheduler,
                                      lambda: self.trainer.backward(batch), config.grad_clip)
            for name, value in parts.items():
                state.sums[name] = state.sums.get(name, 0.0) + value
            state.position, steps = state.position + 1, steps + 1
            bar.update(1)
            running.add(parts["loss"])
            if state.position % 20 == 0:
                bar.set_postfix_str(f"loss {running.value:.4f}")
            if stop_after_steps is not None and steps >= stop_after_steps:
                state.seconds += time.perf_counter() - tic
                self._save()
                bar.close()
                return steps, False
            if config.checkpoint_every and state.position % config.checkpoint_every == 0 \
                    and state.position < config.steps_per_epoch:
                state.seconds += time.perf_counter() - tic
                tic = time.perf_counter()
                self._save()
        bar.close()
        self._end_epoch(tic)
        return steps, True

    def _end_epoch(self, tic: float) -> None:
        state, config = self.state, self.config
        scores = self.trainer.validate()
        seconds = time.perf_counter() - tic
        state.seconds += seconds
        row = {"epoch": state.epoch + 1, **{f"train_{k}": v / config.steps_per_epoch for k, v in state.sums.items()},
               **scores, "lr": self.scheduler.get_last_lr()[0]}
        if config.row_seconds:
            row["seconds"] = round(seconds, 2)
        state.history.append(row)
        self._consider(state.epoch + 1, scores)
        self.log(self.trainer.describe(row, seconds))
        state.epoch, state.position, state.order, state.sums = state.epoch + 1, 0, None, {}
        self._save()

    def _initial_candidate(self) -> None:
        """The untrained module as epoch 0: validated before the first step, a selection candidate."""
        scores = self.trainer.validate()
        self.state.history.append({"epoch": 0, **scores})
        self._consider(0, scores)
        self.log(f"epoch 0 (untrained): {self.config.criterion} {scores[self.config.criterion]:.4f}")
        self._save()

    def _consider(self, epoch: int, scores: dict) -> None:
        """Keep the module's state when its criterion is the best so far (the first on ties)."""
        criterion, best = self.config.criterion, self.state.best
        value = scores[criterion]
        better = best is None or (value > best[criterion] if self.config.maximize else value < best[criterion])
        if better:
            self.state.best = {"epoch": epoch, criterion: value, "state": _cloned(self.trainer.module.state_dict())}

    def _patience_spent(self) -> bool:
        """``patience`` epochs trained since the selected one (the untrained module counts as epoch 0)."""
        best, patience = self.state.best, self.config.patience
        return patience is not None and best is not None and self.state.epoch - best["epoch"] >= patience

    # ----------------------------------------------------------------------------- resume state

    def _save(self) -> None:
        if self.resume_file is None:
            return
        state = self.state
        self.resume_file.write({
            self.trainer.state_name: self.trainer.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "generator": self.generator.get_state(), "epoch": state.epoch,
            "position": state.position, "order": state.order, "sums": state.sums, "history": state.history,
            "best": state.best, "seconds": state.seconds})

    def _restore(self) -> None:
        saved = self.resume_file.read()
        self.trainer.module.load_state_dict(saved[self.trainer.state_name])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.generator.set_state(saved["generator"])
        # files of trainers that saved at epoch ends only have no position, order or sums
        self.state = LoopState(saved["epoch"], saved.get("position", 0), saved.get("order"), dict(saved.get("sums") or {}),
                               saved["history"], saved["best"], saved["seconds"])
        where = (f"after epoch {self.state.epoch}" if not self.state.position
                 else f"at epoch {self.state.epoch + 1}, step {self.state.position}")
        self.log(f"resumed from {self.resume_file.path} {where}")

    def _result(self, finished: bool, stopped_early: bool, prepare_seconds: float, steps: int) -> LoopResult:
        state = self.state
        return LoopResult(state.history, state.best, finished, stopped_early, state.seconds, prepare_seconds, steps)


def _cloned(state: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in state.items()}
