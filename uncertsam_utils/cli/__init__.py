"""The ``uncertsam`` command: one CLI for every task of the project.

Each command group lives in its own module of this package (``checkpoints``, ``data``, ``train``,
``fit``, ``eval``, ``bench``, ``reproduce``, ``cache``) and adds its subcommands through a
``register(subparsers)`` function; heavy imports happen inside the handlers, so
``uncertsam --help`` stays fast. The logic the handlers call lives in the rest of the package.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .common import UserError

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "uncertsam_utils.cli.checkpoints",   # checkpoints
    "uncertsam_utils.cli.data",          # data
    "uncertsam_utils.cli.train",         # train nano | nano-card | varnet | fusion
    "uncertsam_utils.cli.fit",           # fit laplace
    "uncertsam_utils.cli.eval",          # eval
    "uncertsam_utils.cli.bench",         # bench
    "uncertsam_utils.cli.reproduce",     # reproduce
    "uncertsam_utils.cli.cache",         # cache list | verify | clear
)

__all__ = ["COMMAND_MODULES", "UserError", "build_parser", "main"]


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
