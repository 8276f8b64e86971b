"""Reliability diagrams and risk–coverage curves, per domain with every method, from the CSVs' curve
columns (``metrics.CURVE_COLUMNS``).

Aggregation over the masks of a dataset weighs every mask equally, like the paper's means: the
reliability of bin k is Σ rel_y_k / Σ rel_frac_k (observed foreground share) against
Σ rel_p_k / Σ rel_frac_k (mean predicted probability), and the risk at coverage c is the mean over
masks of ``risk_cov_c`` (the misclassified share of the c % least uncertain pixels of the mask's image).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..metrics import RELIABILITY_BINS, RISK_COVERAGES
from .palette import evaluation_colour, method_marker

MIN_BIN_SHARE = 1e-4  # a bin holding less than this share of the average mask's pixels is not drawn


def reliability_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, method and bin: share (mean rel_frac), confidence and observed frequency."""
    rows = []
    for (dataset, method), group in frame.groupby(["dataset", "method"], sort=True):
        for k in range(RELIABILITY_BINS):
            share = group[f"rel_frac_{k}"].mean()
            conf = group[f"rel_p_{k}"].mean() / share if share > 0 else math.nan
            freq = group[f"rel_y_{k}"].mean() / share if share > 0 else math.nan
            rows.append({"dataset": dataset, "method": method, "bin": k, "share": share, "confidence": conf,
                         "frequency": freq})
    return pd.DataFrame(rows, columns=["dataset", "method", "bin", "share", "confidence", "frequency"])


def risk_coverage_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, method and coverage (%): the mean risk over masks."""
    rows = []
    for (dataset, method), group in frame.groupby(["dataset", "method"], sort=True):
        for c in RISK_COVERAGES:
            rows.append({"dataset": dataset, "method": method, "coverage": c, "risk": group[f"risk_cov_{c}"].mean()})
    return pd.DataFrame(rows, columns=["dataset", "method", "coverage", "risk"])


def _panels(count: int, columns: int = 4, size: float = 2.9):
    import matplotlib.pyplot as plt

    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns + 1.6, size * rows + 0.5), squeeze=False,
                             constrained_layout=True)
    for ax in axes.ravel()[count:]:
        ax.set_axis_off()
    return fig, axes.ravel()


def reliability_diagrams(frame: pd.DataFrame, *, datasets, methods, title: str | None = None):
    """One panel per domain, one curve per method (marker size ∝ √ share of the bin), the diagonal dashed."""
    table = reliability_table(frame[frame["method"].isin(methods) & frame["dataset"].isin(datasets)])
    fig, axes = _panels(len(datasets))
    for ax, dataset in zip(axes, datasets):
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=0.8)
        for method in methods:
            part = table[(table["dataset"] == dataset) & (table["method"] == method) & (table["share"] > MIN_BIN_SHARE)]
            colour = evaluation_colour(method, methods)
            ax.plot(part["confidence"], part["frequency"], color=colour, linewidth=1.0, alpha=0.9)
            ax.scatter(part["confidence"], part["frequency"], s=8 + 60 * np.sqrt(part["share"]), color=colour,
                       marker=method_marker(method), edgecolor="black", linewidth=0.3, label=method, zorder=3)
        ax.set(xlim=(0, 1), ylim=(0, 1), title=dataset)
        ax.set_xlabel("mean predicted p in bin", fontsize=8)
        ax.set_ylabel("observed foreground share", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6, loc="upper left", frameon=False)
    fig.suptitle(title or "Reliability diagrams (10 bins of p, masks weighted equally; marker area ∝ share of pixels)",
                 fontsize=10)
    return fig


def risk_coverage_curves(frame: pd.DataFrame, *, datasets, methods, title: str | None = None):
    """One panel per domain and one for the mean over domains: risk (misclassified share of the kept
    pixels, log scale) against coverage (the share of least uncertain pixels kept)."""
    table = risk_coverage_table(frame[frame["method"].isin(methods) & frame["dataset"].isin(datasets)])
    mean = table.groupby(["method", "coverage"], as_index=False)["risk"].mean().assign(dataset="mean over domains")
    fig, axes = _panels(len(datasets) + 1)
    for ax, dataset in zip(axes, [*datasets, "mean over domains"]):
        part_all = mean if dataset == "mean over domains" else table[table["dataset"] == dataset]
        for method in methods:
            part = part_all[part_all["method"] == method]
            ax.plot(part["coverage"], part["risk"].clip(lower=1e-6), color=evaluation_colour(method, methods),
                    marker=method_marker(method), markersize=3.5, linewidth=1.1, label=method)
        ax.set_yscale("log")
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("coverage (% of pixels kept, least uncertain first)", fontsize=7)
        ax.set_ylabel("risk: misclassified share", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
    axes[len(datasets)].legend(fontsize=6, loc="lower right", frameon=False)
    fig.suptitle(title or "Risk–coverage: the error rate of the pixels a method is most sure of (lower is better)",
                 fontsize=10)
    return fig
