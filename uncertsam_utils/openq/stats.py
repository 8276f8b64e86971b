"""Paired differences over images and training seeds (a crossed bootstrap), in the Δ-table format.

A trained method of notebook 09 is S modules (one per training seed), each scored on the same masks.
Its difference to another method varies with the test images and with the seeds, two crossed factors,
so both are resampled: per bootstrap draw, the images of each dataset with the weights of Table 1's
paired bootstrap (``analysis.bootstrap_weights``, the same draws) and the S seeds with replacement
(one seed draw per bootstrap draw, shared by every dataset: a seed's module is scored on all of them).
The difference of a draw is the mean over the drawn seeds of the seed's paired difference on the drawn
images (masks scored by both methods, finite, in every seed). A method without seeds (``baseline``,
``mask-prompt``) is the same for every seed; two seeded methods are paired seed by seed (the same
seed's data stream and init, the only difference being the method). With one seed the table equals
``analysis.paired_difference``'s (tested).

The table has ``analysis``' Δ columns (``dataset, metric, method_a, method_b, mean_a, mean_b,
difference, lo, hi, p_two_sided, p_holm, significant, images, masks``; Holm across the datasets, the
last row the mean over datasets) and: ``seeds``; ``sd_seed`` (the sd over seeds of the per-seed
difference); ``se_seed`` (its standard error, sd/√S) and ``se_image`` (the sd of the image-only
bootstrap, seeds fixed); ``dominant`` ("seeds" or "images": the larger of the two); ``identical``
(every mask's difference is exactly 0 in every seed: the methods predict alike by construction).
With S = 3 a seed resample has 10 distinct values, so the interval under-covers the seed variation;
``se_seed`` is reported beside it for that reason.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

KEYS = ["image_id", "mask_id"]
SEED_TAG = 0x73656564  # "seed": the seed draws, apart from the images'


def _seeds(rows: pd.DataFrame) -> list:
    if "seed" not in rows or rows["seed"].isna().all():
        return [None]
    return sorted(int(s) for s in rows["seed"].dropna().unique())


def _per_seed(frame: pd.DataFrame, a: str, b: str, metric: str, seeds: list) -> dict:
    """seed → (keys, a values, b values) on the masks finite for both methods in every seed."""
    def values(method: str, seed):
        rows = frame[frame["method"] == method]
        if seed is not None and "seed" in rows and not rows["seed"].isna().all():
            rows = rows[rows["seed"] == seed]
        return rows[KEYS + [metric]].drop_duplicates(KEYS)

    merged = {s: values(a, s).merge(values(b, s), on=KEYS, suffixes=("_a", "_b")) for s in seeds}
    common = None
    for table in merged.values():
        ok = table[np.isfinite(table[f"{metric}_a"]) & np.isfinite(table[f"{metric}_b"])][KEYS]
        common = ok if common is None else common.merge(ok, on=KEYS)
    return {s: t.merge(common, on=KEYS).sort_values(KEYS) for s, t in merged.items()}


def seed_draws(n_seeds: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_seeds) indices of the seeds drawn with replacement (one row per bootstrap draw)."""
    rng = np.random.default_rng([int(seed), SEED_TAG, int(n_seeds)])
    return rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def _dataset_row(frame, dataset, a, b, metric, seeds, draws, n_boot, seed, level):
    from ..analysis import bootstrap_weights

    per = _per_seed(frame, a, b, metric, seeds)
    first = next(iter(per.values()))
    if first.empty:
        return None, None
    images = np.sort(frame["image_id"].unique())
    index = np.searchsorted(images, first["image_id"].to_numpy())
    counts = np.bincount(index, minlength=len(images)).astype(np.float64)
    sums_a = np.stack([np.bincount(index, weights=t[f"{metric}_a"].to_numpy(), minlength=len(images)) for t in per.values()])
    sums_b = np.stack([np.bincount(index, weights=t[f"{metric}_b"].to_numpy(), minlength=len(images)) for t in per.values()])
    weights = bootstrap_weights(images, n_boot, seed, f"paired|{dataset}")
    den = weights @ counts
    per_draw = (weights @ (sums_a - sums_b).T) / den[:, None]  # (n_boot, S): each seed on the drawn images
    boot = np.take_along_axis(per_draw, draws, axis=1).mean(1)
    d_seed = (sums_a - sums_b).sum(1) / counts.sum()
    identical = all(np.array_equal(t[f"{metric}_a"].to_numpy(), t[f"{metric}_b"].to_numpy()) for t in per.values())
    row = {"dataset": dataset, "metric": metric, "method_a": a, "method_b": b,
           "mean_a": float(np.mean(sums_a.sum(1) / counts.sum())), "mean_b": float(np.mean(sums_b.sum(1) / counts.sum())),
           "difference": float(d_seed.mean()), "images": int(first["image_id"].nunique()), "masks": len(first),
           "seeds": len(seeds) if seeds != [None] else 0, "identical": identical, **_spread(d_seed, per_draw)}
    row.update(_interval(boot, level))
    return row, (boot, per_draw, d_seed)


def _spread(d_seed: np.ndarray, per_draw: np.ndarray) -> dict:
    sd = float(np.std(d_seed, ddof=1)) if len(d_seed) > 1 else 0.0
    se_seed = sd / math.sqrt(len(d_seed))
    se_image = float(np.std(per_draw.mean(1), ddof=1))
    return {"sd_seed": sd, "se_seed": se_seed, "se_image": se_image,
            "dominant": "seeds" if se_seed > se_image else "images"}


def _interval(boot: np.ndarray, level: float) -> dict:
    from ..analysis import bootstrap_p, percentile_interval

    lo, hi = percentile_interval(boot, level)
    return {"lo": lo, "hi": hi, "p_two_sided": bootstrap_p(boot)}


def seeded_difference(frame: pd.DataFrame, a: str, b: str, metric: str = "IoU", *, n_boot: int = 10000, seed: int = 0,
                      level: float = 0.95, alpha: float = 0.05) -> pd.DataFrame:
    """Per dataset and their mean: mean(``metric``, a) − mean(``metric``, b), crossed bootstrap over images
    and training seeds (module docstring)."""
    from ..analysis import holm

    seeds_a, seeds_b = _seeds(frame[frame["method"] == a]), _seeds(frame[frame["method"] == b])
    if seeds_a != [None] and seeds_b != [None] and seeds_a != seeds_b:
        raise ValueError(f"{a} has seeds {seeds_a}, {b} has {seeds_b}: seeded methods are paired seed by seed")
    seeds = seeds_a if seeds_a != [None] else seeds_b
    draws = seed_draws(len(seeds), n_boot, seed)
    rows, boots = [], []
    for dataset, by_dataset in frame.groupby("dataset", sort=True):
        row, boot = _dataset_row(by_dataset, dataset, a, b, metric, seeds, draws, n_boot, seed, level)
        if row is not None:
            rows.append(row)
            boots.append(boot)
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p_two_sided"])
    mean_boot, mean_per_draw, d_seed = (np.mean([part[k] for part in boots], axis=0) for k in range(3))
    mean = {**rows[0], "dataset": "mean", "mean_a": table["mean_a"].mean(), "mean_b": table["mean_b"].mean(),
            "difference": table["difference"].mean(), "images": int(table["images"].sum()),
            "masks": int(table["masks"].sum()), "identical": bool(table["identical"].all()),
            **_spread(d_seed, mean_per_draw), **_interval(mean_boot, level)}
    mean["p_holm"] = mean["p_two_sided"]
    table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
    table["significant"] = table["p_holm"] < alpha
    return table
