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
# # 06 · Does the uncertainty point at the errors? Figure 3, and beyond
#
# The paper's Figure 3 asks one question per method and dataset: how strongly does the method's
# uncertainty map correlate, pixel by pixel, with the segmentation error? Its measure is Pearson's
# ρ between the map and the soft error |y − p| over the whole image, one value per mask, averaged
# over the masks of a dataset. This notebook regenerates that figure on the benchmark of the
# parameters (UncertSAM-mini by default), under the paper's protocol: the ground-truth box is the
# only prompt, maps are upsampled to the original resolution, BIG is scored at half resolution.
#
# Beyond the paper it reports, for every method and dataset:
#
# * **Spearman ρ**: the rank correlation, blind to the scale of the map (a variance and its log give
#   the same value), which Pearson is not;
# * **AUROC / AUPR** of the map as a detector of the misclassified pixels (P ≠ y);
# * **AUSE**: the area between the sparsification curve (remove the most uncertain pixels first,
#   track the mean soft error of the rest) and the oracle's (remove the largest errors first);
# * the same inside the **dilated ROI** around the object (suffix `_`, as the paper's `*_` columns),
#   where the background no longer dominates;
# * **combined maps** (the paper's open question 3): the mean of per-image rank-normalised maps,
#   and the product of the Laplace and prompt-perturbation maps;
# * **bootstrap confidence intervals over images** for every number, and the per-image spread.
#
# Every number comes from the per-mask CSVs of `uncertsam eval` (cached under the cache folder,
# keyed by this notebook's inputs), and the text that says which method wins where is generated
# from the tables below, not written in advance.

# %% tags=["parameters"]
data_root = None  # benchmark root in the published layout; None: the generated UncertSAM-mini
model = "nano"  # model registry name (nano, sam2_hiera_large, ...)
checkpoint = None  # None: the model's default weights; "random": seeded random weights (smoke only)
methods = ["baseline", "tta", "prompt", "laplace", "laplace-paper", "varnet", "combined-rank", "combined-product"]
max_images = None  # first N test images per dataset; None: all
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

from uncertsam_utils import analysis
from uncertsam_utils.evaluation import build_available, check_coverage, evaluate_cached, find_fitted_parts, load_results
from uncertsam_utils.paths import figures_dir, tables_dir
from uncertsam_utils.plots import metric_by_dataset
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
# hash of every input that changes the numbers.

# %%
files = {"head": parts["head"], **{f"posterior:{k}": v for k, v in parts["posterior"].items()}}
out_dir = evaluate_cached("06", predictor, loaded, method_objects, root, datasets, files, max_images=max_images,
                          seed=seed)
print(out_dir)
results = load_results(out_dir, datasets=datasets, methods=list(method_objects))
coverage = check_coverage(results, list(method_objects), allow_missing_datasets=allow_missing_datasets, left_out=left_out)
method_order = [m for m in methods if m in method_objects]
print(f"{len(results)} rows; {len(results[['dataset', 'image_id']].drop_duplicates())} images; "
      f"{len(results) // max(1, len(method_order))} masks per method")

# %% [markdown]
# ## Figure 3: Pearson ρ between the uncertainty map and the soft error
#
# One point per image (the mean over its masks), and per method the mean over masks (the paper's
# aggregation) with its 95 % bootstrap interval over images.

# %%
metrics_all = list(analysis.ACCURACY_METRICS) + list(analysis.UNCERTAINTY_METRICS)
summary = analysis.summarise(results, metrics_all, n_boot=n_boot, seed=seed)
per_image = analysis.image_means(results, analysis.UNCERTAINTY_METRICS)


def figure(metric, name, title):
    fig = metric_by_dataset(per_image, summary, metric, datasets=datasets, methods=method_order,
                            ylabel=analysis.label(metric), title=f"{title} · {loaded.info.name}")
    fig.savefig(figures_dir() / name, dpi=130)
    return fig


figure("pearson", "06_pearson_by_dataset.png", "Pearson ρ (uncertainty vs. |y − p|), whole image")
plt.show()

# %% [markdown]
# The same inside the dilated region of interest, and the rank-based and error-detection views.

# %%
figure("pearson_", "06_pearson_roi_by_dataset.png", "Pearson ρ inside the dilated ROI")
figure("spearman", "06_spearman_by_dataset.png", "Spearman ρ (uncertainty vs. |y − p|)")
figure("auroc", "06_auroc_by_dataset.png", "AUROC of the uncertainty for misclassified pixels")
figure("ause", "06_ause_by_dataset.png", "AUSE (lower is better)")
plt.show()

# %% [markdown]
# ## Tables
#
# Accuracy (mIoU and mBIoU at dilation ratios 0.02 and 0.01) per dataset and method, and every
# uncertainty metric per method and dataset: means over masks with 95 % bootstrap intervals over
# images. The CSV files hold the numbers (mean, lo, hi), the Markdown files the same as text.

# %%
# NBVAL_CHECK_OUTPUT
accuracy_metrics = ["IoU", "BIoU_2", "BIoU_1", "dice", "BER"]
note = (f"Means over masks; [lo, hi]: 95 % bootstrap interval over images ({n_boot} resamples, seed {seed}). "
        f"Model {loaded.label}; data {Path(root).name}; split test; max_images {max_images}.") + coverage.note
written = []
written += analysis.write_table(analysis.numeric_table(summary, accuracy_metrics), tables_dir() / "06_accuracy",
                                markdown=analysis.wide_table(summary, accuracy_metrics),
                                title="Accuracy per dataset and method", note=note)
written += analysis.write_table(analysis.numeric_table(summary, analysis.UNCERTAINTY_METRICS),
                                tables_dir() / "06_uncertainty",
                                markdown=analysis.wide_table(summary, analysis.UNCERTAINTY_METRICS),
                                title="Uncertainty metrics per dataset and method", note=note)
display_table = analysis.wide_table(summary, ["IoU", "BIoU_2", "pearson", "pearson_", "spearman", "auroc", "ause"])
display_table

# %% [markdown]
# ## Who wins where
#
# Generated from the tables: for each metric, the best method per dataset and how often it stays the
# best when the images are resampled (a paired bootstrap, the same resamples for every method).

# %%
# NBVAL_CHECK_OUTPUT
winner_tables = [analysis.winners(results, metric, n_boot=n_boot, seed=seed, methods=method_order)
                 for metric in ("pearson", "pearson_", "spearman", "auroc", "ause")]
text = analysis.paper_claim(winner_tables[0], method_order) + "\n\n"
text += "\n\n".join(analysis.describe_winners(table) for table in winner_tables)
print(text)
all_winners = pd.concat(winner_tables, ignore_index=True)
written += analysis.write_table(all_winners, tables_dir() / "06_winners", title="Best method per dataset and metric",
                                note=text + "\n\n" + note)

# %% [markdown]
# ## Do combined maps help?
#
# A combination is worth its cost when it beats each of its components. The table compares each
# combination's Pearson ρ and AUROC with its best component on each dataset.

# %%
# NBVAL_CHECK_OUTPUT
combinations = {name: list(m.components) for name, m in method_objects.items() if hasattr(m, "components")}
combination_table = analysis.combination_gains(summary, combinations)
combination_text = analysis.describe_combinations(combination_table)
print(combination_text)
written += analysis.write_table(combination_table, tables_dir() / "06_combinations",
                                title="Combined maps against their best component", note=combination_text)
combination_table

# %%
print("\n".join(str(p) for p in written))
