"""The scorecard rows of the notebooks: the paper's six claims and ours, each decided by ``claims``.

``uncertainty_claims`` (notebook 06) decides, from the per-mask results of the test domains and the
baseline's results on the fit set's test split: Laplace correlates best (by the paper's Pearson, and
ours: by the fair measures), the variance network is worst, SAM degrades on the shifted domains, and
ours: how the two Laplace recipes compare, whether each combined map beats its best component.

``refinement_claims`` (notebook 07) decides refinement's modest gains, the ones map performing like
the Laplace map and the ground-truth mask bounding refinement, from a ``DeltaSource``: the per-mask
results (paired bootstrap) or, for tables committed without their CSVs, the tables themselves.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from ..scorecard import Claim
from .aggregation import dataset_mean_summary, direction, label
from .claims import bound_claim, delta_claim, joint_claim, rank_claim, rank_evidence
from .comparisons import delta_from_intervals, difference_between_splits, from_paired_table, paired_difference

PAPER_METHODS = ("baseline", "tta", "prompt", "laplace", "laplace-paper", "varnet")  # the paper's Figure 3
LAPLACE = ("laplace", "laplace-paper")
LIKE_MARGIN = 0.01  # "performs like": the mean mIoU difference over datasets within ±0.01
REFINEMENT_VARIANTS = ("mask-prompt", "fusion-laplace", "fusion-ones", "fusion-entropy")

DeltaSource = Callable[[str, str, str], pd.DataFrame]  # (a, b, metric) -> Δ table (comparisons)


def _rank(results, claim_id, statement, metric, group, methods, *, worst=False, source="paper", n_boot, seed, extra):
    means, lead = rank_evidence(results, metric, group, methods, worst=worst, n_boot=n_boot, seed=seed)
    return rank_claim(claim_id, statement, means, lead, group, notebook="06", worst=worst, source=source,
                      extra_rests_on=extra)


def uncertainty_claims(results: pd.DataFrame, fit_results: pd.DataFrame | None = None, *, n_boot: int = 1000,
                       seed: int = 0, extra_rests_on: str = "") -> list[Claim]:
    """The claims notebook 06 can decide (module docstring); methods missing from ``results`` are skipped."""
    present = set(results["method"])
    paper = [m for m in PAPER_METHODS if m in present]
    group = [m for m in LAPLACE if m in present]
    kw = {"n_boot": n_boot, "seed": seed, "extra": extra_rests_on}
    claims = []
    if group and len(paper) > len(group):
        claims.append(_rank(results, "paper-laplace-correlates-best", "Last-layer Laplace uncertainty correlates best "
                            "with the segmentation error (the paper's Pearson ρ, own error; among its methods)",
                            "pearson", group, paper, **kw))
        fair = [_rank(results, f"ours-laplace-best-{m}", f"Laplace best by {label(m)}", m, group, paper,
                      source="ours", **kw)
                for m in ("pearson_shared", "auroc")]
        claims.append(joint_claim("ours-laplace-best-by-fair-measures", "Laplace uncertainty points at the errors best "
                                  "by the fair measures: ρ against the shared error target and error-detection AUROC",
                                  fair, notebook="06"))
    if "varnet" in present and len(paper) > 1:
        claims.append(_rank(results, "paper-varnet-worst", "The variance network's uncertainty correlates worst with "
                            "the error (the paper's Pearson ρ; among its methods)", "pearson", ["varnet"], paper,
                            worst=True, **kw))
    if fit_results is not None and "baseline" in present:
        domains = results[results["method"] == "baseline"]
        table = difference_between_splits(domains, fit_results[fit_results["method"] == "baseline"], "IoU",
                                          n_boot=n_boot, seed=seed)
        claims.append(delta_claim("paper-sam-degrades-on-shifted-domains", "SAM-2's accuracy degrades on the shifted "
                                  "domains (mIoU of each test domain against the fit set's test split)", table, "lower",
                                  notebook="06", test="bootstrap over images, each split resampled on its own",
                                  extra_rests_on=f"against {fit_results['image_id'].nunique()} fit/test images"))
    if set(LAPLACE) <= present:
        table = paired_difference(results, "laplace", "laplace-paper", "auroc", n_boot=n_boot, seed=seed)
        claims.append(delta_claim("ours-laplace-exact-beats-paper-recipe", "The exact Laplace recipe detects errors "
                                  "better than the paper's recipe (AUROC of laplace − laplace-paper)", table, "higher",
                                  notebook="06", source="ours", extra_rests_on=extra_rests_on))
    claims += _combination_claims(results, n_boot=n_boot, seed=seed, extra=extra_rests_on)
    return claims


def _combination_claims(results, *, n_boot, seed, extra) -> list[Claim]:
    from ..uq import METHODS

    claims = []
    for name in sorted(set(results["method"])):
        components = [c for c in getattr(METHODS.get(name), "default_components", ()) if c in set(results["method"])]
        if len(components) < 2:
            continue
        means = dataset_mean_summary(results[results["method"].isin(components)], ["auroc"], n_boot=0)
        best = means.sort_values("mean", ascending=direction("auroc") < 0, kind="stable")["method"].iloc[0]
        table = paired_difference(results, name, best, "auroc", n_boot=n_boot, seed=seed)
        claims.append(delta_claim(f"ours-{name}-beats-its-components", f"The {name} map detects errors better than "
                                  f"its best component ({best}, by AUROC; components {', '.join(components)})", table,
                                  "higher", notebook="06", source="ours", extra_rests_on=extra))
    return claims


def deltas_from_results(results: pd.DataFrame, *, n_boot: int = 10000, seed: int = 0) -> DeltaSource:
    """Δ tables by paired bootstrap over the images of the per-mask ``results``."""
    def source(a: str, b: str, metric: str) -> pd.DataFrame:
        return paired_difference(results, a, b, metric, n_boot=n_boot, seed=seed)

    source.test = "paired bootstrap over images"
    return source


def deltas_from_tables(numeric: pd.DataFrame, paired: pd.DataFrame | None = None) -> DeltaSource:
    """Δ tables from committed tables: the paired-bootstrap rows of ``paired`` where that pair and metric
    are there, else the normal approximation from ``numeric``'s per-dataset intervals (conservative)."""
    def source(a: str, b: str, metric: str) -> pd.DataFrame:
        if paired is not None:
            rows = paired[(paired["method_a"] == a) & (paired["method_b"] == b) & (paired["metric"] == metric)]
            if not rows.empty:
                return from_paired_table(rows)
        return delta_from_intervals(numeric, a, b, metric)

    source.test = ("the committed tables: their paired bootstrap over images where the pair was tested, else a "
                   "normal approximation from the per-dataset 95 % intervals (unpaired, conservative)")
    return source


