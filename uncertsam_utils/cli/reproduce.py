"""``uncertsam reproduce``: regenerate figures and tables by running the numbered notebooks
(``uncertsam_utils.reproduce``)."""

from __future__ import annotations

from pathlib import Path

from ..reproduce import PROFILES
from .common import add_command, user_errors


def _run(args) -> int:
    from ..reproduce import run_profile

    with user_errors(FileNotFoundError):
        runs = run_profile(args.profile, args.only, Path(args.build_dir) if args.build_dir else None, args.prepare_only)
    for run in runs:
        print(f"{run.notebook}: {run.seconds:.1f} s, {len(run.outputs)} outputs")
    return 0


def register(subparsers) -> None:
    parser = add_command(subparsers, "reproduce", _run, "regenerate figures and tables by running the numbered notebooks")
    parser.add_argument("--profile", default="mini", choices=PROFILES, help="parameter profile in params/ (default: mini)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="only these notebook numbers")
    parser.add_argument("--build-dir", help="where executed notebooks go (default: build/<profile>)")
    parser.add_argument("--prepare-only", action="store_true", help="write parameterised notebooks without executing them")
