"""``uncertsam fit ...``: fit the post-hoc parts of UQ methods on a fitting split.

* ``uncertsam fit laplace [--data DIR] --model NAME [--checkpoint FILE] --recipe tempered|untempered|paper
  [--structure diag|kron|full] [--prior marglik|gridsearch|fixed] --out FILE``: the last-layer
  Laplace posterior of SAM-2's treated layer (``uq/laplace/``). The file holds only
  that posterior (laplace-torch's ``state_dict`` and what rebuilds it) and the identity of the
  model it was fitted on; loading it for another model is an error. ``--data`` is a split folder
  (``.../<dataset>/<split>`` with ``images/`` and ``annotations/``) or a root holding
  ``<dataset>/<split>`` (``--dataset fit --split train`` by default); without ``--data``, the
  UncertSAM-mini fit split (generated on first use). One pass, seeded; the caller caches the file.

Handlers import torch and laplace-torch lazily, so ``uncertsam --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

from .common import UserError, add_command, add_group, set_threads, sleep_idle_threads, user_errors


def open_split(data: str | Path | None, dataset: str = "fit", split: str = "train", *, image_size: int | None = None,
               data_seed: int = 0):
    """A ``SplitReader`` for ``data`` (a split folder, or a root with ``dataset/split``; None: UncertSAM-mini)."""
    from ..data.layout import SplitReader

    if data is None:
        from ..data.mini import ensure_mini

        root = ensure_mini(seed=data_seed)
    else:
        path = Path(data).expanduser()
        if _is_split(path):
            return SplitReader(path.parent.parent, path.parent.name, path.name, resize_check_size=image_size)
        root = path
    return SplitReader(root, dataset, split, resize_check_size=image_size)


def _is_split(data) -> bool:
    return (Path(data).expanduser() / "images").is_dir()


def _laplace(args) -> int:
    """Fit the last-layer Laplace posterior (laplace-torch, closed-form curvature) of the last
    Linear of mask token 0's hypernetwork, one pass over a fitting split with jittered GT-box
    prompts. Recipes: tempered (default: per-pixel Bernoulli GGN at the model's low resolution with
    the likelihood divided by a temperature T chosen on the validation split by held-out predictive
    NLL, prior precision by the tempered marginal likelihood), untempered (the same with T = 1; 'exact'
    in 0.2) or paper (the reference code: softmax-over-pixels GGN at 128², prior precision 1). Under
    torchrun (e.g. `torchrun --standalone --nproc-per-node 4 --no-python uncertsam fit laplace
    --device cuda ...`) each process fits its share of the prompts, the curvature is summed over the
    processes and rank 0 writes the file."""
    sleep_idle_threads()
    from .. import distributed

    out = Path(args.out).expanduser()
    if out.exists() and not args.force:
        raise UserError(f"{out} exists; pass --force to overwrite it")
    with user_errors(ValueError):
        distributed.check_device(args.device)
    with distributed.session(args.device) as (where, device):
        return _fit_laplace(args, out, where, device)


def _fit_laplace(args, out: Path, where, device: str) -> int:
    from ..data.errors import DataError
    from ..model import load_model
    from ..uq.laplace import fit_posterior

    set_threads(args.threads)
    needs_val = args.prior == "gridsearch" or args.recipe == "tempered"
    if needs_val and args.val_data is None and args.data is not None:
        if _is_split(args.data):
            raise UserError(f"{'--recipe tempered' if args.recipe == 'tempered' else '--prior gridsearch'} with a "
                            "split folder as --data needs --val-data")
        args.val_data = args.data  # the same root, its validation split
    with user_errors(FileNotFoundError, DataError, ValueError):
        loaded = load_model(args.model, args.checkpoint, device=device, seed=args.model_seed)
        size = loaded.image_size
        data = open_split(args.data, args.dataset, args.split, image_size=size, data_seed=args.data_seed)
        val = None
        if needs_val:
            val = open_split(args.val_data, args.dataset, args.val_split, image_size=size, data_seed=args.data_seed)
    if where.main:
        print(f"model: {loaded.label}\nfitting data: {data.split_dir} ({len(data)} images)"
              f"\nrecipe: {args.recipe}, structure: {args.structure}"
              + (f"\n{where.world_size} processes" if where.distributed else ""))
    with user_errors(DataError, ValueError):
        posterior = fit_posterior(
            loaded, data, recipe=args.recipe, structure=args.structure, prior=args.prior,
            prior_precision=args.prior_precision, prior_structure=args.prior_structure, val_data=val,
            val_images=args.val_images, selection_images=args.selection_images, seed=args.seed, objects=args.objects,
            max_images=args.max_images, progress=not args.quiet and where.main, description=str(data.split_dir),
        )
    if not where.main:
        return 0
    posterior.save(out)
    info = posterior.info
    tau = ", ".join(f"{t:.4g}" for t in posterior.prior_precision.tolist())
    print(f"{out}: {posterior.structure} posterior of {posterior.num_parameters} parameters from {info['prompts']} prompts "
          f"({info['fit_seconds'] / max(info['prompts'], 1):.3f} s/prompt); prior precision {tau} "
          f"({info['prior']['method']}); log marginal likelihood {info['prior']['log_marglik']:.6g}; likelihood "
          f"temperature {info['temperature']:.4g}")
    return 0


def _add_data_arguments(laplace) -> None:
    laplace.add_argument("--data", help="a split folder, or a root holding DATASET/SPLIT (default: UncertSAM-mini, "
                         "generated on first use)")
    laplace.add_argument("--dataset", default="fit", help="dataset folder under --data when it is a root (default: fit)")
    laplace.add_argument("--split", default="train", help="split folder (default: train)")
    laplace.add_argument("--data-seed", type=int, default=0, help="seed of the default UncertSAM-mini data")


def _add_prior_arguments(laplace) -> None:
    laplace.add_argument("--prior", choices=("marglik", "gridsearch", "fixed"),
                         help="prior precision method (default: the recipe's, marglik for exact, fixed for paper)")
    laplace.add_argument("--prior-precision", type=float,
                         help="the fixed prior precision (default: the recipe's, 1)")
    laplace.add_argument("--prior-structure", choices=("scalar", "layerwise"), default="scalar",
                         help="one prior precision, or one for the weight and one for the bias")
    laplace.add_argument("--val-data", help="validation data for --recipe tempered and --prior gridsearch (default: "
                         "--data's root)")
    laplace.add_argument("--val-split", default="val", help="validation split (default: val)")
    laplace.add_argument("--val-images", type=int, default=16,
                         help="validation images of --prior gridsearch, cached in memory (default 16)")
    laplace.add_argument("--selection-images", type=int, default=None,
                         help="validation images of the tempered recipe's temperature (default: all)")


def register(subparsers) -> None:
    kinds = add_group(subparsers, "fit", "fit post-hoc UQ methods (the Laplace posterior)", "fit_kind", "METHOD")
    laplace = add_command(kinds, "laplace", _laplace, "last-layer Laplace posterior of SAM-2's treated layer")
    _add_data_arguments(laplace)
    laplace.add_argument("--model", default="nano", help="registry name (default: nano)")
    laplace.add_argument("--checkpoint", help="default weights when omitted; 'random' or a {'model': state_dict} file")
    laplace.add_argument("--model-seed", type=int, default=0, help="init seed of --checkpoint random")
    laplace.add_argument("--recipe", choices=("tempered", "untempered", "exact", "paper"), default="tempered",
                         help="tempered (default; T chosen on the validation split), untempered (T = 1; 'exact' is its "
                              "0.2 name) or paper")
    laplace.add_argument("--structure", choices=("diag", "kron", "full"), default="diag",
                         help="Hessian structure (default: diag; full is (C·(D+1))² floats: 270 MB on official SAM-2)")
    _add_prior_arguments(laplace)
    laplace.add_argument("--objects", choices=("one", "all"), default="one",
                         help="one random object per image (the paper) or every object")
    laplace.add_argument("--max-images", type=int, help="use only the first N images of the split")
    laplace.add_argument("--seed", type=int, default=0, help="seeds the object choice and the box jitter")
    laplace.add_argument("--device", default="cpu")
    laplace.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    laplace.add_argument("--quiet", action="store_true", help="no progress bar")
    laplace.add_argument("--force", action="store_true", help="overwrite --out")
    laplace.add_argument("--out", required=True, help="output posterior file (.pt)")
