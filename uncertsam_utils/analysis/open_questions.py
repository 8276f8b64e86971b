"""Notebook 09's tables, scorecard rows and sentences, from the scores of ``openq.run.run_open_questions``.

Per question (``QUESTIONS``: what it compares and claims; its arms are ``arms.QUESTION_METHODS``'):

* ``method_table``: each method of the question in both states (``trained``: the last epoch;
  ``selected``: the epoch fit/val chose, the untrained module included) and the references, with
  Table 1's columns (mIoU per domain and the unweighted mean over the domains, mBIoU's mean), the
  seeds, the sd over seeds of the mean mIoU and the epochs fit/val selected;
* ``tests_table``: the question's comparisons (``Question.comparisons``) as Δ tables that count both
  the test images and the training seeds (``analysis.seeds.crossed_table``: per domain a crossed
  bootstrap, Holm across the domains; the mean over the domains with a t interval of both standard
  errors), for both states;
* ``question_claim``: the scorecard row, decided on the trained modules (what training does; the
  selected ones are often the untrained module, which answers nothing about the map): the treatment
  must beat its ones-map control **and** the post-hoc baseline (``analysis.delta_claim``, "higher",
  joined by ``analysis.joint_claim``);
* ``describe_question``: the sentences, "no difference" stated with its interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dataclasses import dataclass, field

from ..openq.arms import QUESTION_METHODS, REFERENCES
from .seeds import crossed_table
from ..seeds import seeded_name

STATES = ("trained", "selected")
NOTEBOOK = "09_open_questions"


@dataclass(frozen=True)
class Question:
    number: int
    claim_id: str
    slug: str  # file names: tables/09_q<number>_<slug>.*
    title: str
    statement: str  # the scorecard claim
    treatment: str
    control: str  # its ones-map control
    post_hoc: str  # the post-hoc baseline (the paper's fusion on the frozen model)
    comparisons: tuple[tuple[str, str], ...] = field(default=())  # (a, b): a − b is reported
    reading: str = ""  # how to read the comparisons (said before them)

    @property
    def methods(self) -> list[str]:
        return list(QUESTION_METHODS[self.slug])


QUESTIONS: dict[str, Question] = {q.slug: q for q in (
    Question(1, "ours-q1-end-to-end", "end_to_end", "End-to-end uncertainty-aware training",
             "Training the mask decoder, a Laplace-style last layer and the fusion module together uses the "
             "uncertainty map better than post-hoc fusion on the frozen model (same data and budget)",
             "e2e-laplace", "e2e-ones", "post-hoc-laplace",
             comparisons=(("e2e-laplace", "e2e-ones"), ("e2e-laplace", "post-hoc-laplace"),
                          ("e2e-ones", "post-hoc-ones"), ("e2e-laplace", "baseline")),
             reading="The decoder is fine-tuned at a tenth of the new parts' learning rate; the image encoder stays "
                     "frozen (its last stage too did not fit the CPU budget), so every arm shares its encodings."),
    Question(2, "ours-q2-cross-domain", "cross_domain", "Cross-domain exposure",
             "Training the fusion module on fit/train plus the eight domains' val splits improves it on the test "
             "domains over training on fit/train alone (same number of training images)",
             "exposure-laplace", "exposure-ones", "post-hoc-laplace",
             comparisons=(("exposure-laplace", "exposure-ones"), ("exposure-laplace", "post-hoc-laplace"),
                          ("lodo-laplace", "post-hoc-laplace"), ("exposure-laplace", "lodo-laplace")),
             reading="Leave-one-domain-out separates the two effects on each domain: exposure-laplace − lodo-laplace "
                     "is having seen the domain itself (both saw the other shifted domains), lodo-laplace − "
                     "post-hoc-laplace is having seen other shifted domains but not this one."),
    Question(3, "ours-q3-spatial-context", "spatial_context", "Spatial context in the fusion module",
             "A fusion module with a receptive field (three dilated 3x3 convolutions) lets the uncertainty map "
             "contribute beyond the ones map, unlike the paper's 1x1 fusion",
             "dilated-laplace", "dilated-ones", "post-hoc-laplace",
             comparisons=(("dilated-laplace", "dilated-ones"), ("dilated-laplace", "post-hoc-laplace"),
                          ("post-hoc-laplace", "post-hoc-ones")),
             reading="The context branch (dilations 1, 2, 4) sees a 15×15 window of the nano's 16×16 embedding; "
                     "the 1×1 pair (post-hoc-laplace − post-hoc-ones) is the paper's ones-map test under the same "
                     "budget."),
    Question(4, "ours-q4-combined-input", "combined_input", "Combined uncertainty as refinement input",
             "A combined uncertainty map (Laplace entropy with prompt perturbation's) fed to the fusion module "
             "refines better than the Laplace map alone and than the ones map",
             "combined-product", "post-hoc-ones", "post-hoc-laplace",
             comparisons=(("combined-product", "post-hoc-ones"), ("combined-product", "post-hoc-laplace"),
                          ("combined-rank", "post-hoc-ones"), ("combined-rank", "post-hoc-laplace")),
             reading="The combinations multiply, or average the ranks of, the Laplace entropy and prompt "
                     "perturbation's entropy map; TTA (a component of the default combined-rank) is left out: it "
                     "encodes every training image ten times per epoch."),
)}


def _rows(results: pd.DataFrame, method: str, state: str) -> pd.DataFrame:
    rows = results[results["method"] == method]
    return rows if method in REFERENCES else rows[rows["state"] == state]


def method_table(results: pd.DataFrame, training: pd.DataFrame, question: Question, datasets) -> pd.DataFrame:
    """One row per (method, state) of the question and per reference; see the module docstring."""
    out = []
    entries = [(m, "reference") for m in REFERENCES] + [(m, s) for m in question.methods for s in STATES]
    for method, state in entries:
        rows = _rows(results, method, state)
        if rows.empty:
            continue
        seeds = sorted(rows["seed"].dropna().unique()) if "seed" in rows else []
        per_seed = rows.groupby(["seed" if seeds else "state", "dataset"])["IoU"].mean().unstack("dataset")
        per_seed = per_seed[[d for d in datasets if d in per_seed.columns]]
        mean_over_domains = per_seed.mean(axis=1)
        row = {"method": method, "state": state, "seeds": len(seeds)}
        row.update({d: float(per_seed[d].mean()) for d in per_seed.columns})
        row["mIoU"] = float(mean_over_domains.mean())
        row["sd over seeds"] = float(mean_over_domains.std(ddof=1)) if len(seeds) > 1 else 0.0
        biou = rows.groupby(["seed" if seeds else "state", "dataset"])["BIoU_2"].mean().unstack("dataset")
        row["mBIoU"] = float(biou.mean(axis=1).mean())
        row["selected epochs"] = _selected_epochs(training, method) if state == "selected" else ""
        out.append(row)
    return pd.DataFrame(out)


def _selected_epochs(training: pd.DataFrame, method: str) -> str:
    if training.empty:
        return ""
    part = training[training["method"] == method].drop_duplicates(["seed", "hold_out"])
    return "/".join(str(int(e)) for e in part.sort_values("seed")["selected_epoch"])


def _seeded(results: pd.DataFrame, method: str, state: str) -> tuple[pd.DataFrame, list[str]]:
    """A method's rows under seeded names (``<method>.s<seed>``, a reference's under its own) and the names."""
    rows = _rows(results, method, state)
    if method in REFERENCES or rows.empty:
        return rows, [method]
    names = [seeded_name(method, int(s)) for s in rows["seed"]]
    return rows.assign(method=names), [seeded_name(method, int(s)) for s in sorted(rows["seed"].unique())]


def tests_table(results: pd.DataFrame, question: Question, *, metric: str = "IoU", n_boot: int = 10000,
                seed: int = 0) -> pd.DataFrame:
    """The question's comparisons for both states (module docstring), one Δ table after another."""
    tables = []
    for state in STATES:
        for a, b in question.comparisons:
            (rows_a, names_a), (rows_b, names_b) = _seeded(results, a, state), _seeded(results, b, state)
            if rows_a.empty or rows_b.empty:
                continue
            table = crossed_table(pd.concat([rows_a, rows_b], ignore_index=True), names_a, names_b, metric,
                                  label_a=a, label_b=b, n_boot=n_boot, seed=seed)
            tables.append(table.assign(state=state))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _pair(tests: pd.DataFrame, a: str, b: str, state: str = "trained") -> pd.DataFrame:
    part = tests[(tests["method_a"] == a) & (tests["method_b"] == b) & (tests["state"] == state)]
    return part.drop(columns=["state"])


