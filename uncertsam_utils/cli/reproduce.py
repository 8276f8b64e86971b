"""``uncertsam reproduce``: regenerate figures and tables by running the numbered notebooks
(``uncertsam_utils.reproduce``)."""

from __future__ import annotations

from pathlib import Path

from ..reproduce import PROFILES
from .common import UserError, add_command, user_errors


def _overrides(args) -> dict:
    """``--set`` pairs, and ``--data-root`` as ``data_root`` (absolute: the notebooks run in notebooks/)."""
    from ..reproduce import parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.data_root is not None:
        if "data_root" in overrides:
            raise UserError("data_root is given twice: pass --data-root DIR or --set data_root=DIR, not both")
        root = Path(args.data_root).expanduser().resolve()
        if not root.is_dir():
            raise UserError(f"--data-root {root} is not a folder")
        overrides["data_root"] = str(root)
    return overrides


def _run(args) -> int:
    from ..reproduce import OverrideError, run_profile

    from ..checked_outputs import ExpectedOutputsError

    with user_errors(FileNotFoundError, OverrideError, ExpectedOutputsError):
        if args.expected and not args.prepare_only:
            raise UserError("--expected goes with --prepare-only: it fills the checked cells of the prepared notebooks")
        runs = run_profile(args.profile, args.only, Path(args.build_dir) if args.build_dir else None, args.prepare_only,
                           overrides=_overrides(args), expected=args.expected, record_expected=args.record_expected)
    for run in runs:
        print(f"{run.notebook}: {run.seconds:.1f} s, {len(run.outputs)} outputs")
    return 0


def register(subparsers) -> None:
    parser = add_command(subparsers, "reproduce", _run, "regenerate figures and tables by running the numbered notebooks")
    parser.add_argument("--profile", default="mini", choices=PROFILES, help="parameter profile in params/ (default: mini)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="only these notebook numbers")
    parser.add_argument("--build-dir", help="where executed notebooks go (default: build/<profile>)")
    parser.add_argument("--prepare-only", action="store_true", help="write parameterised notebooks without executing them")
    parser.add_argument("--expected", type=Path, metavar="DIR",
                        help="with --prepare-only: copy the expected outputs of the checked cells (# NBVAL_CHECK_OUTPUT) "
                             "from DIR into the prepared notebooks (make test; an out-of-date DIR is an error)")
    parser.add_argument("--record-expected", type=Path, metavar="DIR",
                        help="write the checked cells' outputs of the executed notebooks to DIR (make expected)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="benchmark root in the published layout, the data_root of every notebook (the paper "
                             "profile needs one: each test domain's test split and fit/train, fit/val)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override a notebook parameter of the profile, in every notebook that declares it; VALUE "
                             "is read as YAML (1, 0.5, null, true, random, [a, b]); repeatable, e.g. --set max_images=1 "
                             "--set checkpoint=random --set model=sam2.1_hiera_tiny")
