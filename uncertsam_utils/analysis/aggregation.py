"""Aggregation of the evaluation CSVs: means over masks with bootstrap intervals over images.

A dataset's score is the **mean over its masks** (the paper's aggregation, NaN skipped). Its
uncertainty is estimated by a **bootstrap over images** (the masks of one image are not
independent): images are resampled with replacement and the mean over the masks of the resampled
images recomputed; the percentile interval is reported. The resamples of a dataset are drawn once
from a generator seeded by (seed, dataset) and shared by every method and metric of that dataset
(a paired bootstrap), so that methods can be compared resample by resample.

The **mean over datasets** (each dataset's mean over its masks, datasets weighted equally) gets its
interval from the same resamples: resample b of the mean is the mean of the datasets' resample b
(the datasets are resampled independently). A method that misses a dataset the others have is an
error unless ``allow_missing``; the row then says over how many datasets it averages.
"""

from __future__ import annotations

import hashlib
import math
from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import EXTRA_COLUMNS, PAPER_COLUMNS

HIGHER_IS_BETTER = frozenset({
    "IoU", "dice", "acc", "prec", "rec", "F1", "IoU_", "dice_", "acc_", "prec_", "rec_", "F1_", "BIoU_2", "BIoU_1",
    "pearson", "pearson_", "spearman", "spearman_", "auroc", "auroc_", "aupr", "aupr_",
    "pearson_shared", "pearson_shared_", "spearman_shared", "spearman_shared_",
})
LOWER_IS_BETTER = frozenset({"MAE", "BER", "MAE_", "BER_", "ECE", "ECE_", "brier", "brier_", "ause", "ause_"})
# Uncertainty metrics in table order: correlation (own error, then the shared target), error
# detection, calibration, map statistics.
UNCERTAINTY_METRICS = (
    "pearson", "pearson_", "spearman", "spearman_", "pearson_shared", "pearson_shared_", "spearman_shared",
    "spearman_shared_", "auroc", "auroc_", "aupr", "aupr_", "ause", "ause_",
    "ECE", "ECE_", "brier", "brier_", "sharp", "sharp_", "avg_sample_std", "avg_sample_std_",
)
LABELS = {
    "pearson": "Pearson ρ", "pearson_": "Pearson ρ (ROI)", "spearman": "Spearman ρ", "spearman_": "Spearman ρ (ROI)",
    "pearson_shared": "Pearson ρ, shared target", "pearson_shared_": "Pearson ρ, shared target (ROI)",
    "spearman_shared": "Spearman ρ, shared target", "spearman_shared_": "Spearman ρ, shared target (ROI)",
    "auroc": "AUROC", "auroc_": "AUROC (ROI)", "aupr": "AUPR", "aupr_": "AUPR (ROI)", "ause": "AUSE",
    "ause_": "AUSE (ROI)", "IoU": "mIoU", "BIoU_2": "mBIoU (0.02)", "BIoU_1": "mBIoU (0.01)",
}
ACCURACY_METRICS = PAPER_COLUMNS[:18]  # IoU … F1_, BIoU_2, BIoU_1
# every scalar column has a table (the curve columns are drawn, not tabulated)
assert set(UNCERTAINTY_METRICS) | set(ACCURACY_METRICS) == set(PAPER_COLUMNS) | set(EXTRA_COLUMNS)


def direction(metric: str) -> int:
    """+1 when higher is better, −1 when lower is better, 0 for descriptive statistics (sharp, std)."""
    return 1 if metric in HIGHER_IS_BETTER else -1 if metric in LOWER_IS_BETTER else 0


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def rng_for(seed: int, *keys) -> np.random.Generator:
    """A numpy generator seeded by ``seed`` and the keys (dataset names, purposes)."""
    text = "|".join(str(k) for k in (seed, *keys))
    return np.random.default_rng(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))


