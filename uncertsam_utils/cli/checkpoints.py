"""``uncertsam checkpoints ...``: list, download and verify SAM-2 checkpoints."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_group, user_errors


def _list(args) -> int:
    from ..model.checkpoints import CHECKPOINTS, checkpoint_dir

    where = checkpoint_dir()
    print(f"checkpoint folder: {where}  (set UNCERTSAM_CHECKPOINTS to change)")
    for info in CHECKPOINTS.values():
        present = "shipped" if info.family == "nano" else ("present" if (where / info.filename).is_file() else "missing")
        print(f"  {info.name:<24} SAM {info.family:<4} {info.config:<40} {present}")
    return 0


def _download(args) -> int:
    from ..model.checkpoints import DownloadError, download_checkpoint

    with user_errors(DownloadError, KeyError):
        path = download_checkpoint(args.name, Path(args.dir) if args.dir else None, timeout=args.timeout)
    print(f"{path} (SHA-256 verified)")
    return 0


def _verify(args) -> int:
    from ..model.registry import CheckpointMismatchError, load_model

    with user_errors(CheckpointMismatchError, FileNotFoundError, KeyError):
        loaded = load_model(args.name, args.path, verify_hash=True)
    print(f"{loaded.checkpoint} matches {loaded.info.config} (SHA-256 {loaded.sha256})")
    return 0


def register(subparsers) -> None:
    actions = add_group(subparsers, "checkpoints", "list, download and verify SAM-2 checkpoints", "action", "ACTION")
    add_command(actions, "list", _list, "the known checkpoints and whether they are present")
    download = add_command(actions, "download", _download, "download an official checkpoint and verify its SHA-256")
    download.add_argument("name", help="e.g. sam2.1_hiera_tiny, sam2_hiera_large")
    download.add_argument("--dir", help="target folder (default: the checkpoint folder)")
    download.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    verify = add_command(actions, "verify", _verify, "check that a checkpoint file matches its config (and hash)")
    verify.add_argument("name")
    verify.add_argument("path", nargs="?", help="checkpoint file (default: the registry's location)")
