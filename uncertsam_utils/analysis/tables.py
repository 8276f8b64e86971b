"""Tables: the long summary as wide text or numeric tables, Markdown, and the files of ``tables/``."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .aggregation import LABELS, label


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


def per_dataset_table(summary: pd.DataFrame, methods: Sequence[str], datasets: Sequence[str],
                      metrics: Sequence[str] = ("IoU", "BIoU_2"), *, allow_missing: bool = False) -> pd.DataFrame:
    """The paper's Table 1 layout: one row per method, a column per dataset and metric, then the
    unweighted mean over the datasets (each dataset's mean over its masks). A dataset without a value
    makes the mean NaN unless ``allow_missing`` (then it is the mean over those present; the notebooks
    say so through ``evaluation.check_coverage``)."""
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
            defined = np.isfinite(values)
            row[f"mean {label(metric)}"] = (float(np.mean(values)) if defined.all() else
                                            float(np.mean(np.asarray(values)[defined])) if allow_missing and defined.any()
                                            else math.nan)
        rows.append(row)
    columns = ["method"] + [f"{d} {label(m)}" for m in metrics for d in datasets] + [f"mean {label(m)}" for m in metrics]
    return pd.DataFrame(rows, columns=columns)


def delta_display(delta: pd.DataFrame, *, decimals: int = 3) -> pd.DataFrame:
    """A Δ table (``comparisons``) as text: one row per method and metric, one column per dataset and
    the mean, each cell ``Δ [lo, hi]`` with ``*`` where Holm-significant."""
    def cell(row) -> str:
        if not np.isfinite(row["difference"]):
            return "–"
        star = "*" if bool(row["significant"]) else ""
        return f"{row['difference']:+.{decimals}f} [{row['lo']:+.{decimals}f}, {row['hi']:+.{decimals}f}]{star}"

    if delta.empty:
        return pd.DataFrame(columns=["method", "metric"])
    part = delta.assign(cell=delta.apply(cell, axis=1))
    datasets = [d for d in dict.fromkeys(part["dataset"]) if d != "mean"] + ["mean"]
    table = part.pivot_table(index=["method_a", "metric"], columns="dataset", values="cell", aggfunc="first", sort=False)
    table = table[[d for d in datasets if d in table.columns]].reset_index()
    table["metric"] = table["metric"].map(label)
    return table.rename(columns={"method_a": "method"})


def counts_note(counts: pd.DataFrame) -> str:
    """The sentence every table of an evaluation carries: per dataset, the images and masks it read,
    scored and skipped (``evaluation.load_counts``), then the skips by reason (none: said so)."""
    if counts.empty:
        raise ValueError("no evaluation counts: a table must say what it scored")
    per_dataset = "; ".join(
        f"{r.dataset} {r.images_scored} of {r.images_read} images ({r.images_skipped} skipped), "
        f"{r.masks_scored} of {r.masks_read} masks ({r.masks_skipped} skipped)" for r in counts.itertuples())
    reasons = []
    for side in ("images", "masks"):
        prefix = f"{side}_skipped_"
        for column in sorted(c for c in counts.columns if c.startswith(prefix)):
            total = int(counts[column].sum())
            if total:
                reasons.append(f"{side} {column[len(prefix):]}: {total}")
    why = f"Skipped by reason, over all datasets: {', '.join(reasons)}." if reasons else "Nothing was skipped."
    return f"Scored per dataset: {per_dataset}. {why}"
