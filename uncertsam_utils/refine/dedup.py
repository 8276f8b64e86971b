"""Refinement variants that predict identically by construction, evaluated once.

A fusion module that fit/val selection kept untrained (``fusion.is_untrained``: the exact init's
[I | 0] conv) ignores its map: it *is* mask-prompt refinement of its first pass. So every untrained
``fusion-entropy`` module is ``mask-prompt`` (SAM-2's first pass), and every untrained
``fusion-laplace`` and ``fusion-ones`` module with the same posterior is one method (mask-prompt
refinement of the Laplace predictive's logits), whatever the seed. ``unique_methods`` keeps one of
each such group; ``copy_duplicates`` gives the others its rows under their own names.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from ..uq.base import UQMethod


def equivalence_key(method: UQMethod):
    """A key shared by methods that predict identically by construction, or None (no known equivalent)."""
    key = getattr(method, "equivalence_key", None)
    return key() if callable(key) else None


def unique_methods(methods: Mapping[str, UQMethod]) -> tuple[dict[str, UQMethod], dict[str, str]]:
    """``(methods to evaluate, {duplicate name: the evaluated name it equals})``; the first method of each
    group (in ``methods``' order) is the one evaluated."""
    first_of: dict = {}
    unique: dict[str, UQMethod] = {}
    same_as: dict[str, str] = {}
    for name, method in methods.items():
        key = equivalence_key(method)
        if key is not None and key in first_of:
            same_as[name] = first_of[key]
            continue
        if key is not None:
            first_of[key] = name
        unique[name] = method
    return unique, same_as


def copy_duplicates(results: pd.DataFrame, same_as: Mapping[str, str]) -> pd.DataFrame:
    """``results`` (per-mask rows with a ``method`` column) plus, for each duplicate, its representative's
    rows under the duplicate's name."""
    copies = []
    for name, source in same_as.items():
        rows = results[results["method"] == source]
        if rows.empty:
            raise ValueError(f"no results of {source!r}, which {name!r} equals")
        copies.append(rows.assign(method=name))
    return pd.concat([results, *copies], ignore_index=True) if copies else results


__all__ = ["copy_duplicates", "equivalence_key", "unique_methods"]