def refinement_claims(delta: DeltaSource, methods: Sequence[str], *, metric: str = "IoU",
                      extra_rests_on: str = "") -> list[Claim]:
    """The refinement claims of notebook 07 (module docstring) among the evaluated ``methods``."""
    test = getattr(delta, "test", "paired bootstrap over images")
    kw = {"notebook": "07", "test": test, "extra_rests_on": extra_rests_on}
    claims = []
    if {"fusion-laplace", "baseline"} <= set(methods):
        claims.append(delta_claim("paper-refinement-modest-gains", "Post-hoc refinement with the Laplace uncertainty "
                                  "(dense fusion) gives modest mIoU gains over SAM-2", delta("fusion-laplace",
                                                                                           "baseline", metric),
                                  "higher", **kw))
    if {"fusion-laplace", "fusion-ones"} <= set(methods):
        claims.append(delta_claim("paper-ones-map-like-laplace", f"Fusing a map of ones performs like fusing the "
                                  f"Laplace map (mean mIoU within ±{LIKE_MARGIN:g})",
                                  delta("fusion-laplace", "fusion-ones", metric), "like", margin=LIKE_MARGIN, **kw))
    bounded = [m for m in REFINEMENT_VARIANTS if m in methods]
    if "gt-mask-prompt" in methods and bounded:
        claims.append(bound_claim("paper-gt-mask-bounds-refinement", "The ground-truth mask as mask prompt bounds "
                                  "refinement from above (mIoU above every variant)",
                                  {m: delta("gt-mask-prompt", m, metric) for m in bounded}, notebook="07", test=test,
                                  extra_rests_on=extra_rests_on))
    return claims
