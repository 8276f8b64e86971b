"""The one training loop (uncertsam_utils/training): selection, resuming, seeded sampling and the hooks
issue 18 turns on (the untrained module as epoch 0, early stopping), on a small regression problem."""

from dataclasses import dataclass, field

import pytest
import torch

from uncertsam_utils.training import (EpochLoop, LoopConfig, ResumeFile, adamw_with_schedule, epoch_order, stream,
                                      warmup_constant_decay)

TAG = 0x74657374  # "test"


@dataclass
class LineTrainer:
    """Fits y = 2x - 1 + noise with a 1-d linear module; every batch draws noise from the run's generator."""

    module: torch.nn.Module = field(default_factory=lambda: torch.nn.Linear(1, 1))
    items: int = 12
    per_step: int = 3
    start: tuple = (-1.0, 0.5)  # initial weight and bias; (2, -1) is the validation optimum
    state_name = "line"
    prepared: int = 0

    def __post_init__(self):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.linspace(-1, 1, self.items)[:, None]
        self.y = 2 * self.x - 1 + 0.1 * torch.randn(self.items, 1, generator=generator)
        with torch.no_grad():
            self.module.weight.fill_(self.start[0])
            self.module.bias.fill_(self.start[1])

    def prepare(self):
        self.prepared += 1

    def batches(self, order, start, generator, epoch):
        for step in range(start, len(order) // self.per_step):
            rows = order[step * self.per_step:(step + 1) * self.per_step]
            yield rows, 0.01 * torch.randn(len(rows), 1, generator=generator)

    def backward(self, batch):
        rows, noise = batch
        loss = ((self.module(self.x[rows]) - self.y[rows] + noise) ** 2).mean()
        loss.backward()
        return {"loss": float(loss.detach()), "rows": float(len(rows))}

    def validate(self):
        with torch.no_grad():
            return {"val_loss": float(((self.module(self.x) - 2 * self.x + 1) ** 2).mean())}

    def describe(self, row, seconds):
        return f"epoch {row['epoch']}: {row['val_loss']:.4f}"


def run(tmp_path=None, *, epochs=4, lr=0.05, key=None, resume=False, stop_after_steps=None, trainer=None, **loop_options):
    trainer = trainer or LineTrainer()
    steps = trainer.items // trainer.per_step
    optimizer, scheduler = adamw_with_schedule(trainer.module, lr=lr, weight_decay=0.01,
                                               lr_factor=lambda step: warmup_constant_decay(step, epochs * steps, 0.1, 0.2))
    config = LoopConfig(epochs=epochs, items=trainer.items, steps_per_epoch=steps, grad_clip=1.0, stream_tag=TAG,
                        **loop_options)
    resume_file = None if tmp_path is None else ResumeFile.beside(tmp_path / "line.pt", key or {"run": 1})
    loop = EpochLoop(trainer, optimizer, scheduler, config, seed=0, resume_file=resume_file, progress=False,
                     log=lambda _: None)
    return loop.run(resume=resume, stop_after_steps=stop_after_steps), trainer


def test_history_rows_average_the_steps_and_the_lowest_validation_loss_is_kept():
    result, trainer = run(epochs=5, lr=0.3)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 5]
    assert all(row["train_rows"] == 3.0 for row in result.history)  # the mean over an epoch's 4 steps
    losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == 1 + losses.index(min(losses)) and result.finished and not trainer.module.training
    assert trainer.validate()["val_loss"] == min(losses)  # the selected state is restored
    assert trainer.prepared == 1


@pytest.mark.parametrize("stop", [1, 4, 6, 8])  # within an epoch, at its very end (before validation), later
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, stop):
    whole, whole_trainer = run(checkpoint_every=3)
    stopped, _ = run(tmp_path, checkpoint_every=3, stop_after_steps=stop)
    assert not stopped.finished and ResumeFile.beside(tmp_path / "line.pt", {"run": 1}).exists()
    resumed, trainer = run(tmp_path, checkpoint_every=3, resume=True)
    assert resumed.history == whole.history and resumed.best_epoch == whole.best_epoch
    for name, value in whole_trainer.module.state_dict().items():
        assert torch.equal(value, trainer.module.state_dict()[name]), name
    with pytest.raises(ValueError, match="different run"):
        run(tmp_path, checkpoint_every=3, resume=True, key={"run": 2})


