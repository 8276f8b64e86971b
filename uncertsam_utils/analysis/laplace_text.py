"""Notebook 04's generated sentences: the collapse of the untempered posterior, the temperature chosen on
fit/val, the κ = N / T* check, and the recipes against the baseline and the temperature-scaled baseline.

Every number comes from the fitted posteriors' selection report, the fit/val table and the Δ table of
the test domains (one row per dataset and method: ``method``, ``difference``, ``lo``, ``hi``)."""

from __future__ import annotations

import pandas as pd

COLLAPSE_MARGIN = 0.01  # "collapses": the mean Δ Pearson ρ against the baseline within ±0.01 (as the scorecard's row)


def _delta_summary(delta: pd.DataFrame, method: str, decimals: int) -> str:
    rows = delta[(delta["method"] == method) & (delta["dataset"] != "mean")]
    if rows.empty:
        return f"{method}: not evaluated"
    up, down = int((rows["lo"] > 0).sum()), int((rows["hi"] < 0).sum())
    return (f"`{method}` {rows['difference'].mean():+.{decimals}f} (per domain {rows['difference'].min():+.{decimals}f} "
            f"to {rows['difference'].max():+.{decimals}f}; interval above 0 on {up} and below 0 on {down} of "
            f"{len(rows)} domains)")


def describe_tempering(selection: dict, fitval: pd.DataFrame, kappa: pd.DataFrame, delta: pd.DataFrame, *,
                       untempered_tau: float, decimals: int = 3) -> str:
    """The "What this shows" lines of notebook 04 (module docstring); ``fitval`` is indexed by recipe."""
    by_name = {name.split(" (")[0]: row for name, row in fitval.iterrows()}
    ts_name = next(n for n in by_name if n.startswith("baseline-ts"))
    base, ts, untempered, tempered = (by_name[n] for n in ("baseline", ts_name, "laplace-untempered", "laplace"))
    shift = delta[(delta["method"] == "laplace-untempered") & (delta["dataset"] != "mean")]["difference"].mean()
    collapse = ("collapses to the baseline" if abs(shift) < COLLAPSE_MARGIN else
                f"does not collapse here (its mean Δ Pearson ρ is beyond ±{COLLAPSE_MARGIN:g})")
    better = "temperature scaling is as good or better" if ts["NLL"] <= tempered["NLL"] else "the posterior is better"
    share = (base["NLL"] - ts["NLL"]) / (base["NLL"] - tempered["NLL"]) if base["NLL"] != tempered["NLL"] else float("nan")
    lines = [
        f"The untempered posterior {collapse}: its marginal likelihood picks τ = {untempered_tau:.3g}, its mean logit "
        f"sd on fit/val is {untempered['mean logit sd']:.2g} (the tempered one's {tempered['mean logit sd']:.2g}), its "
        f"held-out NLL {untempered['NLL']:.5f} against the baseline's {base['NLL']:.5f}, and on the test domains its "
        f"mean Δ Pearson ρ against the baseline is {_delta_summary(delta, 'laplace-untempered', decimals)}",
        f"Fit/val chose T* = {selection['temperature']:.3g} (κ = N / T* = {selection['kappa']:.3g} masks' worth of "
        f"per-pixel evidence, N = {selection['n_masks']}) with τ = {float(tempered['τ']):.3g}: held-out NLL "
        f"{tempered['NLL']:.5f}, Δ {tempered['ΔNLL vs baseline']:+.5f} [{tempered['lo']:+.5f}, {tempered['hi']:+.5f}] "
        f"against the baseline",
        f"Temperature scaling alone (`baseline-ts`, logits / {selection['logit_scale']['scale']:.3g}) reaches NLL "
        f"{ts['NLL']:.5f}: by the criterion T was chosen by, it recovers {share:.0%} of the tempered posterior's gain "
        f"over the baseline ({better} by {abs(ts['NLL'] - tempered['NLL']):.5f})",
    ]
    if len(kappa) > 1:
        pairs = "; ".join(f"N = {int(r['fit masks N'])}: T* {r['T*']:.3g}, κ {r['κ = N / T*']:.3g}"
                          for _, r in kappa.sort_values("fit masks N").iterrows())
        lines.append(f"T* scales with the number of fitted masks and κ = N / T* stays put ({pairs}): the temperature "
                     "sets a posterior width, it does not estimate the correlation between pixels")
    lines.append("On the test domains, Δ Pearson ρ against the baseline (mean over domains): "
                 + "; ".join(_delta_summary(delta, m, decimals) for m in ("laplace", "baseline-ts")))
    return "\n".join(f"- {line}." for line in lines)


__all__ = ["describe_tempering"]
