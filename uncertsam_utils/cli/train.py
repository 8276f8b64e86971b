"""``uncertsam train ...``: train the project's own models.

One subcommand per model, each added by a ``_add_*`` function listed in ``SUBCOMMANDS``. Handlers
import torch and the training code lazily, so ``uncertsam --help`` stays fast.

* ``uncertsam train nano --data DIR --out FILE [--seed 0] [--steps N] [--resume]``: the nano SAM-2
  on ``DIR/fit/train`` (default DIR: the UncertSAM-mini cache, generated if missing).
* ``uncertsam train nano-card [--data DIR] [--checkpoint FILE]``: evaluate it box-only on the fit
  test split and on every test domain; writes ``tables/nano_sam2_card.{md,csv}``.
* ``uncertsam train varnet --data DIR --model NAME [--checkpoint FILE] --out FILE [--epochs N]
  [--seed 0] [--resume]``: the variance network's head on ``DIR/fit/train`` (SAM-2 frozen),
  selected on ``DIR/fit/val``.
* ``uncertsam train fusion --data DIR --uncertainty laplace|ones|entropy [--posterior FILE] --out FILE
  [--epochs 5] [--regime box|click] [--select miou|loss] [--patience 2] [--images N] [--seed 0] [--resume]``:
  a dense-fusion refinement module (SAM-2 frozen).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from .common import UserError, add_command, add_group, flags, set_threads, sleep_idle_threads, user_errors


def _data_root(args) -> Path:
    if args.data is None:
        from ..data.mini import ensure_mini

        return ensure_mini(seed=args.data_seed)
    root = Path(args.data).expanduser()
    if not (root / "fit").is_dir():
        raise UserError(f"{root} has no fit/ folder; pass a UncertSAM-mini root (e.g. the output of "
                        "`uncertsam data mini`) or leave out --data to use the default one")
    return root


def _check_out(args, out: Path, resume_file: Path) -> None:
    """Refuse to overwrite a finished file or to start over on an interrupted run's resume state."""
    if out.exists() and not args.resume and not args.force:
        raise UserError(f"{out} exists; pass --force to overwrite it")
    if not args.resume and resume_file.exists():
        raise UserError(f"{resume_file} exists from an interrupted run; pass --resume to continue it "
                        "or delete it to start over")
    if args.resume and not resume_file.exists() and out.exists():
        raise UserError(f"nothing to resume: {out} is complete (no {resume_file.name}); "
                        "pass --force without --resume to train it again")


def _output(args, resume_path, at_least_one: tuple[str, ...]) -> Path:
    """``--out``, after checking the counts that must be positive and what lies at ``--out`` already."""
    out = Path(args.out).expanduser()
    for name in at_least_one:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name} must be at least 1")
    _check_out(args, out, resume_path(out))
    return out


def _nano_command(args, root: Path, out: Path) -> str:
    """The canonical command that reproduces this run (recorded in the weights' JSON)."""
    data = ["--data", str(root)] if args.data is not None else (["--data-seed", str(args.data_seed)] if args.data_seed else [])
    parts = ["uncertsam", "train", "nano", *data, "--out", str(out),
             "--seed", str(args.seed), "--steps", str(args.steps), "--threads", str(args.threads)]
    return shlex.join(parts)


def _nano(args) -> int:
    """Train the nano SAM-2 (configs/nano_sam2_256.yaml) from scratch on <data>/fit/train with box
    (and sometimes point) prompts and the dense-box curriculum. Deterministic: the same command,
    seed and thread count give the same weights. Writes --out ({'model': state_dict}) and --out with
    .json (SHA-256, seed, steps, time, command, data); checkpoints to <out>.resume.pt."""
    sleep_idle_threads()
    from ..model.nano import DEFAULT_STEPS, resume_path, train_from_root

    if args.steps is None:
        args.steps = DEFAULT_STEPS
    if args.steps < 1:
        raise UserError("--steps must be at least 1")
    if args.threads < 1:
        raise UserError("--threads must be at least 1")
    out = Path(args.out).expanduser()
    if out.suffix != ".pt":
        raise UserError(f"--out must name a .pt file, got {out}")
    _check_out(args, out, resume_path(out))
    root = _data_root(args)
    with user_errors(ValueError):  # a resume file of another run, unreadable data
        result = train_from_root(root, out, seed=args.seed, steps=args.steps, resume=args.resume,
                                 command=_nano_command(args, root, out), progress=not args.quiet,
                                 threads=args.threads)
    record = result.record
    print(f"{out}: {record['steps']} steps in {record['train_seconds'] / 60:.1f} min "
          f"({record['seconds_per_step']} s/step); final val mIoU "
          f"{record['validation'][-1]['miou']:.4f}" if record["validation"] else f"{out} written")
    return 0


