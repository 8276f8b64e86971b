# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Does the uncertainty point at the errors? Figure 3, fairly compared
#
# The paper's Figure 3 asks one question per method and dataset: how strongly does the method's
# uncertainty map correlate, pixel by pixel, with the segmentation error? Its measure is Pearson's
# ρ between the map and the soft error |y − p| over the whole image, one value per mask, averaged
# over the masks of a dataset. This notebook regenerates that figure on the benchmark of the
# parameters (UncertSAM-mini by default), under the paper's protocol: the ground-truth box is the
# only prompt, maps are upsampled to the original resolution, BIG is scored at half resolution.
#
# **Why the paper's measure alone is not enough.** Its error target is each method's *own* |y − p|.
# On correctly classified pixels that error is a monotone function of the method's own confidence,
# so a method that softens its probabilities raises its ρ without finding one more error. We keep
# the paper's columns (same names, same definitions) and put beside them measures that cannot be
# won that way:
#
# * **ρ against a shared error target** (`pearson_shared`, `spearman_shared`): every method's map
#   against the *baseline's* soft error on the same masks, the same target for all (the baseline's
#   own entropy is a monotone function of that target on its correctly classified pixels, so the
#   baseline starts with an edge here: another map beats it only by pointing at errors the
#   baseline's confidence misses);
# * **AUROC / AUPR** of the map as a detector of the method's own misclassified pixels (P ≠ y), and
#   **AUSE** (log scale: it spans decades);
# * **Δ against the baseline** for every metric, with a paired bootstrap interval over images and
#   Holm's correction across the datasets (one family per method and metric);
# * **winners on the common masks**: a method is only compared on the masks every compared method
#   scored;
# * reliability diagrams, risk–coverage curves, every method on the same objects, and the claims
#   scorecard (`tables/claims.md`): the verdicts this notebook can compute, by stated rules.
#
# All methods follow one logit convention (`uncertsam_utils.uq.measures`): unclamped logits, the
# entropy and the soft error computed from logits, so two methods with the same probabilities get
# the same numbers on every column (tested). Every number comes from the per-mask CSVs of
# `uncertsam eval` (cached under the cache folder, keyed by this notebook's inputs), and every
# sentence that says who wins is generated from the tables below.

# %% tags=["parameters"]
data_root = None  # benchmark root in the published layout; None: the generated UncertSAM-mini
model = "nano"  # model registry name (nano, sam2_hiera_large, ...)
checkpoint = None  # None: the model's default weights; "random": seeded random weights (smoke only)
methods = ["baseline", "tta", "prompt", "laplace", "laplace-paper", "varnet", "combined-rank", "combined-product"]
max_images = None  # first N test images per dataset (and of the fit set's test split); None: all
seed = 42  # the paper's evaluation seed
T = 10  # TTA copies
K = 10  # prompt perturbations
device = "cpu"
posterior = None  # Laplace posterior file for laplace (and laplace-paper); None: cached, or fitted here
head = None  # trained variance head file; None: the one notebook 05 cached, or trained here
fit_missing = True  # fit / train missing parts (cached); False: use only the parts already there
allow_missing_methods = False  # a method that cannot be built stops the notebook; True: left out, named in the tables
allow_missing_datasets = False  # means over fewer than the 8 datasets stop the notebook; True: allowed, said in the tables
fit_images = None  # fitted parts: the first N images of fit/train (None: all), as notebook 05
epochs = None  # variance head epochs (None: the recipe's default), as notebook 05
n_boot = 1000  # bootstrap resamples (over images)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from uncertsam_utils import analysis, plots
from uncertsam_utils.evaluation import (build_available, build_methods, check_coverage, evaluate_cached,
                                        find_fitted_parts, load_counts, load_results)
from uncertsam_utils.paths import figures_dir, tables_dir
from uncertsam_utils.scorecard import update_claims
from uncertsam_utils.session import open_session

session = open_session(data_root, model, checkpoint, device)
root, datasets, loaded, predictor = session.root, session.datasets, session.loaded, session.predictor

# %% [markdown]
# ## The methods and their fitted parts
#
# Laplace needs a fitted posterior (the `laplace` predictive is paired with an `exact`-recipe
# posterior, `laplace-paper` with the paper's recipe) and the variance network a trained head. When
# the parameters do not name files, the artefacts cached for this model and data are used (the head
# trained by notebook 05 with the same `seed`, `epochs` and `fit_images`), or fitted here and cached
# (`fit_missing`). A method whose fitted part is still missing stops the notebook, unless
# `allow_missing_methods` leaves it out (the tables then name it).

