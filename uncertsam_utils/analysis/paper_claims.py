"""The scorecard rows of the notebooks: the paper's six claims and ours, each decided by ``claims``.

``uncertainty_claims`` (notebook 06) decides, from the per-mask results of the test domains and the
baseline's results on the fit set's test split: Laplace correlates best (by the paper's Pearson, and
ours: by the fair measures), the variance network is worst, SAM degrades on the shifted domains, and
ours: how the two Laplace recipes compare, whether each combined map beats its best component.

``refinement_claims`` (notebook 07) decides refinement's modest gains, the ones map performing like
the Laplace map and the ground-truth mask bounding refinement, from a ``DeltaSource``: the per-mask
results (paired bootstrap), the crossed images × training seeds comparison of seeded rows
(``deltas_from_crossed``) or, for tables committed without their CSVs, the tables themselves.

``laplace_claims`` (notebook 04) gives every Laplace recipe its row: the default (tempered) against the
baseline and against temperature scaling (``baseline-ts``) on the test domains, the untempered
posterior's collapse to the baseline, and the paper's recipe against the tempered one on held-out fit/val.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
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
        claims.append(delta_claim("ours-laplace-default-beats-paper-recipe", "The default Laplace recipe (tempered) "
                                  "detects errors better than the paper's recipe (AUROC of laplace − laplace-paper)",
                                  table, "higher",
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


def deltas_from_crossed(results: pd.DataFrame, rows: Mapping[str, Sequence[str]], *, n_boot: int = 4000,
                        seed: int = 0) -> DeltaSource:
    """Δ tables of rows trained with seeds (``rows``: row label → its method names, one per seed, or one
    unseeded name): the crossed images × seeds comparison (``seeds.crossed_table``), computed once per pair."""
    from .seeds import crossed_table

    tables: dict[tuple[str, str, str], pd.DataFrame] = {}

    def source(a: str, b: str, metric: str) -> pd.DataFrame:
        if (a, b, metric) not in tables:
            tables[a, b, metric] = crossed_table(results, rows[a], rows[b], metric, label_a=a, label_b=b,
                                                 n_boot=n_boot, seed=seed)
        return tables[a, b, metric]

    source.test = ("crossed comparison over images and training seeds (mean over datasets: t interval from the SE "
                   "over seeds and over images, Welch–Satterthwaite df; per dataset: the crossed bootstrap)")
    return source


def _ones_pair(delta: DeltaSource, pairs: Sequence[tuple[str, str]], methods, metric: str):
    """The first of ``pairs`` evaluated whose modules differ on some mask (else the first evaluated):
    untrained modules are identical by construction, which decides nothing about the map."""
    evaluated = [p for p in pairs if set(p) <= set(methods)]
    for a, b in evaluated:
        table = delta(a, b, metric)
        if not bool(table.get("identical", pd.Series([False])).iloc[0]):
            return a, b, table
    return (*evaluated[0], delta(*evaluated[0], metric)) if evaluated else None


def refinement_claims(delta: DeltaSource, methods: Sequence[str], *, metric: str = "IoU", extra_rests_on: str = "",
                      ones_pairs: Sequence[tuple[str, str]] = (("fusion-laplace", "fusion-ones"),),
                      decimals: int = 3) -> list[Claim]:
    """The refinement claims of notebook 07 (module docstring) among the evaluated ``methods`` (row labels);
    the ones-map test on the first of ``ones_pairs`` whose modules are not identical by construction."""
    from .seeds import describe_sources

    test = getattr(delta, "test", "paired bootstrap over images")
    kw = {"notebook": "07", "test": test, "extra_rests_on": extra_rests_on, "decimals": decimals}
    claims = []
    for b, claim_id, statement, source in (
            ("baseline", "paper-refinement-modest-gains", "Post-hoc refinement with the Laplace uncertainty (dense "
             "fusion) gives modest mIoU gains over SAM-2", "paper"),
            ("mask-prompt", "ours-fusion-laplace-beats-mask-prompt", "Fusing the Laplace map gains mIoU over plain "
             "mask-prompt refinement (the same second pass without a map)", "ours")):
        if {"fusion-laplace", b} <= set(methods):
            table = delta("fusion-laplace", b, metric)
            claims.append(delta_claim(claim_id, statement, table, "higher", source=source,
                                      note=describe_sources(table, decimals=max(decimals, 4)), **kw))
    chosen = _ones_pair(delta, ones_pairs, methods, metric)
    if chosen:
        a, b, table = chosen
        claims.append(delta_claim("paper-ones-map-like-laplace", f"Fusing a map of ones performs like fusing the "
                                  f"Laplace map (mean mIoU within ±{LIKE_MARGIN:g}; {a} against {b})", table, "like",
                                  margin=LIKE_MARGIN, note=describe_sources(table, decimals=max(decimals, 4)), **kw))
    bounded = [m for m in REFINEMENT_VARIANTS if m in methods]
    if "gt-mask-prompt" in methods and bounded:
        claims.append(bound_claim("paper-gt-mask-bounds-refinement", "The ground-truth mask as mask prompt bounds "
                                  "refinement from above (mIoU above every variant)",
                                  {m: delta("gt-mask-prompt", m, metric) for m in bounded}, notebook="07", test=test,
                                  extra_rests_on=extra_rests_on, decimals=decimals))
    return claims


def heldout_results(images: Sequence, nll: Mapping[str, Sequence[float]], *, dataset: str = "fit/val") -> pd.DataFrame:
    """Per-mask held-out NLLs (``{method: per mask}``, masks in the order of ``images``, their image ids)
    in the layout of the evaluation results, so that ``paired_difference`` resamples their images."""
    images = np.asarray(images)
    values = {name: np.asarray(v, dtype=np.float64) for name, v in nll.items()}
    wrong = [f"{name} ({v.size})" for name, v in values.items() if v.size != images.size]
    if wrong:
        raise ValueError(f"every method needs one held-out NLL per mask ({images.size}): {', '.join(wrong)}")
    return pd.concat([pd.DataFrame({"dataset": dataset, "method": name, "image_id": images,
                                    "mask_id": np.arange(images.size), "nll": v}) for name, v in values.items()],
                     ignore_index=True)


def laplace_claims(results: pd.DataFrame, heldout: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                   extra_rests_on: str = "") -> list[Claim]:
    """Notebook 04's row per Laplace recipe (module docstring): ``results`` the per-mask test results of
    ``baseline``, ``laplace``, ``laplace-untempered``, ``baseline-ts``; ``heldout`` the fit/val NLLs
    (``heldout_results``) of ``laplace`` and ``laplace-paper``. Recipes missing from them are skipped."""
    present, kw = set(results["method"]), {"notebook": "04", "source": "ours", "extra_rests_on": extra_rests_on}
    claims = []

    def test_delta(a, b):
        return paired_difference(results, a, b, "pearson", n_boot=n_boot, seed=seed)

    if {"laplace", "baseline"} <= present:
        claims.append(delta_claim("ours-laplace-tempered-beats-baseline", "The default Laplace posterior (tempered, T "
                                  "chosen on fit/val) correlates with the error better than the baseline (Pearson ρ, "
                                  "test domains)", test_delta("laplace", "baseline"), "higher", **kw))
    if {"laplace-untempered", "baseline"} <= present:
        claims.append(delta_claim("ours-laplace-untempered-collapses", "The untempered per-pixel Laplace posterior "
                                  f"collapses to the baseline (mean Pearson ρ within ±{LIKE_MARGIN:g} of the "
                                  "baseline's, test domains)", test_delta("laplace-untempered", "baseline"), "like",
                                  margin=LIKE_MARGIN, **kw))
    if {"laplace", "baseline-ts"} <= present:
        claims.append(delta_claim("ours-laplace-tempered-beats-temperature-scaling", "The tempered Laplace posterior "
                                  "correlates with the error better than the temperature-scaled baseline "
                                  "(`baseline-ts`): the posterior adds more than calibration (Pearson ρ, test domains)",
                                  test_delta("laplace", "baseline-ts"), "higher", **kw))
    if {"laplace-paper", "laplace"} <= set(heldout["method"]):
        table = paired_difference(heldout, "laplace-paper", "laplace", "nll", n_boot=n_boot, seed=seed)
        claims.append(delta_claim("ours-laplace-paper-recipe-fits-heldout-worse", "The paper's Laplace recipe predicts "
                                  "held-out data worse than the tempered one (per-mask NLL on fit/val, closed-form "
                                  "predictive; higher is worse)", table, "higher", decimals=5, **kw))
    return claims