def _nano_card(args) -> int:
    """Box-only mIoU / mBIoU of the nano SAM-2 on <data>/fit/test and every test domain's test
    split."""
    from ..model.nano.card import nano_card

    root = _data_root(args)
    with user_errors(FileNotFoundError, ValueError):
        md, rows = nano_card(root, args.checkpoint, out_dir=args.out_dir, progress=not args.quiet)
    for row in rows:
        print(f"  {row['dataset']:<28} {row['masks']:>5} masks  mIoU {row['miou']:.4f}  mBIoU {row['mbiou']:.4f}")
    print(md)
    return 0


def _varnet_command(args, root: Path, out: Path) -> str:
    """The canonical command that reproduces this run (recorded in the head file)."""
    parts = ["uncertsam", "train", "varnet", "--data", str(root), "--model", args.model, "--out", str(out),
             "--seed", str(args.seed), "--threads", str(args.threads), *flags(args, "checkpoint", "epochs")]
    return shlex.join(parts)


def _varnet(args) -> int:
    """Train the variance network's head (paper §3.4) on <data>/fit/train with jittered box prompts,
    keeping the epoch with the lowest loss on <data>/fit/val. SAM-2 stays frozen; --out holds only
    the head and the identity of the model it belongs to. Checkpoints to <out>.resume.pt."""
    sleep_idle_threads()
    from ..uq.varnet.training import resume_path, train_from_root

    out = _output(args, resume_path, at_least_one=("epochs",))
    set_threads(args.threads)
    root = _data_root(args)
    with user_errors(FileNotFoundError, ValueError):  # missing weights, another run's resume file, bad data
        result = train_from_root(root, out, model=args.model, checkpoint=args.checkpoint, epochs=args.epochs,
                                 seed=args.seed, resume=args.resume, device=args.device, progress=not args.quiet,
                                 command=_varnet_command(args, root, out))
    record = result.record
    print(f"{out}: best epoch {result.best_epoch} of {len(result.history)}, val loss {record['best_val_loss']:.4f}, "
          f"val Pearson(s, |y-p|) {record['best_val_pearson']:.3f}; {record['train_seconds'] / 60:.1f} min")
    return 0


FUSION_MAPS = ("laplace", "ones", "entropy")  # refine.passes.UNCERTAINTY_SOURCES (not imported: --help stays fast)


def _fusion_command(args, root: Path, out: Path) -> str:
    parts = ["uncertsam", "train", "fusion", "--data", str(root), "--uncertainty", args.uncertainty,
             "--model", args.model, "--out", str(out), "--seed", str(args.seed), "--threads", str(args.threads),
             "--epochs", str(args.epochs), "--regime", args.regime, "--select", args.select, "--patience",
             str(args.patience), "--init", args.init, *flags(args, "checkpoint", "posterior", "images")]
    return shlex.join(parts)


def _fusion(args) -> int:
    """Train the dense embedding fusion module (paper §5) on <data>/fit/train under the evaluation prompt
    (--regime box, default: the jittered box, first passes computed once) or the paper's iterative
    prompts (--regime click: box or click, then one click per step), loss 20 focal + dice + IoU L1,
    keeping the epoch (the untrained module is epoch 0) with the highest <data>/fit/val mIoU (--select
    miou; loss: the lowest loss) under the evaluation prompt, stopping after --patience epochs without
    a better one. --uncertainty
    laplace: Laplace first pass and its entropy map; ones: Laplace first pass and a map of ones (the
    ablation); entropy: SAM-2 first pass and its entropy. Checkpoints to <out>.resume.pt."""
    sleep_idle_threads()
    from ..model import load_model
    from ..refine.training import FusionTrainConfig, load_training_data, resume_path, train_fusion

    out = _output(args, resume_path, at_least_one=("epochs",))
    options = {"uncertainty": args.uncertainty, "epochs": args.epochs, "init": args.init, "select": args.select,
               "patience": args.patience if args.patience > 0 else None}
    config = FusionTrainConfig.click_regime(**options) if args.regime == "click" else FusionTrainConfig(**options)
    set_threads(args.threads)
    root = _data_root(args)
    with user_errors(FileNotFoundError, ValueError):  # missing weights, another model's posterior, bad data
        loaded = load_model(args.model, args.checkpoint, device=args.device)
        posterior = None
        if config.first_pass == "laplace":
            if args.posterior is None:
                raise UserError(f"--uncertainty {args.uncertainty} has a Laplace first pass: pass --posterior FILE "
                                "(from `uncertsam fit laplace`)")
            from ..uq.laplace import LastLayerPosterior

            posterior = LastLayerPosterior.load(args.posterior, loaded)
        train_data, val_data = load_training_data(root, loaded.image_size, limit=args.images,
                                                  val_images=config.val_images, progress=not args.quiet)
        result = train_fusion(loaded, train_data, val_data, config=config, posterior=posterior, out=out, seed=args.seed,
                              resume=args.resume, progress=not args.quiet,
                              extra_record={"command": _fusion_command(args, root, out)})
    best = next(row for row in result.history if row["epoch"] == result.best_epoch)
    kept = "the untrained module (fit/val found no gain)" if result.best_epoch == 0 else f"epoch {result.best_epoch}"
    print(f"{out}: kept {kept} of epochs 0-{result.record['last_epoch']}, val mIoU first pass "
          f"{best['val_miou_first']:.4f} -> refined {best['val_miou']:.4f}; "
          f"{result.record['train_seconds'] / 60:.1f} min")
    return 0