# %%
parts = find_fitted_parts(root, loaded, methods, posterior=posterior, head=head, fit_missing=fit_missing,
                          fit_images=fit_images, epochs=epochs, seed=seed)
method_objects, left_out = build_available(methods, loaded, allow_missing=allow_missing_methods, T=T, K=K, **parts)
for name, method in method_objects.items():
    print(f"{name:<17} {method!r}"[:160])

# %% [markdown]
# ## Evaluation (cached)
#
# `evaluate_datasets` writes one CSV per dataset and method with one row per mask; it resumes where
# it stopped, and with the same inputs it reproduces the same bytes. The cache folder's name is a
# hash of every input that changes the numbers. The baseline is also scored on the fit set's test
# split (the SA-1B analogue the model was trained on), the reference of the degradation claim.

# %%
files = {"head": parts["head"], **{f"posterior:{k}": v for k, v in parts["posterior"].items()}}
out_dir = evaluate_cached("06", predictor, loaded, method_objects, root, datasets, files, max_images=max_images,
                          seed=seed)
fit_dir = evaluate_cached("06-fit", predictor, loaded, {"baseline": build_methods(["baseline"], loaded)["baseline"]},
                          root, ["fit"], {}, max_images=max_images, seed=seed, split="test")
results = load_results(out_dir, datasets=datasets, methods=list(method_objects))
fit_results = load_results(fit_dir)
coverage = check_coverage(results, list(method_objects), allow_missing_datasets=allow_missing_datasets, left_out=left_out)
counts = load_counts(out_dir, datasets)  # images and masks read, scored and skipped: every table says them
scored_note = analysis.counts_note(counts)
method_order = [m for m in methods if m in method_objects]
print(f"{len(results)} rows; {len(results[['dataset', 'image_id']].drop_duplicates())} images; "
      f"{len(results) // max(1, len(method_order))} masks per method; fit/test: {fit_results['image_id'].nunique()} images")

# %% [markdown]
# ## Figure 3, with the mean over datasets and the change against the baseline
#
# Top left: one point per image (the mean over its masks) and per method the mean over masks (the
# paper's aggregation) with its 95 % bootstrap interval over images. Top right: the mean over the
# datasets with its interval. Bottom: Δ = method − baseline per dataset and for the mean, paired
# bootstrap over images; a filled marker is Holm-significant across the datasets, a hollow one not.

# %%
metrics_all = list(analysis.ACCURACY_METRICS) + list(analysis.UNCERTAINTY_METRICS)
summary = analysis.summarise(results, metrics_all, n_boot=n_boot, seed=seed)
mean_summary = analysis.dataset_mean_summary(results, analysis.UNCERTAINTY_METRICS + ("IoU", "BIoU_2"), n_boot=n_boot,
                                             seed=seed)
delta = analysis.delta_vs_baseline(results, [m for m in analysis.UNCERTAINTY_METRICS if analysis.direction(m)],
                                   methods=method_order, n_boot=n_boot, seed=seed)
per_image = analysis.image_means(results, analysis.UNCERTAINTY_METRICS)
FIGURES = {  # metric -> (file, title)
    "pearson": ("06_pearson_by_dataset.png", "Pearson ρ of the map with its own soft error |y − p| (the paper's)"),
    "pearson_shared": ("06_pearson_shared_by_dataset.png", "Pearson ρ with the shared error target (the baseline's "
                       "|y − p|)"),
    "spearman_shared": ("06_spearman_shared_by_dataset.png", "Spearman ρ with the shared error target"),
    "pearson_": ("06_pearson_roi_by_dataset.png", "Pearson ρ inside the dilated ROI (the paper's pearson_)"),
    "spearman": ("06_spearman_by_dataset.png", "Spearman ρ with the method's own soft error"),
    "auroc": ("06_auroc_by_dataset.png", "AUROC of the map for the method's misclassified pixels"),
    "ause": ("06_ause_by_dataset.png", "AUSE (lower is better; log scale)"),
}


def figure(metric):
    name, title = FIGURES[metric]
    fig = plots.figure3(per_image, summary, mean_summary, delta, metric, datasets=datasets, methods=method_order,
                        label=analysis.label(metric), title=f"{title} · {loaded.info.name}", log=metric == "ause",
                        seed=seed)
    fig.savefig(figures_dir() / name, dpi=110)
    return fig


figure("pearson")
plt.show()

