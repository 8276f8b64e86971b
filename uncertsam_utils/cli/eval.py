"""``uncertsam eval``: evaluate uncertainty methods on benchmark splits (one CSV per dataset and method).

Example::

    uncertsam eval --datasets COIFT BIG --method baseline prompt tta --out results/eval
    uncertsam eval --data /data/UncertSAMBenchmark --model large --method laplace varnet combined-product \\
        --posterior laplace.pt --head varnet.pt --out results/paper

Rerunning the same command resumes an interrupted run and leaves finished CSVs untouched.

Several processes (one per GPU, or CPU workers), byte-identical CSVs for any number::

    torchrun --standalone --nproc-per-node 4 --no-python uncertsam eval --device cuda ... --out results/paper

(``gloo`` on the CPU, ``nccl`` on CUDA with ``cuda:LOCAL_RANK`` per rank; several nodes through
torchrun's rendezvous options, with ``--out`` on a shared file system; see ``uncertsam_utils.distributed``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import UserError, add_command, user_errors


def _data(args, main: bool = True) -> tuple[Path, list[str]]:
    """The benchmark root (UncertSAM-mini when --data is left out) and the datasets to evaluate."""
    from ..data.layout import DATASETS, list_datasets

    if args.data is None:
        from ..data.mini import ensure_mini

        data = ensure_mini()
        if main:
            print(f"data: UncertSAM-mini at {data}")
    else:
        data = Path(args.data)
        if not data.is_dir():
            raise UserError(f"data folder {data} does not exist")
    present = list_datasets(data)
    datasets = args.datasets or [d for d in DATASETS if d in present] or present
    missing = [d for d in datasets if d not in present]
    if missing:
        raise UserError(f"dataset(s) {missing} not found under {data} (present: {present})")
    return data, datasets


def _identity(args, loaded, fusion: dict[str, str]) -> dict:
    """What the CSVs were computed with: the model and the SHA-256 of each fitted file."""
    from ..model.checkpoints import sha256_of

    identity = {"model": loaded.identity(), "model_seed": loaded.seed if loaded.random_weights else None}
    files = [("posterior", args.posterior), ("posterior_paper", args.posterior_paper), ("head", args.head)]
    files += [(f"fusion_{name}", path) for name, path in sorted(fusion.items())]
    for key, path in files:
        if path is not None:
            identity[key] = sha256_of(Path(path))
    return identity


def _run(args) -> int:
    """Evaluate methods under the paper's GT-box protocol; one CSV per dataset and method with one
    row per mask (the paper's 28 metric columns plus Spearman, AUROC, AUPR, AUSE) and the counts of
    what was read, scored and skipped (counts.json). Resumable: rerun the same command after an
    interruption. Under torchrun each process evaluates its share of the images; rank 0 writes the CSVs."""
    from .. import distributed

    with user_errors(ValueError):
        where, device = distributed.init(args.device)
    try:
        return _evaluate(args, where, device)
    finally:
        distributed.shutdown()


def _threads(args, where) -> int:
    """The metrics of one image run in a worker thread while the next image is predicted: by default
    torch gets the remaining cores of this process's share of the machine (one on a two-core machine)."""
    if args.threads:
        return args.threads
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if where.distributed else 1
    return max(1, (os.cpu_count() or 1) // local - args.metric_workers)


def _evaluate(args, where, device) -> int:
    import torch

    from ..evaluation import EvaluationMismatch, build_methods, evaluate_datasets
    from ..model import Predictor, load_model

    torch.set_num_threads(_threads(args, where))
    data, datasets = _data(args, where.main)
    with user_errors(FileNotFoundError, KeyError, ValueError):
        loaded = load_model(args.model, args.checkpoint, device=device, seed=args.model_seed)
    if loaded.random_weights and where.main:
        print(f"warning: {loaded.label}")
    with user_errors(KeyError, ValueError, TypeError, FileNotFoundError):  # incl. a posterior/head of another model
        posterior = {"laplace": args.posterior, "laplace-paper": args.posterior_paper or args.posterior}
        fusion = _fusion_files(args.fusion)
        methods = build_methods(args.method, loaded, T=args.T, K=args.K, posterior=posterior, head=args.head,
                                components=args.components, fusion=fusion)
    identity = _identity(args, loaded, fusion)
    predictor = Predictor(loaded.model)
    if where.distributed and where.main:
        print(f"{where.world_size} processes ({'nccl' if device.startswith('cuda') else 'gloo'})")
    with user_errors(EvaluationMismatch):
        paths = evaluate_datasets(predictor, methods, data, datasets, args.out, split=args.split, seed=args.seed,
                                  max_images=args.max_images, progress=not args.quiet, identity=identity,
                                  metric_workers=args.metric_workers)
    if where.main:
        for (dataset, method), path in sorted(paths.items()):
            print(f"{dataset:<12} {method:<18} {path}")
    return 0


def _run_job(args) -> int:
    """Run a saved evaluation (what a notebook's evaluate_cached starts under torchrun with
    UNCERTSAM_EVAL_NPROC > 1): this process's share of it."""
    from ..evaluation.jobs import run_job

    run_job(Path(args.job), progress=not args.quiet)
    return 0


def _fusion_files(pairs) -> dict[str, str]:
    out = {}
    for pair in pairs or ():
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--fusion takes METHOD=FILE (e.g. fusion-laplace=fusion.pt), got {pair!r}")
        out[name] = path
    return out


def _add_method_arguments(parser) -> None:
    parser.add_argument("--method", nargs="+", required=True, metavar="NAME",
                        help="methods: baseline, tta, prompt, laplace, laplace-paper, varnet, combined-rank, "
                             "combined-product; refinement: mask-prompt, fusion-laplace, fusion-ones, fusion-entropy, "
                             "gt-mask-prompt")
    parser.add_argument("--components", nargs="+", default=None, metavar="NAME",
                        help="components of the combined-* methods (default: each combination's own)")
    parser.add_argument("--model", default="nano", help="model registry name (default: nano)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file ('random': seeded random weights)")
    parser.add_argument("--model-seed", type=int, default=0, help="init seed of random weights (default 0)")
    parser.add_argument("--posterior", default=None,
                        help="fitted Laplace posterior file (`uncertsam fit laplace`) for laplace (and laplace-paper)")
    parser.add_argument("--posterior-paper", default=None,
                        help="posterior for laplace-paper when it differs (e.g. a --recipe paper fit)")
    parser.add_argument("--head", default=None, help="trained variance head file (varnet)")
    parser.add_argument("--fusion", nargs="+", default=None, metavar="METHOD=FILE",
                        help="trained fusion modules of the fusion-* refinement variants (`uncertsam train fusion`), "
                             "e.g. fusion-laplace=la.pt fusion-ones=ones.pt")
    parser.add_argument("--T", type=int, default=10, help="TTA copies (default 10)")
    parser.add_argument("--K", type=int, default=10, help="prompt perturbations (default 10)")


def register(subparsers) -> None:
    parser = add_command(subparsers, "eval", _run, "evaluate uncertainty methods: per-mask metric CSVs (resumable)")
    parser.add_argument("--data", default=None,
                        help="benchmark root in the published layout (default: the generated UncertSAM-mini)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="datasets to evaluate (default: every dataset under --data)")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    _add_method_arguments(parser)
    parser.add_argument("--seed", type=int, default=42, help="evaluation seed (default 42, the paper's)")
    parser.add_argument("--max-images", type=int, default=None, help="first N images of each dataset (by id)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: the cores left after the metric workers, at least 1)")
    parser.add_argument("--metric-workers", type=int, default=1,
                        help="threads computing metrics while the next image is predicted (0: none; default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", required=True, type=Path, help="output folder (CSV files and evaluation.json)")
    job = add_command(subparsers, "eval-job", _run_job, "run a saved evaluation job (notebooks start it under torchrun)")
    job.add_argument("job", help="job file written by evaluation.jobs.save_job (<out>/.job.pt)")
    job.add_argument("--quiet", action="store_true", help="no progress bars")