# ------------------------------------------------------------------------------ the parsers
def _add_data_arguments(parser) -> None:
    parser.add_argument("--data", default=None,
                        help="a UncertSAM-mini root containing fit/ (default: the cached benchmark, generated if missing)")
    parser.add_argument("--data-seed", type=int, default=0, help="generator seed of the default benchmark (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_run_arguments(parser, seed_help: str, threads_help: str) -> None:
    """The seed, threads, device, resume and force options of the head trainers."""
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--threads", type=int, default=1, help=threads_help)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resume", action="store_true", help="continue from <out>.resume.pt")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")


def _add_nano(models) -> None:
    parser = add_command(models, "nano", _nano, "train the nano SAM-2 from scratch on the UncertSAM-mini fit set")
    parser.add_argument("--out", required=True, help="output weights (.pt); the shipped file is "
                        "uncertsam_utils/model/weights/nano_sam2_256.pt")
    _add_data_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="model-init and data-sampling seed (default 0)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the shipped recipe's)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as the shipped "
                        "weights were trained; results are bit-identical only for the same thread count)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>.resume.pt")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")


def _add_nano_card(models) -> None:
    parser = add_command(models, "nano-card", _nano_card,
                         "evaluate the nano SAM-2 box-only and write tables/nano_sam2_card.{md,csv}")
    _add_data_arguments(parser)
    parser.add_argument("--checkpoint", default=None, help="weights to evaluate (default: the shipped nano weights)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where to write the card (default: tables/)")


def _add_varnet(models) -> None:
    parser = add_command(models, "varnet", _varnet, "train the variance network's head (SAM-2 frozen) on a fit set")
    parser.add_argument("--out", required=True, help="the head file to write (.pt)")
    _add_data_arguments(parser)
    parser.add_argument("--model", default="nano", help="registry name (default: nano)")
    parser.add_argument("--checkpoint", default=None, help="model weights (default: the model's own; 'random' for tests)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's, VarnetTrainConfig)")
    _add_run_arguments(parser, "head-init and sampling seed (default 0)",
                       "torch CPU threads (default 1: the steps are small, and on a shared machine a second "
                       "thread makes them several times slower; 0: torch's default)")


def _add_fusion(models) -> None:
    parser = add_command(models, "fusion", _fusion, "train a dense-fusion refinement module (SAM-2 frozen) on a fit set")
    parser.add_argument("--out", required=True, help="the fusion file to write (.pt)")
    _add_data_arguments(parser)
    parser.add_argument("--uncertainty", required=True, choices=FUSION_MAPS)
    parser.add_argument("--model", default="nano", help="registry name (default: nano)")
    parser.add_argument("--checkpoint", default=None, help="model weights (default: the model's own; 'random' for tests)")
    parser.add_argument("--posterior", default=None, help="fitted Laplace posterior (laplace and ones)")
    parser.add_argument("--epochs", type=int, default=5, help="at most this many epochs (default 5, the paper's)")
    parser.add_argument("--images", type=int, default=None, help="first N images of fit/train (default: all)")
    parser.add_argument("--regime", default="box", choices=["box", "click"],
                        help="box: the evaluation prompt, one jittered box per object (default); click: the paper's 8 "
                             "iterative steps starting with the box or a click")
    parser.add_argument("--select", default="miou", choices=["miou", "loss"],
                        help="keep the epoch with the highest fit/val mIoU (default) or the lowest loss (the paper's)")
    parser.add_argument("--patience", type=int, default=2,
                        help="stop after this many epochs without a better fit/val score (default 2; 0: never)")
    parser.add_argument("--init", default="exact", choices=["exact", "paper"],
                        help="exact: start at mask-prompt refinement (default); paper: PyTorch's default init")
    _add_run_arguments(parser, "init and sampling seed (default 0)", "torch CPU threads (default 1; 0: torch's default)")


# Each entry adds one ``uncertsam train <model>`` subcommand.
SUBCOMMANDS = [_add_nano, _add_nano_card, _add_varnet, _add_fusion]


def register(subparsers) -> None:
    models = add_group(subparsers, "train", "train the project's own models (nano SAM-2, ...)", "model", "MODEL")
    for add in SUBCOMMANDS:
        add(models)
