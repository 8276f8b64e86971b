"""``uncertsam checkpoints ...``: list, download and verify SAM-2 checkpoints."""

from __future__ import annotations

from pathlib import Path


def _list(args) -> int:
    from .checkpoints import CHECKPOINTS, checkpoint_dir

    where = checkpoint_dir()
    print(f"checkpoint folder: {where}  (set UNCERTSAM_CHECKPOINTS to change)")
    for info in CHECKPOINTS.values():
        present = "shipped" if info.family == "nano" else ("present" if (where / info.filename).is_file() else "missing")
        print(f"  {info.name:<24} SAM {info.family:<4} {info.config:<40} {present}")
    return 0


def _download(args) -> int:
    from ..cli import UserError
    from .checkpoints import DownloadError, download_checkpoint

    try:
        path = download_checkpoint(args.name, Path(args.dir) if args.dir else None, timeout=args.timeout)
    except (DownloadError, KeyError) as err:
        raise UserError(str(err)) from err
    print(f"{path} (SHA-256 verified)")
    return 0


def _verify(args) -> int:
    from ..cli import UserError
    from .registry import CheckpointMismatchError, load_model

    try:
        loaded = load_model(args.name, args.path, verify_hash=True)
    except (CheckpointMismatchError, FileNotFoundError, KeyError) as err:
        raise UserError(str(err)) from err
    print(f"{loaded.checkpoint} matches {loaded.info.config} (SHA-256 {loaded.sha256})")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("checkpoints", help="list, download and verify SAM-2 checkpoints")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the known checkpoints and whether they are present").set_defaults(handler=_list)
    download = actions.add_parser("download", help="download an official checkpoint and verify its SHA-256")
    download.add_argument("name", help="e.g. sam2.1_hiera_tiny, sam2_hiera_large")
    download.add_argument("--dir", help="target folder (default: the checkpoint folder)")
    download.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    download.set_defaults(handler=_download)
    verify = actions.add_parser("verify", help="check that a checkpoint file matches its config (and hash)")
    verify.add_argument("name")
    verify.add_argument("path", nargs="?", help="checkpoint file (default: the registry's location)")
    verify.set_defaults(handler=_verify)
