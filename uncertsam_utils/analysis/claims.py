"""Claim rows for the scorecard (``uncertsam_utils.scorecard``), decided from computed tables by stated rules.

Three kinds of claim, each a function that returns a ``Claim`` whose ``test`` field states the rule:

* ``delta_claim``: "a is higher / lower than b" or "a is like b (within a margin)", from a Δ table of
  ``comparisons`` (per dataset, Holm-corrected, and the mean over datasets with its interval).
  - higher: **holds** when the mean Δ's interval lies above 0 and no dataset is Holm-significantly
    the other way; **does not hold** when the mean's interval lies below 0 or at least half of the
    datasets are significantly the other way; else **inconclusive** (lower: mirrored);
  - like (margin m): **holds** when the mean Δ's interval lies inside (−m, m); **does not hold** when
    it lies entirely outside; else **inconclusive**.
* ``bound_claim``: "a bounds every one of b₁ … bₖ from above": holds when every ``delta_claim``
  (a higher than bᵢ) holds, does not hold when one does not, else inconclusive.
* ``rank_claim``: "a method of S is the best (or the worst) by a metric": from the means over datasets
  on the common masks and the paired Δ between the best (worst) method of S and the best (worst)
  other method: holds when S leads and the Δ's interval excludes 0 in S's favour, does not hold
  when another method leads with an interval excluding 0 in its favour, else inconclusive.
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from ..scorecard import Claim
from .aggregation import common_masks, dataset_mean_summary, direction, label
from .comparisons import MEAN_ROW, paired_difference
from .sentences import interval

EXPECTATIONS = ("higher", "lower", "like")


def _mean_row(table: pd.DataFrame) -> pd.Series:
    rows = table[table["dataset"] == MEAN_ROW]
    if rows.empty:
        raise ValueError("the Δ table has no mean row: build it with analysis.comparisons")
    return rows.iloc[0]


def delta_verdict(table: pd.DataFrame, expect: str, margin: float = 0.0) -> tuple[str, str]:
    """(verdict, rule) of a Δ table for ``expect`` in ``EXPECTATIONS`` (module docstring)."""
    if expect not in EXPECTATIONS:
        raise ValueError(f"expect must be one of {EXPECTATIONS}, got {expect!r}")
    mean = _mean_row(table)
    per = table[table["dataset"] != MEAN_ROW]
    lo, hi = float(mean["lo"]), float(mean["hi"])
    if expect == "like":
        rule = (f"holds if the 95 % interval of the mean Δ over datasets lies inside ±{margin:g}, does not hold if it "
                "lies entirely outside, else inconclusive")
        if -margin < lo and hi < margin:
            return "holds", rule
        return ("does not hold" if lo >= margin or hi <= -margin else "inconclusive"), rule
    sign = 1.0 if expect == "higher" else -1.0
    against = int((per["significant"] & (sign * per["difference"] < 0)).sum())
    word = "above" if sign > 0 else "below"
    rule = (f"holds if the 95 % interval of the mean Δ over datasets lies {word} 0 and no dataset is Holm-significantly "
            f"the other way; does not hold if that interval lies on the other side of 0 or at least half of the "
            "datasets are significantly the other way; else inconclusive")
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive", rule
    toward = lo > 0 if sign > 0 else hi < 0
    away = hi < 0 if sign > 0 else lo > 0
    if toward and against == 0:
        return "holds", rule
    if away or against >= max(1, math.ceil(len(per) / 2)):
        return "does not hold", rule
    return "inconclusive", rule


def delta_evidence(table: pd.DataFrame, *, decimals: int = 3) -> str:
    """The deciding numbers of a Δ table in one line."""
    mean = _mean_row(table)
    per = table[table["dataset"] != MEAN_ROW]
    up = per[per["significant"] & (per["difference"] > 0)]["dataset"].tolist()
    down = per[per["significant"] & (per["difference"] < 0)]["dataset"].tolist()
    return (f"{label(mean['metric'])} {mean['method_a']} − {mean['method_b']}: mean over {len(per)} datasets "
            f"{interval(mean['difference'], mean['lo'], mean['hi'], decimals, signed=True)} "
            f"({mean['mean_a']:.{decimals}f} vs {mean['mean_b']:.{decimals}f}); Holm-significant higher on "
            f"{len(up)}{' (' + ', '.join(up) + ')' if up else ''}, lower on {len(down)}"
            f"{' (' + ', '.join(down) + ')' if down else ''}")


def rests_on(table: pd.DataFrame, extra: str = "") -> str:
    """'N images, M masks, D datasets' of a Δ table (its per-dataset rows), and ``extra`` (e.g. seeds)."""
    per = table[table["dataset"] != MEAN_ROW]
    text = f"{int(per['images'].sum())} images, {int(per['masks'].sum())} masks, {len(per)} datasets"
    return f"{text}; {extra}" if extra else text


def delta_claim(id: str, statement: str, table: pd.DataFrame, expect: str, *, notebook: str, source: str = "paper",
                paper_verdict: str | None = None, margin: float = 0.0, test: str = "paired bootstrap over images",
                extra_rests_on: str = "", note: str = "", decimals: int = 3) -> Claim:
    """A claim decided by ``delta_verdict`` (module docstring); ``test`` names how the Δ table was made."""
    verdict, rule = delta_verdict(table, expect, margin)
    evidence = delta_evidence(table, decimals=decimals) + (f"; {note}" if note else "")
    return Claim(id=id, source=source, statement=statement,
                 paper_verdict=paper_verdict or ("holds" if source == "paper" else "not tested"), verdict=verdict,
                 evidence=evidence, test=f"{test}, Holm across datasets; {rule}",
                 rests_on=rests_on(table, extra_rests_on), notebook=notebook)


def bound_claim(id: str, statement: str, tables: dict[str, pd.DataFrame], *, notebook: str, source: str = "paper",
                test: str = "paired bootstrap over images", extra_rests_on: str = "", decimals: int = 3) -> Claim:
    """``tables``: bounded method → Δ table (bound − that method); verdict as in the module docstring."""
    if not tables:
        raise ValueError("bound_claim needs at least one Δ table")
    verdicts = {name: delta_verdict(t, "higher")[0] for name, t in tables.items()}
    verdict = ("does not hold" if "does not hold" in verdicts.values()
               else "holds" if set(verdicts.values()) == {"holds"} else "inconclusive")
    evidence = "; ".join(f"{delta_evidence(t, decimals=decimals)} [{verdicts[n]}]" for n, t in tables.items())
    first = next(iter(tables.values()))
    return Claim(id=id, source=source, statement=statement, paper_verdict="holds" if source == "paper" else "not tested",
                 verdict=verdict, evidence=evidence,
                 test=f"{test}, Holm across datasets per pair; holds if the bound is higher than every method by the "
                      f"rule of a 'higher' claim ({delta_verdict(first, 'higher')[1]}), does not hold if it fails "
                      "against one, else inconclusive",
                 rests_on=rests_on(first, extra_rests_on), notebook=notebook)


def rank_evidence(frame: pd.DataFrame, metric: str, group: Sequence[str], methods: Sequence[str], *,
                  worst: bool = False, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means over datasets on the common masks of ``methods``, the paired Δ table of the leading method of
    ``group`` against the leading other method; leading = best, or worst with ``worst``)."""
    sign = direction(metric) * (-1 if worst else 1)
    if sign == 0:
        raise ValueError(f"{metric!r} has no better direction")
    common = common_masks(frame[frame["method"].isin(methods)], metric)
    means = dataset_mean_summary(common, [metric], n_boot=n_boot, seed=seed).sort_values(
        "mean", ascending=sign < 0, kind="stable").reset_index(drop=True)
    inside = means[means["method"].isin(group)]
    outside = means[~means["method"].isin(group)]
    if inside.empty or outside.empty:
        raise ValueError(f"rank_evidence needs methods inside and outside the group {list(group)}")
    lead = paired_difference(common, inside["method"].iloc[0], outside["method"].iloc[0], metric, n_boot=n_boot,
                             seed=seed)
    return means, lead