def image_means(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (dataset, method, image_id): the mean over the image's masks of each metric."""
    keys = ["dataset", "method", "image_id"]
    return frame.groupby(keys, sort=True)[list(metrics)].mean().reset_index()


def image_sums(frame: pd.DataFrame, metric: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    return rng_for(seed, "bootstrap", dataset, n).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def resampled_means(sums: np.ndarray, counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean over masks in each resample (NaN where a resample drew no valued mask)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ sums) / (weights @ counts)


def undefined_resamples(boot: np.ndarray) -> int:
    """How many resamples have no value (they drew no scored mask): counted and reported in the tables'
    ``undefined_resamples`` column, never dropped silently."""
    return int(np.count_nonzero(~np.isfinite(boot)))


def percentile_interval(boot: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite resamples (NaN, NaN when there are none); the resamples left
    out are counted by ``undefined_resamples``."""
    boot = boot[np.isfinite(boot)]
    if not boot.size:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _cells(frame: pd.DataFrame, metrics: Sequence[str], n_boot: int, seed: int):
    """Per dataset, method and metric (sorted): the rows of the method, the per-image sums and counts of
    the metric over the dataset's images, and the dataset's shared bootstrap weights."""
    for dataset, by_dataset in frame.groupby("dataset", sort=True):
        images = np.sort(by_dataset["image_id"].unique())
        weights = bootstrap_weights(images, n_boot, seed, dataset)
        for method, group in by_dataset.groupby("method", sort=True):
            for metric in metrics:
                sums, counts = image_sums(group, metric, images)
                yield dataset, method, metric, group, sums, counts, weights


def summarise(frame: pd.DataFrame, metrics: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> pd.DataFrame:
    """Long table: dataset, method, metric, mean (over masks), lo, hi (bootstrap percentile interval
    over images), masks (non-NaN values), images. Sorted by dataset, method, metric order."""
    rows = []
    for dataset, method, metric, group, sums, counts, weights in _cells(frame, metrics, n_boot, seed):
        total = counts.sum()
        mean = sums.sum() / total if total > 0 else math.nan
        boot = resampled_means(sums, counts, weights) if total > 0 and n_boot > 0 else np.full(0, math.nan)
        lo, hi = percentile_interval(boot, level) if boot.size else (math.nan, math.nan)
        rows.append({"dataset": dataset, "method": method, "metric": metric, "mean": mean,
                     "lo": lo, "hi": hi, "masks": int(total), "images": int(group["image_id"].nunique()),
                     "undefined_resamples": undefined_resamples(boot)})
    out = pd.DataFrame(rows, columns=["dataset", "method", "metric", "mean", "lo", "hi", "masks", "images",
                                      "undefined_resamples"])
    order = {m: i for i, m in enumerate(metrics)}
    return out.sort_values(["dataset", "method", "metric"], key=lambda s: s.map(order) if s.name == "metric" else s,
                           kind="stable").reset_index(drop=True)


def dataset_mean_summary(frame: pd.DataFrame, metrics: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
                         level: float = 0.95, allow_missing: bool = False) -> pd.DataFrame:
    """Per method and metric: the unweighted mean over datasets of the dataset means, with the
    bootstrap interval of that mean (module docstring); columns method, metric, mean, lo, hi, datasets."""
    datasets = sorted(frame["dataset"].unique())
    present = frame.groupby("method")["dataset"].unique()
    for method, sets in present.items():
        if sorted(sets) != datasets and not allow_missing:
            raise ValueError(f"{method} has results on {len(sets)} of the {len(datasets)} datasets "
                             f"(missing: {sorted(set(datasets) - set(sets))}); pass allow_missing=True to "
                             "average over the datasets it has")
    parts: dict = {}  # (method, metric) -> ([dataset means], [resampled means])
    for _, method, metric, _, sums, counts, weights in _cells(frame, metrics, n_boot, seed):
        if counts.sum() == 0:
            continue
        means, boots = parts.setdefault((method, metric), ([], []))
        means.append(sums.sum() / counts.sum())
        boots.append(resampled_means(sums, counts, weights))
    rows = []
    for method in sorted(present.index):
        for metric in metrics:
            means, boots = parts.get((method, metric), ([], []))
            mean = float(np.mean(means)) if means else math.nan
            lo, hi = percentile_interval(np.mean(boots, axis=0), level) if boots and n_boot > 0 else (math.nan,) * 2
            rows.append({"method": method, "metric": metric, "mean": mean, "lo": lo, "hi": hi, "datasets": len(means)})
    return pd.DataFrame(rows, columns=["method", "metric", "mean", "lo", "hi", "datasets"])


def common_masks(frame: pd.DataFrame, metric: str | None = None, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of ``methods`` (default: all) restricted to the masks that every one of them scored
    (with a finite ``metric`` if given): comparisons and winners are computed on the same masks."""
    part = frame if methods is None else frame[frame["method"].isin(methods)]
    names = part["method"].unique()
    valid = part if metric is None else part[np.isfinite(part[metric].to_numpy(dtype=np.float64))]
    keys = ["dataset", "image_id", "mask_id"]
    counts = valid.groupby(keys, sort=False)["method"].nunique()
    shared = counts[counts == len(names)].index
    return valid.set_index(keys).loc[lambda f: f.index.isin(shared)].reset_index()[part.columns]