def question_claim(question: Question, tests: pd.DataFrame, *, rests_on: str):
    """The scorecard row of a question (module docstring)."""
    from .claims import delta_claim, joint_claim
    from .seeds import describe_sources

    test = ("mean over the domains: t interval of the images' and the training seeds' standard errors; per domain: "
            "crossed bootstrap over images and seeds (trained modules, last epoch)")
    pairs = [_pair(tests, question.treatment, other) for other in (question.control, question.post_hoc)]
    parts = [delta_claim(question.claim_id, question.statement, pair, "higher", notebook=NOTEBOOK, source="ours",
                         test=test, extra_rests_on=rests_on, note=describe_sources(pair), decimals=4)
             for pair in pairs]
    return joint_claim(question.claim_id, question.statement, parts, notebook=NOTEBOOK)


MARGIN = 0.005  # mIoU: a difference whose interval lies inside ±MARGIN is called "no difference larger than it"


def _difference(tests: pd.DataFrame, a: str, b: str, state: str = "trained", decimals: int = 4) -> str:
    from .sentences import interval

    part = _pair(tests, a, b, state)
    if part.empty:
        return f"{a} − {b}: not compared"
    mean = part[part["dataset"] == "mean"].iloc[0]
    if bool(mean["identical"]):
        return f"{a} and {b} predict identically (the same module by construction)"
    text = interval(mean["difference"], mean["lo"], mean["hi"], decimals, signed=True)
    if mean["lo"] > 0 or mean["hi"] < 0:
        verdict = "higher" if mean["lo"] > 0 else "lower"
    elif -MARGIN < mean["lo"] and mean["hi"] < MARGIN:
        verdict = f"no difference: the interval lies within ±{MARGIN}"
    else:
        verdict = "no clear difference: the interval includes 0"
    per = part[part["dataset"] != "mean"]
    up = int((per["significant"] & (per["difference"] > 0)).sum())
    down = int((per["significant"] & (per["difference"] < 0)).sum())
    return (f"{a} − {b}: {text} mIoU ({verdict}; Holm-significantly higher on {up} and lower on {down} of "
            f"{len(per)} domains; {_count(int(mean['seeds']), 'seed')}, SE over seeds {mean['se_seed']:.4f} and over "
            f"images {mean['se_img']:.4f}: the {mean['dominant']} dominate)")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe_question(question: Question, table: pd.DataFrame, tests: pd.DataFrame, claim) -> str:
    """The question's sentences: each comparison of the trained modules with its interval, what fit/val
    selected, and the verdict."""
    lines = [f"**Q{question.number} · {question.title}.** {question.reading} Trained modules (last epoch), mean "
             "over the domains, 95 % interval counting test images and training seeds:"]
    lines += [f"- {_difference(tests, a, b)}." for a, b in question.comparisons]
    selected = table[(table["state"] == "selected") & (table["selected epochs"] != "")]
    epochs = [int(e) for text in selected["selected epochs"] for e in text.split("/")]
    if epochs:
        kept = sum(e == 0 for e in epochs)
        lines.append(f"- fit/val selection kept the untrained module for {kept} of {len(epochs)} modules"
                     + (": the deployable module is mask-prompt refinement of the Laplace first pass."
                        if kept == len(epochs) else "."))
    lines.append(f"- Verdict on \"{question.statement}\": **{claim.verdict}**.")
    return "\n".join(lines)


