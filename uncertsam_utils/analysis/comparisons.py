"""Comparisons with intervals: paired differences, Δ against the baseline, Holm's correction.

Every Δ table has one row per dataset and a last row ``dataset = "mean"`` (the unweighted mean over
the datasets) with the columns ``dataset, metric, method_a, method_b, mean_a, mean_b, difference,
lo, hi, p_two_sided, p_holm, significant, images, masks``:

* **paired** (``paired_difference``, ``delta_vs_baseline``): both methods on the masks both scored
  (finite values); images are resampled with replacement and both means recomputed on the same
  draw, so the interval is that of the difference itself;
* **independent** (``difference_between_splits``: e.g. a test domain against the fit split, which
  have different images): each side resampled on its own;
* **from intervals** (``delta_from_intervals``): only per-dataset means and 95 % intervals are
  known (a committed table); the difference's standard error is taken as √(se_a² + se_b²) with
  se = (hi − lo) / 3.92, which ignores the pairing and is therefore conservative for paired data.

``p_two_sided`` of a bootstrap is 2 (1 + #{resamples on the far side of 0}) / (n_boot + 1), at most
1 (never 0). **Holm's step-down correction** runs over the datasets of one table (the family: one
pair of methods and one metric, across its datasets); ``significant`` is p_holm < ``alpha``. The
mean row's p is not part of the family (``p_holm`` = its own p).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .aggregation import (
    bootstrap_weights,
    direction,
    image_sums,
    percentile_interval,
    resampled_means,
    undefined_resamples,
)

ALPHA = 0.05
DELTA_COLUMNS = ["dataset", "metric", "method_a", "method_b", "mean_a", "mean_b", "difference", "lo", "hi",
                 "p_two_sided", "p_holm", "significant", "images", "masks", "undefined_resamples"]
MEAN_ROW = "mean"


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, at most 1); NaN stays NaN, outside the family."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is 0" (module docstring)."""
    boot = boot[np.isfinite(boot)]
    if not boot.size:
        return math.nan
    far = min(np.count_nonzero(boot <= 0.0), np.count_nonzero(boot >= 0.0))
    return float(min(1.0, 2.0 * (1 + far) / (boot.size + 1)))


def _finish(rows: list[dict], boots: list[np.ndarray], level: float, alpha: float) -> pd.DataFrame:
    """Holm over the dataset rows, then the mean row from the averaged resamples."""
    if not rows:
        return pd.DataFrame(columns=DELTA_COLUMNS)
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p_two_sided"])
    mean = dict(rows[0])
    mean.update({"dataset": MEAN_ROW, "mean_a": table["mean_a"].mean(), "mean_b": table["mean_b"].mean(),
                 "difference": table["difference"].mean(), "images": int(table["images"].sum()),
                 "masks": int(table["masks"].sum())})
    if boots and all(b is not None for b in boots):
        average = np.mean(boots, axis=0)
        mean["lo"], mean["hi"] = percentile_interval(average, level)
        mean["p_two_sided"] = bootstrap_p(average)
        mean["undefined_resamples"] = undefined_resamples(average)
    else:
        mean.update(_normal_interval(table["difference"].mean(),
                                     math.sqrt(float(np.sum(_se(table) ** 2))) / len(table), level))
    mean["p_holm"] = mean["p_two_sided"]
    table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
    table["significant"] = table["p_holm"] < alpha
    return table.reindex(columns=DELTA_COLUMNS)  # undefined_resamples: NaN where no resamples (normal intervals)


def paired_difference(frame: pd.DataFrame, method_a: str, method_b: str, metric: str = "IoU", *, n_boot: int = 10000,
                      seed: int = 0, level: float = 0.95, alpha: float = ALPHA) -> pd.DataFrame:
    """Per dataset (and their mean): mean(``metric``, a) − mean(``metric``, b) over the masks both scored,
    with a paired bootstrap over images and Holm's correction across the datasets (module docstring)."""
    return paired_differences(frame, method_a, method_b, [metric], n_boot=n_boot, seed=seed, level=level,
                              alpha=alpha)[metric]


