"""``uncertsam data ...``: download the benchmark, import a native dataset, inspect a layout folder,
generate the synthetic UncertSAM-mini."""

from __future__ import annotations

from pathlib import Path

from ..data.names import DATASETS, FIT_SOURCE, SPLITS
from .common import UserError, add_command, add_group, user_errors


def _download(args) -> int:
    """Fetch <dataset>/<split>.tar.gz from the Hugging Face dataset JesseBrouw/UncertSAM (token:
    HF_TOKEN or `hf auth login`), extract it safely and verify it. Re-running resumes and skips what
    is already verified; archives copied there by hand are used."""
    from ..data.download import DownloadError, download_benchmark

    with user_errors(DownloadError):
        statuses = download_benchmark(args.out, args.datasets, args.splits, timeout=args.timeout,
                                      keep_archives=not args.delete_archives)
    for status in statuses:
        print(f"{status.dataset}/{status.split}: {status.action}, {status.images} images, {status.masks} masks")
        if "skipped" in status.report.splitlines()[0]:
            print(status.report)
    return 0


def _import(args) -> int:
    """Convert a native dataset (see uncertsam_utils/data/importers/) into
    <out>/<NAME>/{train,val,test}, or SA-1B folders into the fit set <out>/fit/{train,val}. A partial
    download imports what is there."""
    from ..data.errors import DataError
    from ..data.importers import import_dataset

    options = {"overwrite": args.overwrite}
    if args.min_area is not None:
        options["min_area"] = args.min_area
    if args.include_noncam:
        if args.name != "COD10K-v3":
            raise UserError("--include-noncam only applies to COD10K-v3")
        options["include_noncam"] = True
    for flag, value in (("images", args.images), ("val_images", args.val_images)):
        if value is not None:
            if args.name != FIT_SOURCE:
                raise UserError(f"--{flag.replace('_', '-')} only applies to {FIT_SOURCE}")
            options[flag] = value
    if not Path(args.src).is_dir():
        raise UserError(f"{args.src}: source folder not found")
    with user_errors(DataError):
        result = import_dataset(args.name, args.src, args.out, seed=args.seed, **options)
    print(result.summary())
    return 0


def _inspect(args) -> int:
    from ..data.errors import DataError
    from ..data.layout import SplitReader, list_datasets, list_splits

    root = Path(args.root)
    datasets = [args.dataset] if args.dataset else list_datasets(root)
    if not datasets:
        raise UserError(f"{root}: no dataset folders in the UncertSAM layout (<dataset>/<split>/annotations/dataset.json)")
    thresholds = {} if args.min_mask_pixels is None else {"min_mask_pixels": args.min_mask_pixels}
    failures = []
    for dataset in datasets:
        splits = [args.split] if args.split else list_splits(root, dataset)
        if not splits:
            failures.append(f"{root / dataset}: no splits")
        for split in splits:
            try:
                reader = SplitReader(root, dataset, split, **thresholds)
                if args.check_images:
                    reader.check_images()
            except DataError as err:
                failures.append(str(err))
                print(f"{dataset}/{split}: ERROR {err}")
                continue
            print(reader.report.summary())
    if failures:
        raise UserError(f"{len(failures)} problem(s) found; the first: {failures[0]}")
    return 0


def _mini(args) -> int:
    """Generate UncertSAM-mini (fit set + eight synthetic test domains) in the published layout.
    Deterministic: the same seed gives identical files."""
    from ..data import mini

    print(mini.make_mini(args.out, args.seed, small=args.small, workers=args.workers))
    return 0


# ------------------------------------------------------------------------------ the parsers
def _add_download(actions) -> None:
    download = add_command(actions, "download", _download,
                           "fetch the UncertSAM benchmark from Hugging Face, extract and verify it")
    download.add_argument("--out", required=True, type=Path, help="benchmark root folder")
    download.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS, metavar="NAME",
                          help=f"default: all ({' '.join(DATASETS)})")
    download.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS, metavar="SPLIT",
                          help="default: train val test")
    download.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    download.add_argument("--delete-archives", action="store_true", help="remove each .tar.gz once verified")


def _add_import(actions) -> None:
    imp = add_command(actions, "import", _import, "convert a native dataset into the UncertSAM layout")
    imp.add_argument("name", choices=(*DATASETS, FIT_SOURCE), metavar="NAME", help=" | ".join((*DATASETS, FIT_SOURCE)))
    imp.add_argument("--src", required=True, type=Path, help="the native dataset's folder")
    imp.add_argument("--out", required=True, type=Path, help="benchmark root folder to write into")
    imp.add_argument("--seed", type=int, default=0, help="seed of the split assignment, SA-1B: of the selection (default 0)")
    imp.add_argument("--min-area", type=int, help="smallest instance in source pixels (default: the importers' 32)")
    imp.add_argument("--overwrite", action="store_true", help="replace splits that already exist")
    imp.add_argument("--include-noncam", action="store_true", help="COD10K-v3: also the non-camouflaged images")
    imp.add_argument("--images", type=int, help=f"{FIT_SOURCE}: fit/train images (default: all not in val)")
    imp.add_argument("--val-images", type=int, help=f"{FIT_SOURCE}: fit/val images (default: a tenth of those found)")


def _add_inspect(actions) -> None:
    inspect = add_command(actions, "inspect", _inspect, "count images and masks and list what the reader skips")
    inspect.add_argument("root", type=Path, help="benchmark root folder")
    inspect.add_argument("--dataset", help="only this dataset folder")
    inspect.add_argument("--split", help="only this split folder")
    inspect.add_argument("--min-mask-pixels", type=int, help="reader threshold (default: the reader's 8)")
    inspect.add_argument("--check-images", action="store_true", help="also decode every image (slow)")


def _add_mini(actions) -> None:
    from ..data.mini import SMALL_DOMAIN_SIZES, SMALL_FIT_SIZES  # the sizes appear in the help text

    parser = add_command(actions, "mini", _mini, "generate the synthetic UncertSAM-mini benchmark")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the cache folder used by ensure_mini)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--small", action="store_true",
                        help=f"a smoke-test size: fit {SMALL_FIT_SIZES}, domains {SMALL_DOMAIN_SIZES}")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: up to 2)")


def register(subparsers) -> None:
    actions = add_group(subparsers, "data", "download, import and inspect benchmark data", "data_command", "ACTION")
    for add in (_add_download, _add_import, _add_inspect, _add_mini):
        add(actions)
