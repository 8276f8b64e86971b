"""Aggregation of the evaluation CSVs: means over masks with bootstrap confidence intervals over
images, per-image spreads, winners per dataset, and the tables' Markdown.

Aggregation follows the paper: a dataset's score is the **mean over its masks** (NaN skipped). The
uncertainty in that mean is estimated by a **bootstrap over images** (masks of one image are not
independent): images are resampled with replacement, the mean over the masks of the resampled
images is recomputed, and the percentile interval is reported. The resamples are drawn once per
dataset from a generator seeded by (seed, dataset) and shared by every method and metric of that
dataset (a paired bootstrap), so that methods can be compared resample by resample
(``winners``: how often each method is the best).
"""

from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np
import pandas as pd

from .metrics import EXTRA_COLUMNS, METRIC_COLUMNS, PAPER_COLUMNS

HIGHER_IS_BETTER = frozenset({
    "IoU", "dice", "acc", "prec", "rec", "F1", "IoU_", "dice_", "acc_", "prec_", "rec_", "F1_", "BIoU_2", "BIoU_1",
    "pearson", "pearson_", "spearman", "spearman_", "auroc", "auroc_", "aupr", "aupr_",
})
LOWER_IS_BETTER = frozenset({"MAE", "BER", "MAE_", "BER_", "ECE", "ECE_", "brier", "brier_", "ause", "ause_"})
# Uncertainty metrics in table order: correlation, error detection, calibration, map statistics.
UNCERTAINTY_METRICS = (
    "pearson", "pearson_", "spearman", "spearman_", "auroc", "auroc_", "aupr", "aupr_", "ause", "ause_",
    "ECE", "ECE_", "brier", "brier_", "sharp", "sharp_", "avg_sample_std", "avg_sample_std_",
)
LABELS = {
    "pearson": "Pearson ρ", "pearson_": "Pearson ρ (ROI)", "spearman": "Spearman ρ", "spearman_": "Spearman ρ (ROI)",
    "auroc": "AUROC", "auroc_": "AUROC (ROI)", "aupr": "AUPR", "aupr_": "AUPR (ROI)", "ause": "AUSE",
    "ause_": "AUSE (ROI)", "IoU": "mIoU", "BIoU_2": "mBIoU (0.02)", "BIoU_1": "mBIoU (0.01)",
}
ACCURACY_METRICS = PAPER_COLUMNS[:18]  # IoU … F1_, BIoU_2, BIoU_1
assert set(UNCERTAINTY_METRICS) | set(ACCURACY_METRICS) == set(METRIC_COLUMNS)  # every column has a table
assert set(EXTRA_COLUMNS) <= set(UNCERTAINTY_METRICS)


MIN_IMAGES_FOR_INTERVAL = 5  # below this, describe_winners does not grade the lead


def direction(metric: str) -> int:
    """+1 when higher is better, −1 when lower is better, 0 for descriptive statistics (sharp, std)."""
    return 1 if metric in HIGHER_IS_BETTER else -1 if metric in LOWER_IS_BETTER else 0


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def _rng(seed: int, *keys) -> np.random.Generator:
    text = "|".join(str(k) for k in (seed, *keys))
    return np.random.default_rng(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))


# ------------------------------------------------------------------------------------------ per image