def paired_differences(frame: pd.DataFrame, method_a: str, method_b: str, metrics: Sequence[str], *,
                       n_boot: int = 10000, seed: int = 0, level: float = 0.95,
                       alpha: float = ALPHA) -> dict[str, pd.DataFrame]:
    """``paired_difference`` for several metrics at once (one merge and one set of resamples per dataset):
    metric → Δ table."""
    rows = {m: [] for m in metrics}
    boots = {m: [] for m in metrics}
    keys = ["image_id", "mask_id"]
    for dataset, by_dataset in frame.groupby("dataset", sort=True):
        a = by_dataset.loc[by_dataset["method"] == method_a, keys + list(metrics)]
        b = by_dataset.loc[by_dataset["method"] == method_b, keys + list(metrics)]
        if a.empty or b.empty:
            continue
        both = a.merge(b, on=keys, suffixes=("_a", "_b"))
        images = np.sort(by_dataset["image_id"].unique())
        index = pd.Index(images).get_indexer(both["image_id"].to_numpy())
        weights = bootstrap_weights(images, n_boot, seed, f"paired|{dataset}")
        for metric in metrics:
            va, vb = both[f"{metric}_a"].to_numpy(np.float64), both[f"{metric}_b"].to_numpy(np.float64)
            ok = np.isfinite(va) & np.isfinite(vb)
            if not ok.any():
                continue
            sums_a = np.bincount(index[ok], weights=va[ok], minlength=len(images))
            sums_b = np.bincount(index[ok], weights=vb[ok], minlength=len(images))
            counts = np.bincount(index[ok], minlength=len(images)).astype(np.float64)
            boot = resampled_means(sums_a, counts, weights) - resampled_means(sums_b, counts, weights)
            lo, hi = percentile_interval(boot, level)
            rows[metric].append({
                "dataset": dataset, "metric": metric, "method_a": method_a, "method_b": method_b,
                "mean_a": sums_a.sum() / counts.sum(), "mean_b": sums_b.sum() / counts.sum(),
                "difference": (sums_a.sum() - sums_b.sum()) / counts.sum(), "lo": lo, "hi": hi,
                "p_two_sided": bootstrap_p(boot), "images": int(np.unique(index[ok]).size), "masks": int(ok.sum()),
                "undefined_resamples": undefined_resamples(boot)})
            boots[metric].append(boot)
    return {m: _finish(rows[m], boots[m], level, alpha) for m in metrics}


def delta_vs_baseline(frame: pd.DataFrame, metrics: Sequence[str], *, baseline: str = "baseline",
                      methods: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95, alpha: float = ALPHA) -> pd.DataFrame:
    """Δ = method − ``baseline`` for every other method and metric (``paired_difference``): one Holm
    family per method and metric, across the datasets. ``better`` is Δ in the metric's better direction
    (×−1 for lower-is-better metrics, NaN for descriptive ones)."""
    names = [m for m in (methods or sorted(frame["method"].unique())) if m != baseline]
    tables = [table for name in names
              for table in paired_differences(frame, name, baseline, metrics, n_boot=n_boot, seed=seed, level=level,
                                              alpha=alpha).values()]
    tables = [t for t in tables if not t.empty]
    if not tables:
        return pd.DataFrame(columns=DELTA_COLUMNS + ["better"])
    out = pd.concat(tables, ignore_index=True)
    signs = out["metric"].map(lambda m: direction(m) or math.nan)
    out["better"] = out["difference"] * signs
    return out


def difference_between_splits(frame_a: pd.DataFrame, frame_b: pd.DataFrame, metric: str = "IoU", *,
                              n_boot: int = 10000, seed: int = 0, level: float = 0.95,
                              alpha: float = ALPHA) -> pd.DataFrame:
    """Per dataset of ``frame_a``: its mean minus the mean of ``frame_b`` (one reference split, e.g. the
    fit set's test split, one method), each resampled over its own images (independent samples)."""
    if frame_b["dataset"].nunique() != 1 or frame_b["method"].nunique() != 1:
        raise ValueError("frame_b must hold one dataset (the reference split) and one method")
    ref_name, ref_method = frame_b["dataset"].iloc[0], frame_b["method"].iloc[0]
    ref_images = np.sort(frame_b["image_id"].unique())
    ref_sums, ref_counts = image_sums(frame_b, metric, ref_images)
    ref_boot = resampled_means(ref_sums, ref_counts, bootstrap_weights(ref_images, n_boot, seed, f"split|{ref_name}"))
    rows, boots = [], []
    for dataset, group in frame_a.groupby("dataset", sort=True):
        images = np.sort(group["image_id"].unique())
        sums, counts = image_sums(group, metric, images)
        boot = resampled_means(sums, counts, bootstrap_weights(images, n_boot, seed, f"split|{dataset}")) - ref_boot
        lo, hi = percentile_interval(boot, level)
        mean_a, mean_b = sums.sum() / counts.sum(), ref_sums.sum() / ref_counts.sum()
        rows.append({"dataset": dataset, "metric": metric, "method_a": f"{group['method'].iloc[0]} (each domain)",
                     "method_b": f"{ref_method} on {ref_name}", "mean_a": mean_a, "mean_b": mean_b,
                     "difference": mean_a - mean_b, "lo": lo, "hi": hi, "p_two_sided": bootstrap_p(boot),
                     "images": len(images), "masks": int(counts.sum())})
        boots.append(boot)
    return _finish(rows, boots, level, alpha)


