"""Per-dataset figures: the Figure-3 analogue (per dataset, the mean over datasets, Δ against the
baseline with intervals) and any table of means with intervals drawn as a figure (Table 1)."""

from __future__ import annotations

import numpy as np

from .palette import evaluation_colour, method_marker


def _positions(count: int, index: int, centre: float, width: float = 0.8) -> float:
    step = width / max(1, count)
    return centre - width / 2 + step * (index + 0.5)


def _error_bar(ax, x, mean, lo, hi, colour, marker, label=None, *, size=6, hollow=False):
    err = None
    if np.isfinite(lo) and np.isfinite(hi):
        err = [[max(0.0, mean - lo)], [max(0.0, hi - mean)]]
    ax.errorbar([x], [mean], yerr=err, fmt=marker, color=colour, markeredgecolor="black",
                markerfacecolor="white" if hollow else colour, markersize=size, capsize=3, elinewidth=1.2, zorder=3,
                label=label)


def _dataset_axis(ax, datasets, *, zero_line=True):
    if zero_line:
        ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=1)
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets, rotation=20, ha="right")
    ax.set_xlim(-0.6, len(datasets) - 0.4)
    ax.grid(axis="y", alpha=0.3, which="both")


def metric_by_dataset(per_image, summary, metric: str = "pearson", *, datasets=None, methods=None, ax=None,
                      ylabel: str | None = None, title: str | None = None, seed: int = 0, log: bool = False,
                      legend: bool = True):
    """The Figure 3 style: per dataset, one column of points per method (one point per image: the mean
    of the metric over its masks, jittered), with the mean over masks and its bootstrap interval.
    ``log``: a log scale (for metrics that span decades, e.g. AUSE). Returns the figure."""
    import matplotlib.pyplot as plt

    datasets = list(datasets) if datasets is not None else sorted(per_image["dataset"].unique())
    methods = list(methods) if methods is not None else sorted(per_image["method"].unique())
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(datasets) + 0.12 * len(datasets) * len(methods) + 2), 4.5))
    else:
        fig = ax.figure
    rng = np.random.default_rng(seed)
    width = 0.8 / max(1, len(methods))
    stats = summary[summary["metric"] == metric].set_index(["dataset", "method"])
    for j, method in enumerate(methods):
        colour, marker = evaluation_colour(method, methods), method_marker(method)
        for i, dataset in enumerate(datasets):
            x = _positions(len(methods), j, i)
            rows = per_image[(per_image["dataset"] == dataset) & (per_image["method"] == method)]
            values = rows[metric].to_numpy(dtype=float)
            values = values[np.isfinite(values) & ((values > 0) if log else True)]
            if values.size:
                jitter = rng.uniform(-0.3, 0.3, values.size) * width
                ax.scatter(x + jitter, values, s=6, color=colour, alpha=0.35, linewidths=0, zorder=2)
            if (dataset, method) in stats.index:
                row = stats.loc[(dataset, method)]
                if np.isfinite(row["mean"]):
                    _error_bar(ax, x, row["mean"], row["lo"], row["hi"], colour, marker,
                               label=method if i == 0 else None)
    _dataset_axis(ax, datasets, zero_line=not log)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel or metric)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def means_panel(ax, mean_summary, metric: str, methods, *, log: bool = False, ylabel: str | None = None) -> None:
    """The mean over datasets per method with its interval (``analysis.dataset_mean_summary``)."""
    stats = mean_summary[mean_summary["metric"] == metric].set_index("method")
    for j, method in enumerate(methods):
        if method in stats.index:
            row = stats.loc[method]
            _error_bar(ax, j, row["mean"], row["lo"], row["hi"], evaluation_colour(method, methods),
                       method_marker(method), size=7)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=35, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.grid(axis="y", alpha=0.3, which="both")
    if log:
        ax.set_yscale("log")
    if ylabel:
        ax.set_ylabel(ylabel)


