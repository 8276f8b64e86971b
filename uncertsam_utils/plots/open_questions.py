"""Notebook 09's figure of one question (``analysis.open_questions.Question``): the methods' mIoU per seed,
and the question's differences per domain."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..openq.arms import REFERENCES

REFERENCE_STYLES = {"baseline": ":", "mask-prompt": "--", "untrained": "-."}


def _seed_means(results: pd.DataFrame, method: str, state: str) -> np.ndarray:
    rows = results[(results["method"] == method) & (results["state"] == state)]
    if rows.empty:
        return np.array([])
    return rows.groupby(["seed", "dataset"])["IoU"].mean().groupby("seed").mean().to_numpy()


def question_figure(question, results: pd.DataFrame, tests: pd.DataFrame, datasets, *, path=None):
    """Left: mean mIoU over the domains of each method, one point per training seed (filled: trained,
    hollow: selected), the references as lines. Right: the question's comparisons of the trained modules
    per domain and their mean, with 95 % intervals counting images and seeds (filled: Holm-significant)."""
    import matplotlib.pyplot as plt

    from .by_dataset import delta_panel
    from .palette import evaluation_colour, method_marker

    fig, (left, right) = plt.subplots(1, 2, figsize=(13.5, 4.6), gridspec_kw={"width_ratios": [1, 2.3]})
    methods = question.methods
    for i, method in enumerate(methods):
        colour = evaluation_colour(method, methods)
        for state, offset, hollow in (("trained", -0.12, False), ("selected", 0.12, True)):
            values = _seed_means(results, method, state)
            if values.size:
                left.scatter(np.full(values.size, i + offset), values, s=28, marker=method_marker(method),
                             facecolors="none" if hollow else colour, edgecolors=colour)
    for name in REFERENCES:
        rows = results[results["method"] == name]
        if not rows.empty:
            value = rows.groupby("dataset")["IoU"].mean().mean()
            left.axhline(value, color="0.35", linestyle=REFERENCE_STYLES[name], linewidth=0.9, label=f"{name} {value:.4f}")
    left.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
    left.set_ylabel("mIoU, mean over the domains")
    left.set_title("per seed: filled trained (last epoch),\nhollow selected on fit/val", fontsize=8.5)
    left.legend(fontsize=7, loc="best", frameon=False)
    trained = tests[tests["state"] == "trained"].copy()
    trained["method_a"] = trained["method_a"] + " − " + trained["method_b"]
    delta_panel(right, trained, "IoU", list(datasets), list(dict.fromkeys(trained["method_a"])),
                ylabel="Δ mIoU (trained modules)")
    right.axhline(0.0, color="0.5", linewidth=0.8)
    right.set_title("differences per domain (crossed bootstrap over images and seeds, filled: Holm-significant)\n"
                    "and their mean (t interval of both standard errors)", fontsize=8.5)
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.suptitle(f"Q{question.number} · {question.title}", fontsize=11)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130, bbox_inches="tight")
    return fig