# %% [markdown]
# The same against the shared error target: here a method gains only by pointing at the errors of
# one fixed segmentation, not by softening its own probabilities.

# %%
figure("pearson_shared")
plt.show()

# %% [markdown]
# The rank-based, ROI and error-detection views.

# %%
for metric in ("spearman_shared", "pearson_", "spearman", "auroc", "ause"):
    figure(metric)
plt.show()

# %% [markdown]
# ## The paper's measure beside the fair ones
#
# The mean over datasets of Δ against the baseline, per method: the paper's Pearson ρ (own error),
# ρ against the shared target and AUROC. A method whose bar rises only in the first panel gains by
# its softer probabilities, not by finding errors.

# %%
side_by_side = ["pearson", "pearson_shared", "spearman_shared", "auroc"]
fig, axes = plt.subplots(1, len(side_by_side), figsize=(3.6 * len(side_by_side), 3.8), sharey=False)
others = [m for m in method_order if m != "baseline"]
for ax, metric in zip(axes, side_by_side):
    part = delta[(delta.metric == metric) & (delta.dataset == "mean")].set_index("method_a").reindex(others)
    ax.bar(range(len(others)), part["difference"], color=[plots.evaluation_colour(m, method_order) for m in others],
           yerr=[part["difference"] - part["lo"], part["hi"] - part["difference"]], capsize=3, edgecolor="black",
           linewidth=0.5)
    ax.axhline(0, color="0.4", linewidth=0.8)
    ax.set_xticks(range(len(others)))
    ax.set_xticklabels(others, rotation=40, ha="right", fontsize=8)
    ax.set_title(f"Δ {analysis.label(metric)}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
axes[0].set_ylabel("mean over datasets of method − baseline (95 % interval)")
fig.suptitle(f"The paper's measure beside the fair ones · {loaded.info.name}", fontsize=10)
fig.tight_layout()
fig.savefig(figures_dir() / "06_measures_side_by_side.png", dpi=110)
plt.show()
softening = "\n".join(analysis.describe_softening(mean_summary, m) for m in others)
print(softening)

# %% [markdown]
# ## Do Pearson and Spearman ρ agree?
#
# Every pair of methods whose Pearson ρ (the paper's) on a dataset lies within 0.01, with their
# Spearman ρ: with one logit convention, a gap is the maps' different rankings of the pixels, not
# ties made by clamping (`tables/06_rank_agreement.csv`).

# %%
# NBVAL_CHECK_OUTPUT
close_pairs = analysis.close_pearson_pairs(summary, tolerance=0.01, agreement=0.05)
rank_agreement = analysis.describe_close_pairs(close_pairs, tolerance=0.01, agreement=0.05)
print(rank_agreement)
close_pairs

# %% [markdown]
# ## Calibration and selective prediction
#
# Reliability diagrams per domain (every method; the diagonal is perfect calibration) and
# risk–coverage curves: the error rate of the pixels a method is most sure of, as it keeps more of
# them. A good uncertainty map keeps the risk low until high coverage.

# %%
plots.reliability_diagrams(results, datasets=datasets, methods=method_order).savefig(
    figures_dir() / "06_reliability.png", dpi=100)
plots.risk_coverage_curves(results, datasets=datasets, methods=method_order).savefig(
    figures_dir() / "06_risk_coverage.png", dpi=100)
plt.show()

# %% [markdown]
# ## Every method on the same objects
#
# Three objects chosen by rule, not by hand: the worst, median and best object by Δ (the method
# with the highest mean ρ against the shared target, minus the baseline). Each map is shown as
# percentile ranks within its image, next to the shared error target.

# %%
fair_best = (mean_summary[(mean_summary.metric == "pearson_shared") & mean_summary.method.isin(others)]
             .sort_values("mean", ascending=False)["method"].iloc[0]) if others else "baseline"
chosen = analysis.select_examples(results, "pearson_shared", fair_best, "baseline")
caption = analysis.examples_caption(chosen, "pearson_shared", fair_best, "baseline")
rows = plots.comparison_rows(predictor, method_objects, root, chosen, seed=seed)
plots.method_comparison_grid(rows, title=f"Every method on the same objects · {loaded.info.name}", caption=caption,
                             path=figures_dir() / "06_methods_same_objects.png")
plt.show()

# %% [markdown]
# ## Tables
#
# Accuracy (mIoU and mBIoU at dilation ratios 0.02 and 0.01) and every uncertainty metric per
# dataset and method (means over masks with 95 % bootstrap intervals over images); Δ against the
# baseline (paired, Holm across datasets; `*`: significant); the best method per dataset on the
# common masks; combined maps against their components. The CSV files hold the numbers.

# %%
# NBVAL_CHECK_OUTPUT
accuracy_metrics = ["IoU", "BIoU_2", "BIoU_1", "dice", "BER"]
note = (f"Means over masks; [lo, hi]: 95 % bootstrap interval over images ({n_boot} resamples, seed {seed}). "
        f"Model {loaded.label}; data {Path(root).name}; split test; max_images {max_images}. pearson, spearman: "
        "against each method's own soft error (the paper's); *_shared: against the baseline's soft error.") + \
    coverage.note + " " + scored_note
written = analysis.write_table(counts, tables_dir() / "06_counts", title="Images and masks read, scored and skipped",
                               note=scored_note)
written += analysis.write_table(analysis.numeric_table(summary, accuracy_metrics), tables_dir() / "06_accuracy",
                                markdown=analysis.wide_table(summary, accuracy_metrics),
                                title="Accuracy per dataset and method", note=note)
written += analysis.write_table(analysis.numeric_table(summary, analysis.UNCERTAINTY_METRICS),
                                tables_dir() / "06_uncertainty",
                                markdown=analysis.wide_table(summary, analysis.UNCERTAINTY_METRICS),
                                title="Uncertainty metrics per dataset and method", note=note)
delta_note = ("Δ = method − baseline on the masks both scored; paired bootstrap over images; Holm across the "
              "datasets within each method and metric (the 'mean' row is not in the family); * Holm-significant "
              "at α = 0.05. " + note)
shown_metrics = ["pearson", "pearson_shared", "spearman_shared", "auroc", "ause"]
written += analysis.write_table(delta, tables_dir() / "06_delta",
                                markdown=analysis.delta_display(delta[delta.metric.isin(shown_metrics)]),
                                title="Δ against the baseline", note=delta_note)
display_table = analysis.wide_table(summary, ["IoU", "pearson", "pearson_shared", "spearman_shared", "auroc", "ause"])
display_table

# %%
# NBVAL_CHECK_OUTPUT
winner_tables = [analysis.winners(results, metric, n_boot=n_boot, seed=seed, methods=method_order)
                 for metric in ("pearson", "pearson_shared", "spearman_shared", "auroc", "ause")]
text = analysis.paper_claim(winner_tables[0], method_order) + "\n\n"
text += "\n\n".join(analysis.describe_winners(table) for table in winner_tables)
print(text)
written += analysis.write_table(pd.concat(winner_tables, ignore_index=True), tables_dir() / "06_winners",
                                title="Best method per dataset and metric (on the masks every method scored)",
                                note=text + "\n\n" + note)
combinations = {name: list(m.components) for name, m in method_objects.items() if hasattr(m, "components")}
combination_table = analysis.combination_gains(summary, combinations)
combination_text = analysis.describe_combinations(combination_table)
written += analysis.write_table(combination_table, tables_dir() / "06_combinations",
                                title="Combined maps against their best component",
                                note=combination_text + "\n\n" + scored_note)
written += analysis.write_table(close_pairs, tables_dir() / "06_rank_agreement",
                                title="Pairs of methods of close Pearson ρ and their Spearman ρ",
                                note=rank_agreement + "\n\n" + scored_note)

# %% [markdown]
# ## The claims this notebook decides
#
# The paper's (Laplace correlates best; the variance network is worst; SAM degrades on the shifted
# domains) and ours (Laplace by the fair measures; the two Laplace recipes; the combined maps),
# each decided by the rule in its `test` column, written to `tables/claims.csv` / `.md` (rows of
# other notebooks are kept).

# %%
rests = f"{loaded.info.name}, evaluation seed {seed}; one posterior fit and one variance head (seed {seed})"
claims = analysis.uncertainty_claims(results, fit_results, n_boot=n_boot, seed=seed, extra_rests_on=rests)
written += update_claims(claims)
pd.DataFrame([{"claim": c.id, "verdict": c.verdict, "evidence": c.evidence} for c in claims])

# %% [markdown]
# ## What this shows
#
# Generated from the tables above.

# %%
lines = [f"- **{c.statement}**: {c.verdict}. {c.evidence}." for c in claims]
lines += ["", analysis.describe_delta(delta, "pearson_shared"), "", analysis.describe_delta(delta, "auroc"), "",
          softening, "", rank_agreement, "", combination_text]
print("\n".join(lines))
print("\n".join(str(p) for p in written))