def test_every_epoch_draws_a_fresh_permutation_from_the_tagged_stream():
    generator = stream(0, TAG)
    orders = [epoch_order(12, generator) for _ in range(2)]
    assert sorted(orders[0].tolist()) == list(range(12)) and not torch.equal(orders[0], orders[1])
    assert not torch.equal(epoch_order(12, stream(0, TAG + 1)), epoch_order(12, stream(0, TAG)))


OPTIMUM = (2.0, -1.0)  # the untrained module is already the best: training on noisy targets can only lose


def test_the_untrained_module_is_a_candidate_only_when_asked():
    plain, _ = run(trainer=LineTrainer(start=OPTIMUM))
    assert [row["epoch"] for row in plain.history] == [1, 2, 3, 4] and plain.best_epoch >= 1
    initial, trainer = run(trainer=LineTrainer(start=OPTIMUM), select_initial=True)
    untrained = LineTrainer(start=OPTIMUM).validate()  # float32 rounding: about 1e-15, not 0
    assert initial.history[0] == {"epoch": 0, **untrained} and initial.history[1:] == plain.history
    assert untrained["val_loss"] < min(row["val_loss"] for row in plain.history)
    assert initial.best_epoch == 0 and trainer.validate() == untrained  # the untrained state is restored


def test_patience_stops_after_epochs_without_a_better_criterion():
    full, _ = run(epochs=6, trainer=LineTrainer(start=OPTIMUM), select_initial=True)
    early, _ = run(epochs=6, trainer=LineTrainer(start=OPTIMUM), select_initial=True, patience=2)
    assert early.stopped_early and early.finished and not full.stopped_early
    assert early.history == full.history[:3]  # epoch 0 the best, then 2 epochs without improvement
    assert early.best_epoch == 0


class ScoreTrainer(LineTrainer):
    """The same problem, validated by a score to maximise (the negated loss) as the fusion modules' mIoU."""

    def validate(self):
        return {"val_score": -super().validate()["val_loss"]}

    def describe(self, row, seconds):
        return f"epoch {row['epoch']}: {row['val_score']:.4f}"


def test_a_maximised_criterion_selects_the_same_epochs_as_its_negated_loss():
    by_loss, _ = run(epochs=5, lr=0.3)
    by_score, trainer = run(epochs=5, lr=0.3, trainer=ScoreTrainer(), criterion="val_score", maximize=True)
    assert by_score.best_epoch == by_loss.best_epoch
    assert trainer.validate()["val_score"] == max(row["val_score"] for row in by_score.history)
    untrained, _ = run(trainer=ScoreTrainer(start=OPTIMUM), criterion="val_score", maximize=True, select_initial=True,
                       patience=2)
    assert untrained.best_epoch == 0 and untrained.stopped_early


class TiedTrainer(LineTrainer):
    """Every epoch scores the same: selection must keep the earliest candidate."""

    def validate(self):
        return {"val_loss": 1.0}


@pytest.mark.parametrize("maximize", [False, True])
def test_ties_keep_the_earlier_epoch(maximize):
    result, _ = run(trainer=TiedTrainer(), maximize=maximize, select_initial=True)
    assert result.best_epoch == 0
    result, _ = run(trainer=TiedTrainer(), maximize=maximize)
    assert result.best_epoch == 1


def test_the_last_trained_state_is_returned_beside_the_selected_one(tmp_path):
    result, trainer = run(epochs=6, trainer=LineTrainer(start=OPTIMUM), select_initial=True, patience=2)
    assert result.best_epoch == 0 and result.last_epoch == 2
    selected = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    assert torch.equal(selected["weight"], torch.tensor([[OPTIMUM[0]]]))
    assert not torch.equal(result.last_state["weight"], selected["weight"])  # training moved it, selection did not keep it
    trainer.module.load_state_dict(result.last_state)
    assert trainer.validate()["val_loss"] == result.history[-1]["val_loss"]  # the state of the last history row
    stopped, _ = run(tmp_path, epochs=6, trainer=LineTrainer(start=OPTIMUM), select_initial=True, patience=2,
                     stop_after_steps=5)
    resumed, _ = run(tmp_path, epochs=6, trainer=LineTrainer(start=OPTIMUM), select_initial=True, patience=2,
                     resume=True)
    assert resumed.last_epoch == 2 and torch.equal(resumed.last_state["weight"], result.last_state["weight"])
    untouched, _ = run(epochs=0, trainer=LineTrainer())
    assert untouched.last_state is None and untouched.last_epoch == 0
