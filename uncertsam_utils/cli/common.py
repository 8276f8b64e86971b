"""What the command groups share: the user-error type, the group scaffolding, the settings every
trainer applies first (sleeping OpenMP threads, a thread count) and reproducible command lines."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


class UserError(RuntimeError):
    """An error caused by the user's input; printed without a traceback."""


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn the listed exceptions (bad files, bad data, bad names) into a ``UserError`` with the same message."""
    try:
        yield
    except kinds as err:
        raise UserError(str(err)) from err


def add_group(subparsers, name: str, help: str, dest: str, metavar: str):
    """A command group ``uncertsam NAME ...`` whose action is required; returns its subparsers."""
    parser = subparsers.add_parser(name, help=help)
    return parser.add_subparsers(dest=dest, metavar=metavar, required=True)


def sleep_idle_threads() -> None:
    """Idle OpenMP threads sleep instead of spinning: on a shared machine spinning threads make
    multi-threaded steps several times slower. Only effective before torch starts its pool."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_threads(threads: int) -> None:
    """torch's CPU thread count; 0 keeps torch's default."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def flags(args, *names: str) -> list[str]:
    """``--name value`` for each named argument that is set (not None), for recorded command lines."""
    out: list[str] = []
    for name in names:
        value = getattr(args, name)
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    return out


def add_command(actions, name: str, handler, help: str):
    """The subcommand ``NAME`` run by ``handler``; returns its parser for the arguments. ``help`` is the
    line in the group's list; the handler's docstring, if any, is the description of ``NAME --help``
    (argparse rewraps it, so its line breaks do not matter)."""
    parser = actions.add_parser(name, help=help, description=handler.__doc__)
    parser.set_defaults(handler=handler)
    return parser
