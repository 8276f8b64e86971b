"""The "What this shows" sentences of the notebooks without an evaluation (00–05, 08), generated from
the numbers each notebook computes (timings, statistics, per-domain map means, training curves, cost
ratios); notebooks 06 and 07 use the claim rows and ``sentences``."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd


NO_DISAGREEMENT = 1e-6  # nats of mutual information: below this the samples agree up to float rounding


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def describe_core(encode_seconds: float, decode_seconds: float, boxes: int, max_difference: float,
                  ious: Sequence[float]) -> str:
    """Notebook 00: the cost of encode-once / decode-all and the exactness of the Laplace internals."""
    ious = np.asarray(ious, dtype=float)
    return _bullets([
        f"One encoder pass took {1000 * encode_seconds:.0f} ms; decoding all {boxes} boxes in one decoder call took "
        f"{1000 * decode_seconds:.0f} ms ({100 * decode_seconds / encode_seconds:.0f} % of the encoder's time), "
        "which is why every method shares one encoding per image.",
        f"The Laplace internals rebuild the logits to within {max_difference:.1e} (max |Uᵀ(Wh + b) − logits|), so the "
        "posterior of the treated layer is exactly the posterior of the logits.",
        f"On this fit-domain scene the box prompts give a mean IoU of {ious.mean():.3f} (from {ious.min():.3f} to "
        f"{ious.max():.3f}).",
    ])


def describe_benchmark(stats: pd.DataFrame) -> str:
    """Notebook 01: sizes of the splits and how the test domains differ from the fit set."""
    test = stats[(stats["split"] == "test") & (stats["dataset"] != "fit")]
    fit = stats[stats["dataset"] == "fit"].set_index("split")
    lines = [f"{len(test)} test domains with {int(test['images'].sum())} test images and {int(test['masks'].sum())} "
             "masks in all" + (f"; the fit set has {', '.join(f'{int(r.images)} {s}' for s, r in fit.iterrows())} "
                               "images" if not fit.empty else "") + "."]
    if not test.empty:
        most, fewest = test.loc[test["masks_per_image"].idxmax()], test.loc[test["masks_per_image"].idxmin()]
        big, small = test.loc[test["mean_area_frac"].idxmax()], test.loc[test["mean_area_frac"].idxmin()]
        lines.append(f"Masks per image range from {fewest['masks_per_image']:.2f} ({fewest['dataset']}) to "
                     f"{most['masks_per_image']:.2f} ({most['dataset']}); the mean mask covers from "
                     f"{100 * small['mean_area_frac']:.1f} % ({small['dataset']}) to {100 * big['mean_area_frac']:.1f} % "
                     f"({big['dataset']}) of its image.")
    if "test" in fit.index and not test.empty:
        ref = fit.loc["test"]
        wider = test[test["mean_box_side_frac"] > ref["mean_box_side_frac"]]["dataset"].tolist()
        lines.append(f"Against the fit set's test split (mean box side {ref['mean_box_side_frac']:.3f} of the image, "
                     f"{ref['masks_per_image']:.2f} masks per image), {len(wider)} of {len(test)} domains have larger "
                     f"boxes{' (' + ', '.join(wider) + ')' if wider else ''}.")
    return _bullets(lines)


def describe_spread(table: pd.DataFrame, baseline: str, variants: Mapping[str, tuple[str, str]]) -> str:
    """Notebooks 02–03: per variant (label → (entropy column, MI column)) of a per-domain ``table`` (column
    ``domain``): the mean MI, where it is largest, domains with no disagreement at all, and on how many
    domains the variant's entropy exceeds the baseline's (``baseline``: its entropy column)."""
    lines = []
    for name, (entropy, mi) in variants.items():
        top = table.loc[table[mi].idxmax()]
        zero = table.loc[table[mi] < NO_DISAGREEMENT, "domain"].tolist()
        above = int((table[entropy] > table[baseline]).sum())
        line = (f"{name}: mean mutual information {table[mi].mean():.4f} nats over the {len(table)} domains, largest on "
                f"{top['domain']} ({top[mi]:.4f}); its entropy is above the baseline's on {above} of {len(table)} "
                f"domains (mean {table[entropy].mean():.4f} against {table[baseline].mean():.4f} nats).")
        if zero:
            line += f" No disagreement beyond rounding (MI < {NO_DISAGREEMENT:g} nats) on {', '.join(zero)}."
        lines.append(line)
    return _bullets(lines)


def describe_laplace_recipes(tau: Mapping[str, Sequence[float]], table: pd.DataFrame) -> str:
    """Notebook 04: the prior precisions and, per domain (``table``: domain, H laplace, H paper,
    sd laplace, sd paper), how the two recipes' entropies and logit standard deviations compare."""
    taus = "; ".join(f"{name}: τ = {', '.join(f'{t:.3g}' for t in values)}" for name, values in tau.items())
    higher = int((table["H paper"] > table["H laplace"]).sum())
    ratio = float(np.median(table["sd paper"] / table["sd laplace"].clip(lower=1e-12)))
    return _bullets([
        f"Prior precisions: {taus}.",
        f"The paper's recipe has the larger entropy on {higher} of {len(table)} domains (mean H {table['H paper'].mean():.4f} "
        f"against {table['H laplace'].mean():.4f} nats for the exact recipe).",
        f"Its median logit standard deviation √v is {ratio:.3g} times the exact recipe's (median over the domains' "
        "example objects): the posterior that drives the difference, not the predictive.",
    ])


def describe_varnet_training(history: pd.DataFrame, best_epoch: int) -> str:
    """Notebook 05: what the kept epoch reached on validation, against the baseline's entropy."""
    kept = history.loc[best_epoch]
    first = history.iloc[0]
    entropy = float(history["val_pearson_entropy"].iloc[-1])
    better = kept["val_pearson_variance"] > entropy
    return _bullets([
        f"Validation loss {first['val_loss']:.4f} after epoch {history.index[0]}, {kept['val_loss']:.4f} at the kept "
        f"epoch {best_epoch} of {len(history)}.",
        f"At that epoch the validation Pearson ρ with |y − p| is {kept['val_pearson']:.3f} for s (the paper's) and "
        f"{kept['val_pearson_variance']:.3f} for e^s, against {entropy:.3f} for the baseline's entropy: the variance "
        f"map {'correlates better than' if better else 'does not correlate better than'} the entropy of the prediction "
        "it explains, on the fit set's validation split.",
    ])


def describe_costs(table: pd.DataFrame) -> str:
    """Notebook 08: per model, the cheapest and dearest methods against the baseline, and where the time
    ratio exceeds the FLOP ratio most (overhead beyond inherent work)."""
    lines = []
    for model, part in table[table["method"] != "baseline"].groupby("model", sort=False):
        part = part.sort_values("ratio_to_baseline")
        cheap, dear = part.iloc[0], part.iloc[-1]
        line = (f"{model}: cheapest {cheap['method']} at {cheap['ratio_to_baseline']:.2f}× the baseline's time, "
                f"dearest {dear['method']} at {dear['ratio_to_baseline']:.2f}×")
        if "flop_ratio_to_baseline" in part and part["flop_ratio_to_baseline"].notna().any():
            excess = (part["ratio_to_baseline"] / part["flop_ratio_to_baseline"]).idxmax()
            row = part.loc[excess]
            line += (f"; the largest time-to-FLOP excess is {row['method']} ({row['ratio_to_baseline']:.2f}× time "
                     f"for {row['flop_ratio_to_baseline']:.2f}× FLOPs)")
        lines.append(line + ".")
    return _bullets(lines)