def delta_panel(ax, delta, metric: str, datasets, methods, *, ylabel: str | None = None) -> None:
    """Δ against the baseline per dataset (and the mean, last) with its interval; filled markers where
    Holm-significant, hollow where not (``analysis.delta_vs_baseline``)."""
    part = delta[delta["metric"] == metric]
    columns = [*datasets, "mean"]
    others = [m for m in methods if m in set(part["method_a"])]
    for j, method in enumerate(others):
        rows = part[part["method_a"] == method].set_index("dataset")
        for i, dataset in enumerate(columns):
            if dataset in rows.index:
                row = rows.loc[dataset]
                _error_bar(ax, _positions(len(others), j, i), row["difference"], row["lo"], row["hi"],
                           evaluation_colour(method, methods), method_marker(method), size=5,
                           hollow=not bool(row["significant"]), label=method if i == 0 else None)
    _dataset_axis(ax, columns)
    ax.axvline(len(datasets) - 0.5, color="0.5", linewidth=0.8, linestyle=":")
    ax.set_ylabel(ylabel or f"Δ {metric} vs baseline")


def figure3(per_image, summary, mean_summary, delta, metric: str = "pearson", *, datasets, methods,
            label: str | None = None, title: str | None = None, log: bool = False, seed: int = 0):
    """The Figure-3 analogue in three panels: per dataset (points per image, mean with interval), the
    mean over datasets with its interval, and Δ against the baseline with paired intervals (filled:
    Holm-significant across datasets)."""
    import matplotlib.pyplot as plt

    label = label or metric
    fig = plt.figure(figsize=(max(12.0, 1.3 * len(datasets) + 6), 8.2))
    grid = fig.add_gridspec(2, 2, width_ratios=[len(datasets) + 1, 3], height_ratios=[1.1, 1])
    ax_sets, ax_mean, ax_delta = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    metric_by_dataset(per_image, summary, metric, datasets=datasets, methods=methods, ax=ax_sets, ylabel=label,
                      seed=seed, log=log, legend=False)
    ax_sets.set_title("per dataset: one point per image, mean over masks with 95 % bootstrap interval", fontsize=9)
    means_panel(ax_mean, mean_summary, metric, methods, log=log, ylabel=label)
    ax_mean.set_title("mean over datasets", fontsize=9)
    delta_panel(ax_delta, delta, metric, datasets, methods, ylabel=f"Δ {label} (method − baseline)")
    ax_delta.set_title("Δ against the baseline, paired bootstrap over images; filled: Holm-significant across "
                       "datasets, hollow: not", fontsize=9)
    handles, labels = ax_sets.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def interval_figure(numeric, metric: str, *, datasets, methods, mean_summary=None, label: str | None = None,
                    title: str | None = None):
    """A table of means with intervals (``analysis.numeric_table``: <metric>, <metric>_lo, <metric>_hi per
    dataset and method) as a figure, with the mean over datasets as a last panel (from ``mean_summary``,
    else the plain mean of the dataset means without an interval). Table 1 of notebook 07."""
    import matplotlib.pyplot as plt

    fig, (ax, ax_mean) = plt.subplots(1, 2, figsize=(max(10.0, 1.2 * len(datasets) + 5), 4.6),
                                      gridspec_kw={"width_ratios": [len(datasets) + 1, 3]})
    index = numeric.set_index(["dataset", "method"])
    for j, method in enumerate(methods):
        for i, dataset in enumerate(datasets):
            if (dataset, method) in index.index:
                row = index.loc[(dataset, method)]
                _error_bar(ax, _positions(len(methods), j, i), row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"],
                           evaluation_colour(method, methods), method_marker(method), size=5,
                           label=method if i == 0 else None)
    _dataset_axis(ax, datasets, zero_line=False)
    ax.set_ylabel(label or metric)
    if mean_summary is None:
        import pandas as pd

        plain = numeric.groupby("method")[metric].mean()
        mean_summary = pd.DataFrame({"method": plain.index, "metric": metric, "mean": plain.values, "lo": np.nan,
                                     "hi": np.nan})
    means_panel(ax_mean, mean_summary, metric, methods, ylabel=label or metric)
    ax_mean.set_title("mean over datasets", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize=8, frameon=False)
    ax.set_title("per dataset: mean over masks with 95 % bootstrap interval over images", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
