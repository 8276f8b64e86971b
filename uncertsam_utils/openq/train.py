"""Training one arm of notebook 09 on the shared pool, and the refinement function of a trained arm.

Post-hoc arms train through the fusion modules' own trainer (``refine.training.FusionTrainer``) on the
pool's views; end-to-end arms through ``refine.end_to_end.EndToEndTrainer``; both in the package's one
loop (``training.EpochLoop``) with the untrained module as epoch 0, selection on the fit/val mIoU and no
early stopping. Leave-one-domain-out arms are not validated (only their last epoch is reported: the
question is what training on shifted domains does to a domain it has not seen).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .arms import Arm
from .pool import _ARM_TAG, TrainingPool

NOT_VALIDATED = {"val_loss": math.nan, "val_miou": math.nan, "val_miou_first": math.nan}


@dataclass
class ArmResult:
    arm: Arm
    history: list[dict]  # one row per validated epoch (0: untrained), without per-mask lists
    best_epoch: int  # 0: fit/val kept the untrained module
    selected: dict | None  # state of the selected module (None when it is the untrained one)
    last: dict  # state after the last epoch
    cpu_seconds: float


def build_module(pool_or_loaded, arm: Arm, posterior=None, *, seed: int | None = None):
    """The untrained module of an arm (exact init): a fusion module, or an end-to-end refiner."""
    from ..refine.end_to_end import EndToEndRefiner
    from ..refine.fusion import embed_dim_of
    from ..refine.spatial import make_fusion

    loaded = getattr(pool_or_loaded, "loaded", pool_or_loaded)
    if arm.kind == "end-to-end":
        map_name = "entropy" if arm.map == "laplace" else "ones"
        return EndToEndRefiner(loaded.model, posterior, map_name=map_name, seed=arm.seed if seed is None else seed)
    return make_fusion(arm.architecture, embed_dim_of(loaded.model), seed=arm.seed if seed is None else seed)


def _loop_parts(pool: TrainingPool, arm: Arm, module, subset):
    """(trainer, optimizer, scheduler) of an arm."""
    from ..refine.end_to_end import EndToEndTrainer, end_to_end_optimizer
    from ..refine.training import FusionTrainer
    from ..training import adamw_with_schedule, warmup_constant_decay

    recipe = pool.recipe
    config = recipe.fusion_config(arm.map)
    total = config.epochs * len(subset)

    def factor(step: int) -> float:
        return warmup_constant_decay(step, total, config.warmup_fraction, config.decay_fraction)

    if arm.kind == "end-to-end":
        inputs = pool.inputs
        trainer = EndToEndTrainer(module, inputs.predictor, inputs.train_data, inputs.train_features, subset,
                                  inputs.val_data, inputs.val_features, config, arm.seed)
        optimizer, scheduler = end_to_end_optimizer(module, lr=recipe.lr, decoder_lr=recipe.decoder_lr,
                                                    weight_decay=config.weight_decay, lr_factor=factor)
    else:
        inputs, bank, _ = pool.views(arm)
        trainer = FusionTrainer(module, pool.inputs.posterior, inputs, config, bank, arm.seed)
        optimizer, scheduler = adamw_with_schedule(module, lr=recipe.lr, weight_decay=config.weight_decay,
                                                   lr_factor=factor)
    if arm.data == "lodo":
        trainer.validate = lambda: dict(NOT_VALIDATED)
    return trainer, optimizer, scheduler


def train_arm(pool: TrainingPool, arm: Arm, *, progress: bool = False, log=print) -> ArmResult:
    """Train one arm for ``pool.recipe.epochs`` epochs (the model itself frozen)."""
    from ..refine.training import frozen
    from ..training import EpochLoop, LoopConfig

    tic = time.process_time()
    model = pool.loaded.model.eval()
    subset = pool.subset(arm)
    with frozen(model):
        module = build_module(pool, arm, pool.inputs.posterior).train()
        trainer, optimizer, scheduler = _loop_parts(pool, arm, module, subset)
        config = LoopConfig(epochs=pool.recipe.epochs, items=len(subset), steps_per_epoch=len(subset),
                            grad_clip=trainer.config.grad_clip, stream_tag=_ARM_TAG, label=arm.label, unit="img",
                            criterion="val_miou", maximize=True, select_initial=True, patience=None)
        result = EpochLoop(trainer, optimizer, scheduler, config, seed=arm.seed, progress=progress,
                           log=lambda _line: None).run()
    history = [{k: v for k, v in row.items() if k != "val_ious"} for row in result.history]
    best = 0 if arm.data == "lodo" else result.best_epoch
    selected = None if best == 0 else {k: v.clone() for k, v in module.state_dict().items()}
    out = ArmResult(arm, history, best, selected, result.last_state, time.process_time() - tic)
    log(f"{arm.label}: {len(history) - 1} epoch(s), fit/val mIoU "
        + " -> ".join(f"{row['val_miou']:.4f}" for row in history) + f", selected epoch {best}, "
        f"{out.cpu_seconds:.0f} CPU s")
    return out


def refiner(module, arm: Arm, predictor):
    """The refinement function of a module (``BankImage`` → refined logits) for ``EvaluationBank.score``."""
    from ..refine.passes import second_pass
    from . import maps as arm_maps

    module = module.eval()
    if arm.kind == "end-to-end":
        own = module.predictor(predictor)

        def end_to_end(image):
            points, labels = image.prompt
            return module.passes(own, image.encoding, points=points, labels=labels).logits

        return end_to_end

    def post_hoc(image):
        points, labels = image.prompt
        first = image.passes["laplace"]
        fed = arm_maps.fed_map(arm.map, first.entropy, image.maps.get("prompt"))
        return second_pass(predictor, image.encoding, module, first.logits, fed, points=points, labels=labels).logits

    return post_hoc


def load_state(pool_or_loaded, arm: Arm, state: dict, posterior=None):
    """An arm's module with a saved state."""
    module = build_module(pool_or_loaded, arm, posterior)
    module.load_state_dict(state)
    return module.eval()


__all__ = ["ArmResult", "build_module", "load_state", "refiner", "train_arm"]
