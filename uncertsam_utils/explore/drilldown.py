"""The drill-down table: every object of the evaluation CSVs, one method against the baseline.

From the per-mask rows of ``evaluate.load_results`` (columns ``dataset, image_id, mask_id, method``
and the metric columns), ``drilldown`` builds one row per object with the method's value of a metric,
the baseline's and Δ = method − baseline, sorted by any of them. The default order puts first the
objects where the method does worst against the baseline (by the metric's direction: for AUSE lower
is better, so the largest Δ comes first), which are the ones worth opening in the explorer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import direction

KEYS = ["dataset", "image_id", "mask_id"]


def drilldown(results: pd.DataFrame, metric: str, method: str, *, baseline: str = "baseline",
              sort_by: str = "delta", ascending: bool | None = None, datasets=None) -> pd.DataFrame:
    """Columns ``dataset, image_id, mask_id, <method>, <baseline>, delta``; ``sort_by`` is ``delta``,
    ``method``, ``baseline`` or any metric column (then the method's value of it is added and sorts).
    ``ascending`` None: worst first by the metric's direction (for Δ and the method's value; for a
    metric without a direction, largest first). Objects without a value of either method are dropped."""
    for name in (method, baseline):
        if name not in set(results["method"]):
            raise KeyError(f"no rows of method {name!r} in the evaluation (methods: {', '.join(sorted(set(results['method'])))})")
    if metric not in results.columns:
        raise KeyError(f"no metric column {metric!r} in the evaluation")
    frame = results if datasets is None else results[results["dataset"].isin(list(datasets))]
    wide = frame.pivot_table(index=KEYS, columns="method", values=metric, aggfunc="first", dropna=False)
    table = pd.DataFrame({method: wide[method], baseline: wide[baseline], "delta": wide[method] - wide[baseline]})
    column, key_metric = _sort_column(sort_by, metric, method, baseline)
    if column not in table.columns:  # another metric: the method's value of it
        extra = frame[frame["method"] == method].set_index(KEYS)[column]
        table[column] = extra
    table = table.dropna(subset=[method, "delta"]).reset_index()
    if ascending is None:  # worst first: lowest first where higher is better, else largest first
        ascending = direction(key_metric) > 0
    return table.sort_values([column, *KEYS], ascending=[ascending, True, True, True], kind="stable",
                             na_position="last").reset_index(drop=True)


def _sort_column(sort_by: str, metric: str, method: str, baseline: str) -> tuple[str, str]:
    """The table column that sorts, and the metric whose direction decides the default order."""
    if sort_by in ("delta", "Δ"):
        return "delta", metric
    if sort_by == "method":
        return method, metric
    if sort_by == "baseline":
        return baseline, metric
    return sort_by, sort_by


def describe_row(row) -> str:
    """One line naming an object of the table, for lists and titles."""
    values = ", ".join(f"{k} {row[k]:.3f}" for k in row.index if k not in KEYS and isinstance(row[k], (float, np.floating)))
    return f"{row['dataset']} image {int(row['image_id'])} mask {int(row['mask_id'])}: {values}"
