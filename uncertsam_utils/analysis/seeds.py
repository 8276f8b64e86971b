"""Methods trained with several seeds: their spread, and comparisons that count both sources of variation.

A trained method (a fusion module, the variance head) evaluated with S seeds has two sources of
variation in any comparison: the test images (another sample of images would move every mean) and
the training seeds (retraining would move the method). Images and seeds are **crossed**: every seed's
method is scored on the same masks. For two methods a and b (either may be unseeded, e.g. the baseline,
and is then the same for every seed; seeded a and b are paired by seed: the same init and data stream):

* ``D_s``: the mean over datasets of the mean over masks of a_s − b_s; ``D`` = mean over seeds of D_s;
* ``SE_seed`` = sd_s(D_s) / √S: the training seeds' part, on the fixed test images;
* ``SE_img``: the sd of D over a bootstrap of images within each dataset (masks of an image move
  together), every seed kept and the same draw for all seeds: the images' part;
* the **interval** is D ± t_df √(SE_seed² + SE_img²) with Welch–Satterthwaite's df (the seed part has
  S − 1 degrees of freedom, the image part #images − #datasets): with 3 seeds a bootstrap over seeds
  has only 10 distinct draws and is too narrow, the t interval is honest about it. The **crossed
  bootstrap** (seeds and images resampled together, percentile interval) is reported beside it;
* the **dominant source** is the larger of SE_seed and SE_img;
* when a and b predict identically on every mask of every seed (e.g. two untrained fusion modules,
  which are mask-prompt refinement of the same first pass) the difference is **identical by
  construction**: D = 0 with no interval to compute.

``crossed_table`` writes this as a Δ table of the comparisons' layout (one row per dataset, paired
crossed bootstrap within the dataset and Holm's correction across them; the ``mean`` row from the
interval above), so the scorecard's claim rules read it like any other Δ table.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..seeds import split_seeded

KEYS = ["dataset", "image_id", "mask_id"]
MEAN_ROW = "mean"
DELTA_COLUMNS = ["dataset", "metric", "method_a", "method_b", "mean_a", "mean_b", "difference", "lo", "hi",
                 "p_two_sided", "p_holm", "significant", "images", "masks"]


def seed_groups(names: Iterable[str]) -> dict[str, list[str]]:
    """``{method: [its seeded names, by seed]}`` of the seeded names among ``names`` (plain names left out)."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        method, seed = split_seeded(name)
        if seed is not None:
            groups.setdefault(method, []).append((seed, name))
    return {method: [name for _, name in sorted(items)] for method, items in groups.items()}


def dataset_means(results: pd.DataFrame, names: Sequence[str], metric: str) -> pd.DataFrame:
    """Mean over masks per (method, dataset): rows ``names``, columns the datasets (NaN skipped)."""
    rows = results[results["method"].isin(names)]
    table = rows.groupby(["method", "dataset"])[metric].mean().unstack("dataset")
    return table.reindex(list(names))


def seed_spread(results: pd.DataFrame, groups: Mapping[str, Sequence[str]], metric: str,
                datasets: Sequence[str]) -> pd.DataFrame:
    """Per group: the per-dataset means averaged over its seeds, and the mean over the datasets with its
    mean, sd, min and max over seeds (``seeds`` of them; sd NaN for one seed)."""
    rows = []
    for label, names in groups.items():
        means = dataset_means(results, names, metric).reindex(columns=list(datasets))
        per_seed = means.mean(axis=1)
        row = {"method": label, "seeds": len(names), **means.mean(axis=0).to_dict(),
               "mean": float(per_seed.mean()), "sd": float(per_seed.std(ddof=1)) if len(names) > 1 else math.nan,
               "min": float(per_seed.min()), "max": float(per_seed.max()),
               "per seed": ", ".join(f"{v:.4f}" for v in per_seed)}
        rows.append(row)
    return pd.DataFrame(rows)


def seed_mean_rows(results: pd.DataFrame, groups: Mapping[str, Sequence[str]], metrics: Sequence[str]) -> pd.DataFrame:
    """Per-mask rows of each group (``method`` = its label): each metric averaged over the seeds, on the
    masks every seed scored (the seed-averaged row of a table or figure)."""
    out = []
    for label, names in groups.items():
        rows = results[results["method"].isin(names)]
        counts = rows.groupby(KEYS)["method"].nunique()
        complete = counts[counts == len(names)].index
        mean = rows.groupby(KEYS)[list(metrics)].mean().loc[complete].reset_index()
        out.append(mean.assign(method=label))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=KEYS + ["method", *metrics])


