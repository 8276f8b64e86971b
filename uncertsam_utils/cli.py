"""The ``uncertsam`` command: one CLI for every task of the project.

Each area of the package contributes its subcommands through a ``register(subparsers)``
function in its own ``*_cli`` module; heavy imports happen inside the handlers, so
``uncertsam --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "uncertsam_utils.model.model_cli",   # checkpoints
    "uncertsam_utils.data.data_cli",     # data
    "uncertsam_utils.train_cli",         # train nano | varnet
    "uncertsam_utils.fit_cli",           # fit laplace
    "uncertsam_utils.eval_cli",          # eval
    "uncertsam_utils.bench",             # bench
    "uncertsam_utils.reproduce",         # reproduce
)


class UserError(RuntimeError):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uncertsam",
        description="Uncertainty quantification for SAM-2: data, models, UQ methods, evaluation, figures.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except UserError as err:
        print(f"uncertsam: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