def image_means(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (dataset, method, image_id): the mean over the image's masks of each metric."""
    keys = ["dataset", "method", "image_id"]
    return frame.groupby(keys, sort=True)[list(metrics)].mean().reset_index()


def _image_sums(frame: pd.DataFrame, metric: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image in ``images`` order: (sum of the non-NaN values, their count)."""
    values = frame[metric].to_numpy(dtype=np.float64)
    ok = ~np.isnan(values)
    index = pd.Index(images).get_indexer(frame["image_id"].to_numpy())
    if (index < 0).any():
        raise ValueError("rows with image ids outside the bootstrap's image list")
    sums = np.bincount(index[ok], weights=values[ok], minlength=len(images))
    counts = np.bincount(index[ok], minlength=len(images)).astype(np.float64)
    return sums, counts


def bootstrap_weights(images: Sequence[int], n_boot: int, seed: int, dataset: str) -> np.ndarray:
    """(n_boot, n_images) multiplicities of each image in each resample (rows sum to n_images)."""
    n = len(images)
    if n == 0:
        return np.zeros((n_boot, 0))
    return _rng(seed, "bootstrap", dataset, n).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def summarise(frame: pd.DataFrame, metrics: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> pd.DataFrame:
    """Long table: dataset, method, metric, mean (over masks), lo, hi (bootstrap percentile interval
    over images), masks (non-NaN values), images. Sorted by dataset, method, metric order."""
    rows = []
    alpha = (1.0 - level) / 2.0
    for dataset, by_dataset in frame.groupby("dataset", sort=True):
        images = np.sort(by_dataset["image_id"].unique())
        weights = bootstrap_weights(images, n_boot, seed, dataset)
        for method, group in by_dataset.groupby("method", sort=True):
            for metric in metrics:
                sums, counts = _image_sums(group, metric, images)
                total = counts.sum()
                mean = sums.sum() / total if total > 0 else math.nan
                lo = hi = math.nan
                if total > 0 and n_boot > 0:
                    with np.errstate(invalid="ignore", divide="ignore"):
                        boot = (weights @ sums) / (weights @ counts)
                    boot = boot[np.isfinite(boot)]
                    if boot.size:
                        lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
                rows.append({"dataset": dataset, "method": method, "metric": metric, "mean": mean,
                             "lo": float(lo), "hi": float(hi), "masks": int(total),
                             "images": int(group["image_id"].nunique())})
    out = pd.DataFrame(rows, columns=["dataset", "method", "metric", "mean", "lo", "hi", "masks", "images"])
    order = {m: i for i, m in enumerate(metrics)}
    return out.sort_values(["dataset", "method", "metric"], key=lambda s: s.map(order) if s.name == "metric" else s,
                           kind="stable").reset_index(drop=True)


def winners(frame: pd.DataFrame, metric: str, *, n_boot: int = 1000, seed: int = 0,
            methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Per dataset: the best method by ``metric`` (its direction), its mean, the runner-up and
    ``p_best``, the fraction of paired bootstrap resamples in which the winner is the best."""
    sign = direction(metric)
    if sign == 0:
        raise ValueError(f"{metric!r} has no better direction")
    rows = []
    for dataset, by_dataset in frame.groupby("dataset", sort=True):
        images = np.sort(by_dataset["image_id"].unique())
        weights = bootstrap_weights(images, n_boot, seed, dataset)
        names, means, boots = [], [], []
        for method, group in by_dataset.groupby("method", sort=True):
            if methods is not None and method not in methods:
                continue
            sums, counts = _image_sums(group, metric, images)
            if counts.sum() == 0:
                continue
            names.append(method)
            means.append(sums.sum() / counts.sum())
            with np.errstate(invalid="ignore", divide="ignore"):
                boots.append((weights @ sums) / (weights @ counts))
        if not names:
            continue
        scores = sign * np.array(means)
        order = np.argsort(-scores, kind="stable")
        best = order[0]
        boot = sign * np.vstack(boots)  # (methods, n_boot)
        boot = np.where(np.isnan(boot), -np.inf, boot)
        p_best = float(np.mean(np.argmax(boot, axis=0) == best)) if boot.shape[1] else math.nan
        runner = order[1] if len(order) > 1 else None
        rows.append({
            "dataset": dataset, "metric": metric, "best": names[best], "mean": means[best], "p_best": p_best,
            "runner_up": None if runner is None else names[runner],
            "runner_up_mean": math.nan if runner is None else means[runner], "images": len(images),
        })
    return pd.DataFrame(rows, columns=["dataset", "metric", "best", "mean", "p_best", "runner_up", "runner_up_mean",
                                       "images"])


def paired_difference(frame: pd.DataFrame, method_a: str, method_b: str, metric: str = "IoU", *, n_boot: int = 10000,
                      seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per dataset: mean(``metric``, a) − mean(``metric``, b) over masks, with a paired bootstrap over images.

    Both methods are scored on the same masks; each resample draws images with replacement and
    recomputes both means on the same draw, so the interval reflects the spread of the difference,
    not of each method. ``p_two_sided`` is twice the smaller share of resamples on either side of 0
    (at most 1; with ``n_boot`` resamples its resolution is 1/``n_boot``)."""
    rows = []
    alpha = (1.0 - level) / 2.0
    for dataset, by_dataset in frame.groupby("dataset", sort=True):
        a = by_dataset[by_dataset["method"] == method_a]
        b = by_dataset[by_dataset["method"] == method_b]
        if a.empty or b.empty:
            continue
        keys_a = set(zip(a["image_id"], a["mask_id"]))
        if keys_a != set(zip(b["image_id"], b["mask_id"])):
            raise ValueError(f"{dataset}: {method_a} and {method_b} were not scored on the same masks")
        images = np.sort(by_dataset["image_id"].unique())
        weights = bootstrap_weights(images, n_boot, seed, f"paired|{dataset}")
        sums_a, counts_a = _image_sums(a, metric, images)
        sums_b, counts_b = _image_sums(b, metric, images)
        diff = sums_a.sum() / counts_a.sum() - sums_b.sum() / counts_b.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (weights @ sums_a) / (weights @ counts_a) - (weights @ sums_b) / (weights @ counts_b)
        boot = boot[np.isfinite(boot)]
        lo, hi = np.quantile(boot, [alpha, 1.0 - alpha]) if boot.size else (math.nan, math.nan)
        p = min(1.0, 2.0 * min(np.mean(boot <= 0.0), np.mean(boot >= 0.0))) if boot.size else math.nan
        rows.append({"dataset": dataset, "metric": metric, "method_a": method_a, "method_b": method_b,
                     "mean_a": sums_a.sum() / counts_a.sum(), "mean_b": sums_b.sum() / counts_b.sum(),
                     "difference": diff, "lo": float(lo), "hi": float(hi), "p_two_sided": float(p),
                     "images": len(images), "masks": int(counts_a.sum())})
    return pd.DataFrame(rows, columns=["dataset", "metric", "method_a", "method_b", "mean_a", "mean_b", "difference",
                                       "lo", "hi", "p_two_sided", "images", "masks"])


def describe_difference(table: pd.DataFrame, *, decimals: int = 3) -> str:
    """Sentences generated from a ``paired_difference`` table: where a beats b, where b beats a, and
    where the interval contains 0."""
    if table.empty:
        return "No dataset has results for both methods."
    a, b, metric = table["method_a"].iloc[0], table["method_b"].iloc[0], label(table["metric"].iloc[0])
    better = table[table["lo"] > 0]["dataset"].tolist()
    worse = table[table["hi"] < 0]["dataset"].tolist()
    unclear = table[(table["lo"] <= 0) & (table["hi"] >= 0)]["dataset"].tolist()
    pooled = table["difference"].mean()
    parts = [f"{metric} of {a} minus {b}, mean over datasets {pooled:+.{decimals}f}."]
    parts.append(f"{a} is better (95 % interval above 0) on {len(better)} of {len(table)} datasets"
                 + (f" ({', '.join(better)})" if better else "") + ";")
    parts.append(f"{b} is better on {len(worse)}" + (f" ({', '.join(worse)})" if worse else "") + ";")
    parts.append(f"the interval contains 0 on {len(unclear)}" + (f" ({', '.join(unclear)})" if unclear else "") + ".")
    return " ".join(parts)


def per_dataset_table(summary: pd.DataFrame, methods: Sequence[str], datasets: Sequence[str],
                      metrics: Sequence[str] = ("IoU", "BIoU_2")) -> pd.DataFrame:
    """The paper's Table 1 layout: one row per method, a column per dataset and metric, then the
    unweighted mean over the datasets (each dataset's mean over its masks)."""
    stats = summary.set_index(["dataset", "method", "metric"])["mean"]
    rows = []
    for method in methods:
        row = {"method": method}
        for metric in metrics:
            values = []
            for dataset in datasets:
                value = stats.get((dataset, method, metric), math.nan)
                row[f"{dataset} {label(metric)}"] = value
                values.append(value)
            row[f"mean {label(metric)}"] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        rows.append(row)
    columns = ["method"] + [f"{d} {label(m)}" for m in metrics for d in datasets] + [f"mean {label(m)}" for m in metrics]
    return pd.DataFrame(rows, columns=columns)


def describe_winners(table: pd.DataFrame, *, decimals: int = 3) -> str:
    """Sentences generated from a ``winners`` table: who wins where, and how clearly."""
    if table.empty:
        return "No results to compare."
    metric = table["metric"].iloc[0]
    lines = []
    counts = table["best"].value_counts()
    top = counts.index[0]
    datasets = table.loc[table["best"] == top, "dataset"].tolist()
    lines.append(f"By {label(metric)}, {top} is the best method on {len(datasets)} of {len(table)} datasets "
                 f"({', '.join(datasets)}).")
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


# ------------------------------------------------------------------------------------------ tables

def wide_table(summary: pd.DataFrame, metrics: Sequence[str], *, decimals: int = 3,
               with_ci: bool = True) -> pd.DataFrame:
    """One row per (dataset, method), one column per metric: ``mean [lo, hi]`` strings."""
    def cell(row) -> str:
        if math.isnan(row["mean"]):
            return "–"
        text = f"{row['mean']:.{decimals}f}"
        if with_ci and not math.isnan(row["lo"]):
            text += f" [{row['lo']:.{decimals}f}, {row['hi']:.{decimals}f}]"
        return text

    part = summary[summary["metric"].isin(metrics)].copy()
    part["cell"] = part.apply(cell, axis=1)
    table = part.pivot(index=["dataset", "method"], columns="metric", values="cell")
    return table[[m for m in metrics if m in table.columns]].reset_index().rename(columns=LABELS)


def numeric_table(summary: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, lo, hi of each metric as numeric columns ``<metric>``, ``<metric>_lo``, ``<metric>_hi``."""
    part = summary[summary["metric"].isin(metrics)]
    pieces = []
    for suffix, column in (("", "mean"), ("_lo", "lo"), ("_hi", "hi")):
        wide = part.pivot(index=["dataset", "method"], columns="metric", values=column)
        pieces.append(wide[[m for m in metrics if m in wide.columns]].add_suffix(suffix))
    table = pd.concat(pieces, axis=1)
    ordered = [f"{m}{s}" for m in metrics for s in ("", "_lo", "_hi") if f"{m}{s}" in table.columns]
    masks = part.groupby(["dataset", "method"])["masks"].max().rename("masks")
    images = part.groupby(["dataset", "method"])["images"].max().rename("images")
    return pd.concat([table[ordered], masks, images], axis=1).reset_index()


def to_markdown(table: pd.DataFrame, *, floatfmt: str = ".4f") -> str:
    """A GitHub Markdown table (no extra dependency)."""
    def fmt(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "–" if math.isnan(value) else format(value, floatfmt)
        return str(value).replace("|", "\\|")

    head = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem, *, markdown: pd.DataFrame | None = None, floatfmt: str = ".4f",
                title: str | None = None, note: str | None = None) -> list:
    """Write ``<stem>.csv`` (``table``, numbers with 6 significant digits) and ``<stem>.md`` (``markdown``,
    default the same table, under ``title`` and followed by ``note``); returns both paths."""
    from pathlib import Path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv = stem.with_suffix(".csv")
    table.to_csv(csv, index=False, float_format="%.6g", na_rep="nan", lineterminator="\n")
    md = stem.with_suffix(".md")
    text = (f"# {title}\n\n" if title else "") + to_markdown(table if markdown is None else markdown, floatfmt=floatfmt)
    if note:
        text += "\n" + note.rstrip() + "\n"
    md.write_text(text, encoding="utf-8")
    return [csv, md]


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
    where = f" ({', '.join(held)})" if held else ""
    return (f"{claim}; here, by {metric}, {' or '.join(variants)} is the best of the {len(evaluated)} methods on "
            f"{len(held)} of {len(table)} datasets{where}.")


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


def describe_combinations(table: pd.DataFrame) -> str:
    """Generated sentences: on how many datasets each combination beats its best component."""
    if table.empty:
        return "No combination was evaluated together with its components."
    lines = []
    for (name, metric), group in table.groupby(["combination", "metric"], sort=True):
        wins = group.loc[group["gain"] > 0, "dataset"].tolist()
        lines.append(f"{name} beats its best component by {label(metric)} on {len(wins)} of {len(group)} datasets"
                     + (f" ({', '.join(wins)})" if wins else "") + f"; mean gain {group['gain'].mean():+.3f}.")
    return "\n".join(lines)