def rank_claim(id: str, statement: str, means: pd.DataFrame, lead: pd.DataFrame, group: Sequence[str], *,
               notebook: str, worst: bool = False, source: str = "paper", extra_rests_on: str = "") -> Claim:
    """"A method of ``group`` is the best (worst) by the metric", from ``rank_evidence`` (module docstring)."""
    metric = lead["metric"].iloc[0]
    sign = direction(metric) * (-1 if worst else 1)
    mean = _mean_row(lead)
    leader = means["method"].iloc[0]
    favour = (mean["lo"] > 0) if sign > 0 else (mean["hi"] < 0)
    against = (mean["hi"] < 0) if sign > 0 else (mean["lo"] > 0)
    verdict = ("holds" if leader in group and favour else
               "does not hold" if leader not in group and against else "inconclusive")
    word = "worst" if worst else "best"
    ranking = ", ".join(f"{r.method} {interval(r.mean, r.lo, r.hi)}" for r in means.itertuples())
    evidence = (f"{label(metric)}, mean over datasets on common masks, {word} first: {ranking}; "
                f"{mean['method_a']} − {mean['method_b']} "
                f"{interval(mean['difference'], mean['lo'], mean['hi'], signed=True)}")
    return Claim(id=id, source=source, statement=statement, paper_verdict="holds" if source == "paper" else "not tested",
                 verdict=verdict, evidence=evidence,
                 test=f"paired bootstrap over images of the {word} method of {{{', '.join(group)}}} against the {word} "
                      f"other method, mean over datasets; holds if a method of the group is {word} with that interval "
                      f"excluding 0 in its favour, does not hold if another is {word} with the interval excluding 0 "
                      "in its favour, else inconclusive",
                 rests_on=rests_on(lead, extra_rests_on), notebook=notebook)


def joint_claim(id: str, statement: str, parts: Sequence[Claim], *, notebook: str, source: str = "ours",
                paper_verdict: str | None = None) -> Claim:
    """A claim that holds when every part holds, does not hold when one part does not, else inconclusive."""
    if not parts:
        raise ValueError("joint_claim needs at least one part")
    verdicts = [p.verdict for p in parts]
    verdict = ("does not hold" if "does not hold" in verdicts
               else "holds" if set(verdicts) == {"holds"} else "inconclusive")
    evidence = " | ".join(f"{p.evidence} [{p.verdict}]" for p in parts)
    test = "holds if every part holds, does not hold if one does not, else inconclusive; parts: " + " | ".join(
        p.test for p in parts)
    return Claim(id=id, source=source, statement=statement,
                 paper_verdict=paper_verdict or ("holds" if source == "paper" else "not tested"), verdict=verdict,
                 evidence=evidence, test=test, rests_on=parts[0].rests_on, notebook=notebook)