# --------------------------------------------------------------------------------- the crossed test

class _Layout:
    """Per-mask differences of the seeds, summed per image: what every resample reweights."""

    def __init__(self, results: pd.DataFrame, a: Sequence[str], b: Sequence[str], metric: str):
        if len(a) == 1 and len(b) > 1:  # an unseeded a against a seeded b: a is the same for every seed
            a = list(a) * len(b)
        if len(b) not in (1, len(a)):
            raise ValueError("b has one name (unseeded) or one per seed of a")
        b = list(b) * len(a) if len(b) == 1 else list(b)
        frames = []
        for index, (name_a, name_b) in enumerate(zip(a, b)):
            va = results.loc[results["method"] == name_a, KEYS + [metric]]
            vb = results.loc[results["method"] == name_b, KEYS + [metric]]
            both = va.merge(vb, on=KEYS, suffixes=("_a", "_b"))
            both = both[np.isfinite(both[f"{metric}_a"]) & np.isfinite(both[f"{metric}_b"])]
            frames.append(both.assign(seed=index))
        merged = pd.concat(frames, ignore_index=True)
        common = merged.groupby(KEYS)["seed"].nunique()
        common = common[common == len(a)].index  # the masks every seed scored
        merged = merged.set_index(KEYS).loc[common].reset_index()
        if merged.empty:
            raise ValueError(f"no mask scored by both {a[0]} and {b[0]}")
        self.seeds = len(a)
        self.datasets = sorted(merged["dataset"].unique())
        merged["image"] = merged["dataset"] + ":" + merged["image_id"].astype(str)
        images = np.sort(merged["image"].unique())
        self.image_dataset = np.array([i.split(":", 1)[0] for i in images])
        index = pd.Index(images).get_indexer(merged["image"])
        diff = (merged[f"{metric}_a"] - merged[f"{metric}_b"]).to_numpy(np.float64)
        self.sums = np.zeros((self.seeds, len(images)))
        np.add.at(self.sums, (merged["seed"].to_numpy(), index), diff)
        self.counts = np.bincount(index[merged["seed"].to_numpy() == 0], minlength=len(images)).astype(np.float64)
        self.means_a = merged.groupby("dataset")[f"{metric}_a"].mean()
        self.means_b = merged.groupby("dataset")[f"{metric}_b"].mean()
        self.identical = bool((diff == 0).all())
        self.masks = merged[merged["seed"] == 0].groupby("dataset").size()
        self.images = pd.Series(self.image_dataset).value_counts()

    def statistic(self, image_weights: np.ndarray, seed_weights: np.ndarray, datasets=None) -> np.ndarray:
        """Mean over ``datasets`` of the weighted mean difference, per row of the weights (B,)."""
        per_image = seed_weights @ self.sums / seed_weights.sum(1, keepdims=True)  # (B, images)
        out = []
        for dataset in datasets or self.datasets:
            cols = self.image_dataset == dataset
            w = image_weights[:, cols]
            out.append((w * per_image[:, cols]).sum(1) / (w * self.counts[cols]).sum(1))
        return np.mean(out, axis=0)


