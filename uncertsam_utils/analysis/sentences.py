"""Sentences generated from computed tables: what the numbers say, with their intervals.

Every result sentence of the notebooks' "What this shows" cells comes from here (or from the claim
rows of ``analysis.claims``), never typed: a rerun on other data says what that data shows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .aggregation import label
from .comparisons import MEAN_ROW

MIN_IMAGES_FOR_INTERVAL = 5  # below this, describe_winners does not grade the lead


def interval(value: float, lo: float, hi: float, decimals: int = 3, signed: bool = False) -> str:
    """``0.123 [0.100, 0.150]`` (signed: ``+0.123 [+0.100, +0.150]``); NaN bounds are left out."""
    f = f"+.{decimals}f" if signed else f".{decimals}f"
    if not np.isfinite(value):
        return "n/a"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return format(value, f)
    return f"{value:{f}} [{lo:{f}}, {hi:{f}}]"


def _datasets(names: Sequence[str]) -> str:
    return f" ({', '.join(names)})" if len(names) else ""


def describe_difference(table: pd.DataFrame, *, decimals: int = 3) -> str:
    """Sentences from a Δ table (``comparisons``): the mean difference with its interval, where a is
    better, where b is, where neither is (Holm-corrected across the datasets)."""
    rows = table[table["dataset"] != MEAN_ROW] if not table.empty else table
    if rows.empty:
        return "No dataset has results for both methods."
    a, b, metric = rows["method_a"].iloc[0], rows["method_b"].iloc[0], label(rows["metric"].iloc[0])
    mean = table[table["dataset"] == MEAN_ROW]
    pooled = (interval(*mean[["difference", "lo", "hi"]].iloc[0], decimals, signed=True) if not mean.empty
              else f"{rows['difference'].mean():+.{decimals}f}")
    better = rows[rows["significant"] & (rows["difference"] > 0)]["dataset"].tolist()
    worse = rows[rows["significant"] & (rows["difference"] < 0)]["dataset"].tolist()
    unclear = rows[~rows["significant"]]["dataset"].tolist()
    return (f"{metric} of {a} minus {b}: mean over datasets {pooled}. {a} is better (Holm-corrected across the "
            f"{len(rows)} datasets, α = 0.05) on {len(better)} of {len(rows)} datasets{_datasets(better)}; {b} is "
            f"better on {len(worse)}{_datasets(worse)}; no significant difference on {len(unclear)}"
            f"{_datasets(unclear)}.")


def describe_winners(table: pd.DataFrame, *, decimals: int = 3) -> str:
    """Sentences from a ``winners`` table: who wins where (on the common masks), and how clearly."""
    if table.empty:
        return "No results to compare."
    metric = table["metric"].iloc[0]
    lines = []
    counts = table["best"].value_counts()
    top = counts.index[0]
    datasets = table.loc[table["best"] == top, "dataset"].tolist()
    lines.append(f"By {label(metric)} (on the masks every compared method scored), {top} is the best method on "
                 f"{len(datasets)} of {len(table)} datasets ({', '.join(datasets)}).")
    others = [f"{m} on {', '.join(table.loc[table['best'] == m, 'dataset'])}" for m in counts.index[1:]]
    if others:
        lines.append("Elsewhere the best is " + "; ".join(others) + ".")
    for row in table.itertuples(index=False):
        versus = ("" if row.runner_up is None
                  else f" ahead of {row.runner_up} ({row.runner_up_mean:.{decimals}f})")
        if row.images < MIN_IMAGES_FOR_INTERVAL:
            verdict = f"only {row.images} image(s): too few to say how clear the lead is"
        else:
            strength = ("clearly" if row.p_best >= 0.95 else "probably" if row.p_best >= 0.75 else "not clearly")
            verdict = f"best in {100 * row.p_best:.0f}% of bootstrap resamples, {strength} the winner"
        lines.append(f"- {row.dataset}: {row.best} ({row.mean:.{decimals}f}){versus}; {verdict}.")
    return "\n".join(lines)


def paper_claim(table: pd.DataFrame, evaluated: Sequence[str],
                laplace: Sequence[str] = ("laplace", "laplace-paper")) -> str:
    """One generated sentence on the paper's finding that the last-layer Laplace uncertainty
    correlates best with the errors, checked against a ``winners`` table of the ``evaluated`` methods."""
    claim = "The paper found the last-layer Laplace uncertainty to correlate best with the errors"
    variants = [m for m in laplace if m in evaluated]
    if not variants:
        return f"{claim}; no Laplace method was evaluated here."
    if table.empty:
        return f"{claim}; there are no results to check it against."
    metric = label(table["metric"].iloc[0])
    held = table.loc[table["best"].isin(variants), "dataset"].tolist()
    return (f"{claim}; here, by {metric}, {' or '.join(variants)} is the best of the {len(evaluated)} methods on "
            f"{len(held)} of {len(table)} datasets{_datasets(held)}.")


def describe_combinations(table: pd.DataFrame) -> str:
    """Generated sentences: on how many datasets each combination beats its best component."""
    if table.empty:
        return "No combination was evaluated together with its components."
    lines = []
    for (name, metric), group in table.groupby(["combination", "metric"], sort=True):
        wins = group.loc[group["gain"] > 0, "dataset"].tolist()
        lines.append(f"{name} beats its best component by {label(metric)} on {len(wins)} of {len(group)} datasets"
                     + _datasets(wins) + f"; mean gain {group['gain'].mean():+.3f}.")
    return "\n".join(lines)


def describe_delta(delta: pd.DataFrame, metric: str, *, decimals: int = 3) -> str:
    """One sentence per method from ``delta_vs_baseline``: its mean Δ over datasets with the interval and
    on how many datasets it is significantly better or worse than the baseline (Holm)."""
    part = delta[delta["metric"] == metric]
    if part.empty:
        return f"No method was compared with the baseline by {label(metric)}."
    lines = [f"{label(metric)} against the baseline (Δ = method − baseline, paired bootstrap over images, "
             "Holm across datasets):"]
    for method, rows in part.groupby("method_a", sort=False):
        mean = rows[rows["dataset"] == MEAN_ROW].iloc[0]
        per = rows[rows["dataset"] != MEAN_ROW]
        up = per[per["significant"] & (per["better"] > 0)]["dataset"].tolist()
        down = per[per["significant"] & (per["better"] < 0)]["dataset"].tolist()
        lines.append(f"- {method}: {interval(mean['difference'], mean['lo'], mean['hi'], decimals, signed=True)}; "
                     f"better on {len(up)} of {len(per)} datasets, worse on {len(down)}.")
    return "\n".join(lines)


def describe_softening(summary_means: pd.DataFrame, method: str, baseline: str = "baseline", *,
                       own: str = "pearson", fair: Sequence[str] = ("pearson_shared", "auroc")) -> str:
    """Whether ``method`` gains over the baseline only by its own error (the paper's Pearson) while the
    fair measures (shared target, AUROC) say otherwise; ``summary_means``: method, metric, mean."""
    means = summary_means.set_index(["method", "metric"])["mean"]
    try:
        gains = {m: means[(method, m)] - means[(baseline, m)] for m in (own, *fair)}
    except KeyError:
        return f"{method} or {baseline} is missing: no comparison of the measures."
    fair_text = ", ".join(f"{label(m)} {gains[m]:+.3f}" for m in fair)
    if gains[own] > 0 and all(gains[m] <= 0 for m in fair):
        verdict = "it gains only on its own error: the paper's measure rewards its softer probabilities"
    elif gains[own] > 0:
        verdict = "its gain on its own error is matched by a gain on the fair measures"
    else:
        verdict = "it does not gain on its own error either"
    return f"{method} against {baseline}: {label(own)} {gains[own]:+.3f}, {fair_text}; {verdict}."
