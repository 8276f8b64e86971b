"""The best method per dataset, on the masks every compared method scored.

``winners`` restricts the rows to the common masks of the compared methods for the metric
(``aggregation.common_masks``: a mask that one method could not score, e.g. an AUROC without a
misclassified pixel, is left out for every method), ranks the methods by their mean over those
masks and reports ``p_best``, the share of paired bootstrap resamples (over images) in which the
winner stays the best.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .aggregation import bootstrap_weights, common_masks, direction, image_sums, resampled_means

WINNER_COLUMNS = ["dataset", "metric", "best", "mean", "p_best", "runner_up", "runner_up_mean", "images", "masks",
                  "undefined_resamples"]


def winners(frame: pd.DataFrame, metric: str, *, n_boot: int = 1000, seed: int = 0,
            methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Per dataset: the best method by ``metric`` (its direction) on the common masks, its mean, the
    runner-up and ``p_best`` (module docstring)."""
    sign = direction(metric)
    if sign == 0:
        raise ValueError(f"{metric!r} has no better direction")
    compared = frame if methods is None else frame[frame["method"].isin(methods)]
    rows = []
    for dataset, by_dataset in compared.groupby("dataset", sort=True):
        common = common_masks(by_dataset, metric)
        if common.empty:
            continue
        images = np.sort(by_dataset["image_id"].unique())
        weights = bootstrap_weights(images, n_boot, seed, dataset)
        names, means, boots = [], [], []
        for method, group in common.groupby("method", sort=True):
            sums, counts = image_sums(group, metric, images)
            names.append(method)
            means.append(sums.sum() / counts.sum())
            boots.append(resampled_means(sums, counts, weights))
        order = np.argsort(-sign * np.array(means), kind="stable")
        best = order[0]
        stacked = sign * np.vstack(boots)
        # a resample in which some method has no value (it drew no common mask) decides nothing: counted,
        # and p_best is the share of the defined resamples
        defined = np.isfinite(stacked).all(axis=0)
        p_best = float(np.mean(np.argmax(stacked[:, defined], axis=0) == best)) if defined.any() else math.nan
        runner = order[1] if len(order) > 1 else None
        rows.append({
            "dataset": dataset, "metric": metric, "best": names[best], "mean": means[best], "p_best": p_best,
            "runner_up": None if runner is None else names[runner],
            "runner_up_mean": math.nan if runner is None else means[runner], "images": len(images),
            "masks": int(len(common) // max(1, len(names))), "undefined_resamples": int((~defined).sum()),
        })
    return pd.DataFrame(rows, columns=WINNER_COLUMNS)