def _image_draws(layout: _Layout, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.zeros((n_boot, layout.counts.size))
    for dataset in layout.datasets:
        cols = np.flatnonzero(layout.image_dataset == dataset)
        draws = rng.integers(0, cols.size, size=(n_boot, cols.size))
        for j in range(cols.size):
            np.add.at(weights, (np.arange(n_boot), cols[draws[:, j]]), 1.0)
    return weights


def _seed_draws(seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.zeros((n_boot, seeds))
    draws = rng.integers(0, seeds, size=(n_boot, seeds))
    for j in range(seeds):
        np.add.at(weights, (np.arange(n_boot), draws[:, j]), 1.0)
    return weights


def _p(boot: np.ndarray) -> float:
    far = min(np.count_nonzero(boot <= 0.0), np.count_nonzero(boot >= 0.0))
    return float(min(1.0, 2.0 * (1 + far) / (boot.size + 1)))


def crossed_difference(results: pd.DataFrame, a: Sequence[str], b: Sequence[str], metric: str = "IoU", *,
                       n_boot: int = 4000, seed: int = 0, level: float = 0.95) -> dict:
    """The crossed comparison of ``a`` (its names by seed) and ``b`` (by seed, or one unseeded name):
    the statistics of the module docstring as a dict."""
    layout = _Layout(results, a, b, metric)
    S = layout.seeds
    ones = np.ones((1, layout.counts.size))
    per_seed = np.array([layout.statistic(ones, np.eye(S)[[k]])[0] for k in range(S)])
    D = float(per_seed.mean())
    out = {"metric": metric, "seeds": S, "difference": D, "per_seed": per_seed.tolist(), "identical": layout.identical,
           "images": int(layout.images.sum()), "masks": int(layout.masks.sum()), "datasets": len(layout.datasets)}
    if layout.identical:
        return out | {"se_seed": 0.0, "se_img": 0.0, "dominant": "none", "lo": 0.0, "hi": 0.0, "df": math.nan,
                      "p": 1.0, "crossed_lo": 0.0, "crossed_hi": 0.0, "image_lo": 0.0, "image_hi": 0.0, "image_p": 1.0}
    rng = np.random.default_rng([seed, 0x73656564])
    image_w = _image_draws(layout, n_boot, rng)
    image_only = layout.statistic(image_w, np.ones((n_boot, S)))
    crossed = layout.statistic(image_w, _seed_draws(S, n_boot, rng))
    se_img = float(image_only.std(ddof=1))
    se_seed = float(per_seed.std(ddof=1) / math.sqrt(S)) if S > 1 else 0.0
    se = math.hypot(se_img, se_seed)
    df_img = layout.counts.size - len(layout.datasets)
    denominator = se_img ** 4 / max(df_img, 1) + (se_seed ** 4 / (S - 1) if S > 1 else 0.0)
    df = se ** 4 / denominator if denominator > 0 else float(df_img)
    half = stats.t.ppf(0.5 + level / 2, df) * se
    tail = (1 - level) / 2 * 100
    return out | {"se_seed": se_seed, "se_img": se_img, "dominant": "seeds" if se_seed > se_img else "images",
                  "lo": D - half, "hi": D + half, "df": df,
                  "p": float(2 * stats.t.sf(abs(D) / se, df)) if se > 0 else math.nan,
                  "crossed_lo": float(np.percentile(crossed, tail)), "crossed_hi": float(np.percentile(crossed, 100 - tail)),
                  "image_lo": float(np.percentile(image_only, tail)), "image_hi": float(np.percentile(image_only, 100 - tail)),
                  "image_p": _p(image_only)}


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def crossed_table(results: pd.DataFrame, a: Sequence[str], b: Sequence[str], metric: str = "IoU", *,
                  label_a: str | None = None, label_b: str | None = None, n_boot: int = 4000, seed: int = 0,
                  level: float = 0.95, alpha: float = 0.05) -> pd.DataFrame:
    """``crossed_difference`` as a Δ table (module docstring): per dataset the crossed bootstrap within it
    (Holm across the datasets), then the ``mean`` row with the t interval; extra columns ``seeds``,
    ``se_seed``, ``se_img``, ``dominant``, ``crossed_lo``, ``crossed_hi``, ``identical``."""
    summary = crossed_difference(results, a, b, metric, n_boot=n_boot, seed=seed, level=level)
    layout = _Layout(results, a, b, metric)
    label_a, label_b = label_a or split_seeded(a[0])[0], label_b or split_seeded(b[0])[0]
    rng = np.random.default_rng([seed, 0x64617461])
    image_w, seed_w = _image_draws(layout, n_boot, rng), _seed_draws(layout.seeds, n_boot, rng)
    ones = np.ones((1, layout.counts.size)), np.ones((1, layout.seeds))
    rows = []
    tail = (1 - level) / 2 * 100
    for dataset in layout.datasets:
        difference = float(layout.statistic(*ones, [dataset])[0])
        boot = layout.statistic(image_w, seed_w, [dataset])
        rows.append({"dataset": dataset, "mean_a": float(layout.means_a[dataset]),
                     "mean_b": float(layout.means_b[dataset]), "difference": difference,
                     "lo": difference if layout.identical else float(np.percentile(boot, tail)),
                     "hi": difference if layout.identical else float(np.percentile(boot, 100 - tail)),
                     "p_two_sided": 1.0 if layout.identical else _p(boot), "images": int(layout.images[dataset]),
                     "masks": int(layout.masks[dataset])})
    table = pd.DataFrame(rows)
    table["p_holm"] = _holm(table["p_two_sided"].to_numpy())
    mean = {"dataset": MEAN_ROW, "mean_a": table["mean_a"].mean(), "mean_b": table["mean_b"].mean(),
            "difference": summary["difference"], "lo": summary["lo"], "hi": summary["hi"],
            "p_two_sided": summary["p"], "p_holm": summary["p"], "images": summary["images"], "masks": summary["masks"]}
    table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
    table["significant"] = table["p_holm"] < alpha
    table = table.assign(metric=metric, method_a=label_a, method_b=label_b)[DELTA_COLUMNS]
    extras = {k: summary[k] for k in ("seeds", "se_seed", "se_img", "dominant", "crossed_lo", "crossed_hi", "identical")}
    return table.assign(**extras)


def describe_sources(table: pd.DataFrame, *, decimals: int = 4) -> str:
    """The seeds and the two sources of variation of a ``crossed_table`` (its mean row) in a few words;
    '' for a Δ table without seeds (e.g. from ``comparisons``)."""
    if "dominant" not in table.columns:
        return ""
    row = table[table["dataset"] == MEAN_ROW].iloc[0]
    seeds = f"{int(row['seeds'])} seed{'s' if row['seeds'] > 1 else ''}"
    if row["identical"]:
        return f"{seeds}; identical by construction on every mask (no interval to compute)"
    f = f".{decimals}f"
    return (f"{seeds}; SE over seeds {row['se_seed']:{f}}, over images {row['se_img']:{f}}: the {row['dominant']} "
            f"dominate; crossed bootstrap [{row['crossed_lo']:+{f}}, {row['crossed_hi']:+{f}}]")


def describe_crossed(summary: dict, label_a: str, label_b: str, *, decimals: int = 4) -> str:
    """One sentence: the difference, its interval and df, the crossed bootstrap, the dominant source."""
    metric = {"IoU": "mIoU", "BIoU_2": "mBIoU"}.get(summary["metric"], summary["metric"])
    seeds = f"{summary['seeds']} seed{'s' if summary['seeds'] > 1 else ''}"
    if summary["identical"]:
        return (f"{label_a} − {label_b} ({seeds}): identical by construction on every one of the {summary['masks']} "
                f"masks (Δ {metric} 0; no interval to compute)")
    f = f".{decimals}f"
    verdict = "above 0" if summary["lo"] > 0 else "below 0" if summary["hi"] < 0 else "includes 0"
    return (f"{label_a} − {label_b} ({seeds}, {summary['images']} images): Δ {metric} {summary['difference']:+{f}}, "
            f"95 % interval [{summary['lo']:+{f}}, {summary['hi']:+{f}}] (t, df {summary['df']:.1f}; {verdict}); "
            f"crossed bootstrap [{summary['crossed_lo']:+{f}}, {summary['crossed_hi']:+{f}}]; over images alone "
            f"[{summary['image_lo']:+{f}}, {summary['image_hi']:+{f}}]; the {summary['dominant']} dominate "
            f"(SE seeds {summary['se_seed']:.{decimals}f}, images {summary['se_img']:.{decimals}f})")


# ----------------------------------------------------------------------- training and selection

def selection_table(records: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """One row per (module, validated epoch) of the fusion modules' training records (``{label: [record
    per seed]}``): the validation loss and mIoU, the paired Δ val mIoU against the untrained module
    (epoch 0) over the fit/val masks with its standard error, and which epoch selection kept."""
    rows = []
    for label, group in records.items():
        for record in group:
            history = record["history"]
            start = next((np.asarray(r["val_ious"]) for r in history if r["epoch"] == 0 and "val_ious" in r), None)
            for row in history:
                ious = np.asarray(row.get("val_ious", []), dtype=np.float64)
                delta = ious - start if start is not None and ious.size == start.size else None
                rows.append({"variant": label, "regime": record.get("regime"), "seed": record["seed"],
                             "epoch": row["epoch"], "train loss": row.get("train_loss", math.nan),
                             "val loss": row["val_loss"], "val mIoU": row["val_miou"],
                             "Δ val mIoU vs epoch 0": math.nan if delta is None else float(delta.mean()),
                             "SE": math.nan if delta is None else float(delta.std(ddof=1) / math.sqrt(delta.size)),
                             "kept": row["epoch"] == record["best_epoch"],
                             "stopped early": bool(record.get("stopped_early")) and row["epoch"] == record["last_epoch"]})
    return pd.DataFrame(rows)


def describe_selection(table: pd.DataFrame, *, decimals: int = 4) -> str:
    """How many modules fit/val selection kept untrained, and what the trained epochs did on fit/val."""
    kept = table[table["kept"]]
    modules = len(kept)
    untrained = int((kept["epoch"] == 0).sum())
    trained = table[table["epoch"] > 0]["Δ val mIoU vs epoch 0"].dropna()
    text = (f"Fit/val selection kept the untrained module (epoch 0, mask-prompt refinement of the first pass) for "
            f"{untrained} of {modules} modules")
    if trained.size:
        text += (f"; the trained epochs moved the fit/val mIoU by {trained.min():+.{decimals}f} to "
                 f"{trained.max():+.{decimals}f} against epoch 0")
    better = kept[kept["epoch"] > 0]
    if len(better):
        text += f"; {len(better)} kept a trained epoch ({', '.join(f'{r.variant} seed {r.seed}: epoch {r.epoch}' for r in better.itertuples())})"
    return text + "."


def _verdict(summary: dict) -> str:
    if summary["identical"]:
        return "identical by construction"
    if summary["lo"] > 0:
        return "higher"
    if summary["hi"] < 0:
        return "lower"
    return "no difference detectable"


def _row(spread: pd.DataFrame, label: str, decimals: int) -> str:
    row = spread.loc[label]
    sd = "" if row["seeds"] < 2 else f" ± {row['sd']:.{decimals}f} (sd over {int(row['seeds'])} seeds)"
    return f"{row['mean']:.{decimals}f}{sd}"


def describe_refinement(spread: pd.DataFrame, tests: Mapping[tuple, dict], selection_text: str = "", *,
                        decimals: int = 4) -> str:
    """Notebook 07's summary: the selection, each fused row against mask-prompt and the baseline, the
    ones-map test on the selected and the trained modules, and the click against the box regime, from
    ``seed_spread`` (mean mIoU, indexed by row label) and ``crossed_difference`` results keyed (a, b)."""
    lines = [selection_text] if selection_text else []
    for row in [r for r in spread.index if r.startswith("fusion-")]:
        parts = [f"{b}: {_verdict(tests[row, b])}, Δ {tests[row, b]['difference']:+.{decimals}f} "
                 f"[{tests[row, b]['lo']:+.{decimals}f}, {tests[row, b]['hi']:+.{decimals}f}]"
                 for b in ("mask-prompt", "baseline") if (row, b) in tests]
        lines.append(f"`{row}`: mean mIoU {_row(spread, row, decimals)}" + (f"; against {'; against '.join(parts)}"
                                                                               if parts else ""))
    for a, b, which in (("fusion-laplace", "fusion-ones", "selected"),
                        ("fusion-laplace (trained)", "fusion-ones (trained)", "trained (last epoch)")):
        if (a, b) in tests:
            lines.append(f"The ones-map test on the {which} modules: " + describe_crossed(tests[a, b], a, b, decimals=decimals))
    click, trained = "fusion-laplace (click, trained)", "fusion-laplace (trained)"
    if click in spread.index and trained in spread.index:
        lines.append(f"Regimes: the paper's click regime gives {click} {_row(spread, click, decimals)} against "
                     f"{_row(spread, trained, decimals)} for the box regime's trained modules "
                     f"(Δ {spread.loc[click, 'mean'] - spread.loc[trained, 'mean']:+.{decimals}f} mean mIoU)")
    return "\n".join(f"- {line.rstrip('.')}." for line in lines)


__all__ = ["crossed_difference", "crossed_table", "dataset_means", "describe_crossed", "describe_sources", "seed_groups",
           "seed_mean_rows", "seed_spread", "selection_table", "describe_selection", "describe_refinement"]