def headline(question: Question, tests: pd.DataFrame, claim) -> str:
    """One line per question: its verdict and the trained modules' mean Δ mIoU of each comparison with its
    interval (what notebook 09's checked cell prints)."""
    parts = []
    for a, b in question.comparisons:
        part = _pair(tests, a, b)
        if part.empty:
            continue
        mean = part[part["dataset"] == "mean"].iloc[0]
        parts.append(f"{a} − {b} {mean['difference']:+.4f} [{mean['lo']:+.4f}, {mean['hi']:+.4f}]")
    return f"Q{question.number} {question.slug}: {claim.verdict}; " + "; ".join(parts)


def correlation_table(correlation: pd.DataFrame, datasets) -> pd.DataFrame:
    """Mean Pearson r per map and domain (and the mean over domains) with the Laplace first pass's error."""
    table = correlation.groupby(["method", "dataset"])["pearson"].mean().unstack("dataset")
    table = table[[d for d in datasets if d in table.columns]]
    table["mean"] = table.mean(axis=1)
    return table.reset_index().rename(columns={"method": "map"})


def describe_correlation(correlation: pd.DataFrame, *, n_boot: int = 10000, seed: int = 0) -> str:
    """Whether each combined map correlates with the error better than its best component (paired over
    images, mean over domains)."""
    from .comparisons import paired_difference
    from .sentences import interval

    means = correlation.groupby(["method", "dataset"])["pearson"].mean().groupby("method").mean()
    best = max(("laplace", "prompt"), key=lambda m: means.get(m, -np.inf))
    lines = []
    for name in ("combined-product", "combined-rank"):
        if name not in means:
            continue
        table = paired_difference(correlation, name, best, "pearson", n_boot=n_boot, seed=seed)
        mean = table[table["dataset"] == "mean"].iloc[0]
        lines.append(f"{name} − {best} (the better component): Pearson r "
                     f"{interval(mean['difference'], mean['lo'], mean['hi'], 3, signed=True)} over the domains.")
    return " ".join(lines)


__all__ = ["QUESTIONS", "correlation_table", "describe_correlation", "describe_question", "headline", "method_table",
           "question_claim", "tests_table"]
