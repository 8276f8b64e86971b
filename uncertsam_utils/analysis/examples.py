"""Which objects a figure shows: chosen by a stated rule from the evaluation, never "image 0".

``select_examples`` ranks every mask that both methods scored by Δ = metric(method) − metric(reference)
(in the metric's better direction) and picks the worst, the median and the best object (optionally
per dataset); ties go to the lowest (dataset, image id, mask id). ``examples_caption`` states the rule
and the Δ of each pick, for the figure's caption.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .aggregation import direction, label

RULES = ("worst", "median", "best")


def object_deltas(frame: pd.DataFrame, metric: str, method: str, reference: str = "baseline") -> pd.DataFrame:
    """Per mask scored (finite) by both: dataset, image_id, mask_id, value, reference_value, delta (better > 0)."""
    sign = direction(metric) or 1
    keys = ["dataset", "image_id", "mask_id"]
    a = frame.loc[frame["method"] == method, keys + [metric]]
    b = frame.loc[frame["method"] == reference, keys + [metric]]
    both = a.merge(b, on=keys, suffixes=("", "_reference"))
    both = both[np.isfinite(both[metric]) & np.isfinite(both[f"{metric}_reference"])]
    both = both.rename(columns={metric: "value", f"{metric}_reference": "reference_value"})
    both["delta"] = sign * (both["value"] - both["reference_value"])
    return both.sort_values(["delta", *keys], kind="stable").reset_index(drop=True)


def select_examples(frame: pd.DataFrame, metric: str, method: str, reference: str = "baseline", *,
                    rules: Sequence[str] = RULES, per_dataset: bool = False) -> pd.DataFrame:
    """The objects of ``rules`` (worst, median, best by Δ; module docstring), overall or per dataset:
    columns rule, dataset, image_id, mask_id, value, reference_value, delta, of (masks ranked)."""
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; choose from {RULES}")
    deltas = object_deltas(frame, metric, method, reference)
    groups = deltas.groupby("dataset", sort=True) if per_dataset else [(None, deltas)]
    picks = []
    for _, group in groups:
        group = group.reset_index(drop=True)
        if group.empty:
            continue
        where = {"worst": 0, "median": (len(group) - 1) // 2, "best": len(group) - 1}
        for rule in rules:
            picks.append(group.iloc[where[rule]].to_dict() | {"rule": rule, "of": len(group)})
    columns = ["rule", "dataset", "image_id", "mask_id", "value", "reference_value", "delta", "of"]
    return pd.DataFrame(picks, columns=columns)


def examples_caption(selected: pd.DataFrame, metric: str, method: str, reference: str = "baseline", *,
                     per_dataset: bool = False) -> str:
    """'Objects chosen by Δ <metric> = <method> − <reference> …: the worst (…), the median (…), …'."""
    if selected.empty:
        return f"No object was scored by both {method} and {reference}."
    parts = [f"{row.rule} {row.dataset} #{row.image_id}/{row.mask_id} (Δ {row.delta:+.3f})"
             for row in selected.itertuples(index=False)]
    scope = "the worst, median and best object of each dataset" if per_dataset else "the worst, median and best object"
    return (f"{scope} by Δ {label(metric)} = {method} − {reference} (better > 0) among the masks both scored: "
            + "; ".join(parts) + ".")
