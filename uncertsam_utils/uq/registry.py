"""The method registry: name → ``UQMethod`` class, and ``make_method``.

``uncertsam_utils.uq`` fills ``METHODS`` (its ``__init__`` lists every method once, in order). It
lives in a module of its own so that the methods that look others up by name when they run (the
combinations build their components) read it without importing the package that imports them.
"""

from __future__ import annotations

from .base import UQMethod

METHODS: dict[str, type[UQMethod]] = {}


def make_method(name: str, **hyperparameters) -> UQMethod:
    if name not in METHODS:
        raise KeyError(f"unknown uncertainty method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name](**hyperparameters)
