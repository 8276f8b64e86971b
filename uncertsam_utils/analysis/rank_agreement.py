"""Do Pearson and Spearman ρ tell the same story? The pairs of methods whose Pearson ρ on a dataset
lies within a tolerance, and how far apart their Spearman ρ lies.

Spearman ρ once measured a clamping convention (two methods with the same probabilities got
different ranks through ties); with one logit convention they score identically. A gap left between
two methods of close Pearson ρ is then one of the maps' shapes: against each method's own soft error
(the paper's target), whose ranks on the correctly classified pixels are those of the method's own
probability, a map that is a function of that probability ranks them perfectly and one that is not
(a learned map) does not, whatever its linear fit.
"""

from __future__ import annotations

import pandas as pd

PAIR_COLUMNS = ["dataset", "method_a", "method_b", "pearson_a", "pearson_b", "spearman_a", "spearman_b",
                "spearman_gap", "agrees"]


def close_pearson_pairs(summary: pd.DataFrame, *, pearson: str = "pearson", spearman: str = "spearman",
                        tolerance: float = 0.01, agreement: float = 0.05) -> pd.DataFrame:
    """From a long summary (dataset, method, metric, mean): every pair of methods on one dataset whose
    ``pearson`` means differ by less than ``tolerance``, with their ``spearman`` means, the absolute
    Spearman gap and whether it is under ``agreement``; sorted by dataset and method names."""
    part = summary[summary["metric"].isin([pearson, spearman])]
    wide = part.pivot(index=["dataset", "method"], columns="metric", values="mean").reset_index()
    wide = wide.rename_axis(columns=None).rename(columns={pearson: "pearson", spearman: "spearman"})
    pairs = wide.merge(wide, on="dataset", suffixes=("_a", "_b"))
    pairs = pairs[(pairs["method_a"] < pairs["method_b"])
                  & ((pairs["pearson_a"] - pairs["pearson_b"]).abs() < tolerance)].copy()
    pairs["spearman_gap"] = (pairs["spearman_a"] - pairs["spearman_b"]).abs()
    pairs["agrees"] = pairs["spearman_gap"] < agreement
    return pairs[PAIR_COLUMNS].sort_values(["dataset", "method_a", "method_b"]).reset_index(drop=True)


def describe_close_pairs(pairs: pd.DataFrame, *, tolerance: float = 0.01, agreement: float = 0.05) -> str:
    """One paragraph from ``close_pearson_pairs``: how many pairs, how many agree, the others named."""
    if pairs.empty:
        return f"No two methods have Pearson ρ within {tolerance} of each other on any dataset."
    apart = pairs[~pairs["agrees"]]
    text = (f"Pairs of methods whose Pearson ρ on a dataset differ by less than {tolerance}: {len(pairs)}; "
            f"their Spearman ρ agree within {agreement} on {int(pairs['agrees'].sum())}.")
    if apart.empty:
        return text
    listed = "; ".join(f"{r.dataset} {r.method_a} vs {r.method_b} (Pearson {r.pearson_a:.3f} vs {r.pearson_b:.3f}, "
                       f"Spearman {r.spearman_a:.3f} vs {r.spearman_b:.3f})" for r in apart.itertuples())
    return (f"{text} Apart: {listed}. (Methods that return the same probabilities get the same scores: "
            "tests/test_logit_convention.py checks it.)")