def _se(table: pd.DataFrame) -> np.ndarray:
    return ((table["hi"] - table["lo"]) / 3.92).to_numpy(dtype=np.float64)


def _normal_interval(difference: float, se: float, level: float) -> dict:
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2.0))
    p = float(2.0 * norm.sf(abs(difference) / se)) if se > 0 else (0.0 if difference else 1.0)
    return {"lo": difference - z * se, "hi": difference + z * se, "p_two_sided": p}


def delta_from_intervals(numeric: pd.DataFrame, method_a: str, method_b: str, metric: str, *, level: float = 0.95,
                         alpha: float = ALPHA) -> pd.DataFrame:
    """A Δ table from a ``tables.numeric_table`` (dataset, method, <metric>, <metric>_lo, <metric>_hi):
    the conservative normal approximation of the module docstring, for tables without their CSVs."""
    rows = []
    index = numeric.set_index(["dataset", "method"])
    for dataset in sorted(numeric["dataset"].unique()):
        if (dataset, method_a) not in index.index or (dataset, method_b) not in index.index:
            continue
        a, b = index.loc[(dataset, method_a)], index.loc[(dataset, method_b)]
        se = math.hypot((a[f"{metric}_hi"] - a[f"{metric}_lo"]) / 3.92, (b[f"{metric}_hi"] - b[f"{metric}_lo"]) / 3.92)
        difference = float(a[metric] - b[metric])
        rows.append({"dataset": dataset, "metric": metric, "method_a": method_a, "method_b": method_b,
                     "mean_a": float(a[metric]), "mean_b": float(b[metric]), "difference": difference,
                     **_normal_interval(difference, se, level), "images": int(a.get("images", 0)),
                     "masks": int(a.get("masks", 0))})
    return _finish(rows, [], level, alpha)


def from_paired_table(table: pd.DataFrame, *, level: float = 0.95, alpha: float = ALPHA) -> pd.DataFrame:
    """A Δ table (with Holm and the mean row) from per-dataset rows of an older paired-bootstrap table
    (dataset, metric, method_a, method_b, mean_a, mean_b, difference, lo, hi, p_two_sided, images, masks);
    its mean row uses the normal approximation of the per-dataset intervals (no resamples kept)."""
    rows = table[table["dataset"] != MEAN_ROW].drop(columns=["p_holm", "significant"], errors="ignore")
    return _finish(rows.to_dict("records"), [], level, alpha)


def combination_gains(summary: pd.DataFrame, combinations: dict, metrics: Sequence[str] = ("pearson", "auroc")
                      ) -> pd.DataFrame:
    """Per combination (name → its component names), dataset and metric: the combination's mean, its
    best component's, and the gain (positive: the combination is better, in the metric's direction)."""
    means = summary.set_index(["dataset", "method", "metric"])["mean"]
    rows = []
    for name, components in combinations.items():
        for dataset in sorted(summary["dataset"].unique()):
            for metric in metrics:
                sign = direction(metric)
                parts = {c: means.get((dataset, c, metric), math.nan) for c in components}
                parts = {c: v for c, v in parts.items() if not math.isnan(v)}
                value = means.get((dataset, name, metric), math.nan)
                if not parts or math.isnan(value):
                    continue
                best = max(parts, key=lambda c: sign * parts[c])
                rows.append({"combination": name, "dataset": dataset, "metric": metric, "combined": value,
                             "best_component": best, "component": parts[best],
                             "gain": sign * (value - parts[best])})
    return pd.DataFrame(rows, columns=["combination", "dataset", "metric", "combined", "best_component", "component",
                                       "gain"])
