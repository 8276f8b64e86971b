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
# # 07 · Can uncertainty refine the segmentation? Table 1 and the ones-map test
#
# The paper's second question: feed SAM-2's first prediction and its uncertainty map back into the
# mask decoder through a small fusion module (**dense embedding fusion**, paper §5) and decode again.
# It reports modest gains that **persist when the uncertainty map is replaced by a map of ones**, so
# the gain would come from the Laplace first pass and the extra trained pathway, not from the
# uncertainty content. This notebook regenerates Table 1 and tests that claim with a paired
# bootstrap over images.
#
# The variants (each a method of the common interface, scored by the same evaluation as notebook 06):
#
# | variant | first pass | second pass (with the same box) |
# |---|---|---|
# | `baseline` | SAM-2 | none |
# | `mask-prompt` | SAM-2 | its own logits as mask prompt, no fusion |
# | `fusion-laplace` | Laplace | fusion of the Laplace logits with their entropy map |
# | `fusion-ones` | Laplace | the same, with an all-ones map (the ablation) |
# | `fusion-entropy` | SAM-2 | fusion with SAM-2's own entropy map |
# | `gt-mask-prompt` | — | the ground-truth mask as mask prompt (upper bound) |
#
# The fusion modules start at the **exact** initialisation (the untrained module *is* mask-prompt
# refinement), so training can only move them away from `mask-prompt` where that lowers the loss;
# `fusion-laplace` and `fusion-ones` share the recipe, seed and weight decay and differ only in the map.

# %% tags=["parameters"]
data_root = None  # benchmark root in the published layout; None: the generated UncertSAM-mini
model = "nano"  # model registry name (nano, sam2_hiera_large, ...)
checkpoint = None  # None: the model's default weights; "random": seeded random weights (smoke only)
variants = ["baseline", "mask-prompt", "fusion-laplace", "fusion-ones", "fusion-entropy", "gt-mask-prompt"]
max_images = None  # first N test images per dataset; None: all
seed = 42  # the paper's evaluation seed
device = "cpu"
posterior = None  # Laplace posterior file (exact recipe); None: cached (notebooks 04/06), or fitted here
fusion = None  # {variant: fusion file}; None: cached, or trained here
fit_missing = True  # fit / train missing parts (cached); False: use only the parts already there
allow_missing_methods = False  # a variant that cannot be built stops the notebook; True: left out, named in the tables
allow_missing_datasets = False  # means over fewer than the 8 datasets stop the notebook; True: allowed, said in the tables
fit_images = None  # Laplace posterior: the first N images of fit/train (None: all), as notebooks 04-06
fusion_images = 400  # fusion training: the first N images of fit/train (None: all, the paper's)
fusion_epochs = 1  # the paper: 5
clicks = 8  # prompt steps per training image (the paper's 8)
box_probability = 0.5  # chance that a training image's prompts start with the box (the paper's 0.5); with
# clicks = 1 and box_probability = 1 the modules train under the evaluation prompt alone
train_seed = 0  # fusion init and sampling seed
n_boot = 10000  # bootstrap resamples (over images)
images_per_domain = 1  # before/after figure

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from uncertsam_utils import analysis
from uncertsam_utils.evaluation import (build_available, build_methods, check_coverage, evaluate_cached,
                                        find_fitted_parts, load_results)
from uncertsam_utils.paths import figures_dir, tables_dir
from uncertsam_utils.plots import refinement_examples, refinement_grid
from uncertsam_utils.refine.family import find_fusion_modules
from uncertsam_utils.refine.training import FusionTrainConfig
from uncertsam_utils.session import open_session

torch.set_num_threads(1)  # the metric worker of the evaluation takes the second core
session = open_session(data_root, model, checkpoint, device)
root, datasets, loaded, predictor = session.root, session.datasets, session.loaded, session.predictor

# %% [markdown]
# ## The fitted parts: the Laplace posterior and the three fusion modules
#
# The posterior is the `exact`-recipe one of notebooks 04 and 06 (cached). Each fusion module is
# trained with SAM-2 frozen on the first `fusion_images` images of `fit/train` with the paper's
# iterative prompts (box or click, then one click more per step), loss 20 · focal + Dice + IoU L1,
# and selected by its loss on `fit/val` under the evaluation prompt; trained modules are cached by
# model, data, recipe, posterior and seed (`uncertsam train fusion` does the same from the shell).

# %%
tic = time.perf_counter()
parts = find_fitted_parts(root, loaded, ["laplace"], posterior={"laplace": posterior}, fit_missing=fit_missing,
                          fit_images=fit_images, seed=seed)  # the posterior notebook 06 uses
posterior_file = parts["posterior"].get("laplace")
config = FusionTrainConfig(epochs=fusion_epochs, clicks=clicks, box_probability=box_probability)
fusion_files = {name: files[0] for name, files in find_fusion_modules(
    root, loaded, variants, given=fusion, posterior=posterior_file, config=config, limit=fusion_images,
    seeds=[train_seed], train_missing=fit_missing).items()}
method_objects, left_out = build_available(variants, loaded, allow_missing=allow_missing_methods,
                                           posterior=parts["posterior"], fusion=fusion_files)
available = list(method_objects)
print(f"fitted parts ready in {time.perf_counter() - tic:.0f} s")

# %% [markdown]
# What training did: the validation mIoU of the first pass and of the refined mask, per epoch. The
# validation uses the evaluation prompt (the clean box, one step), while the paper trains with
# iterative clicks (§5.3): where the refined validation mIoU falls below the first pass, the module
# learned to fix click prompts at the expense of box prompts. `clicks = 1` with `box_probability = 1`
# trains under the evaluation prompt instead.

# %%
from uncertsam_utils.refine.fusion import load_fusion  # noqa: E402

history_rows = []
for name, path in fusion_files.items():
    _, payload = load_fusion(path)
    record = payload["training"]
    for row in record["history"]:
        history_rows.append({"variant": name, "epoch": row["epoch"], "train loss": row.get("train_loss"),
                             "val loss": row["val_loss"], "val mIoU first pass": row["val_miou_first"],
                             "val mIoU refined": row["val_miou"], "selected": row["epoch"] == record["best_epoch"],
                             "train minutes": record["train_seconds"] / 60})
import pandas as pd  # noqa: E402

training_table = pd.DataFrame(history_rows)
training_table

# %% [markdown]
# ## Evaluation (cached)
#
# Every variant on every test image of every domain, the GT box as prompt, scored per mask; the
# CSVs are cached by a hash of every input, and an interrupted run resumes where it stopped.

# %%
files = {f"posterior:{k}": v for k, v in parts["posterior"].items()} | {f"fusion:{k}": v for k, v in fusion_files.items()}
tic = time.perf_counter()
out_dir = evaluate_cached("07", predictor, loaded, method_objects, root, datasets, files, max_images=max_images,
                          seed=seed)
print(f"evaluated in {time.perf_counter() - tic:.0f} s: {out_dir}")
results = load_results(out_dir, datasets=datasets, methods=available)
coverage = check_coverage(results, available, allow_missing_datasets=allow_missing_datasets, left_out=left_out)
summary = analysis.summarise(results, ["IoU", "BIoU_2"], n_boot=1000, seed=seed)

# %% [markdown]
# ## Table 1: mIoU and mBIoU per dataset and variant
#
# Means over masks (mBIoU: boundary IoU at dilation ratio 0.02); the last columns are the unweighted
# means over the datasets. The CSV holds every number with its 95 % bootstrap interval over images.

# %%
# NBVAL_CHECK_OUTPUT
note = (f"Means over masks; mean columns: unweighted mean over the {len(datasets)} datasets. Model {loaded.label}; "
        f"data {Path(root).name}; split test; max_images {max_images}; fusion modules: {fusion_images or 'all'} "
        f"fit/train images x {fusion_epochs} epoch(s), {clicks} prompt steps, exact init, seed {train_seed}.")
if box_probability != 0.5:
    note += f" Training prompts start with the box with probability {box_probability}."
note += coverage.note
table1 = analysis.per_dataset_table(summary, available, datasets)
written = analysis.write_table(analysis.numeric_table(summary, ["IoU", "BIoU_2"]), tables_dir() / "07_table1",
                               markdown=table1, title="Table 1: refinement variants, mIoU and mBIoU per dataset",
                               note=note)
table1

# %% [markdown]
# ## Does the uncertainty map matter? The paired test
#
# If the uncertainty content helped, `fusion-laplace` would beat `fusion-ones`. Both were scored on
# the same masks, so their difference is bootstrapped over images with the same resamples for both
# (a paired bootstrap): the interval is that of the difference itself. The same test compares
# `fusion-laplace` with plain mask-prompt refinement, and the ones-map variant with it.

# %%
# NBVAL_CHECK_OUTPUT
comparisons = [("fusion-laplace", "fusion-ones"), ("fusion-laplace", "mask-prompt"), ("fusion-ones", "mask-prompt"),
               ("fusion-entropy", "mask-prompt"), ("mask-prompt", "baseline")]
paired = []
texts = []
for a, b in comparisons:
    if a in available and b in available:
        for metric in ("IoU", "BIoU_2"):
            table = analysis.paired_difference(results, a, b, metric, n_boot=n_boot, seed=seed)
            paired.append(table)
            texts.append(analysis.describe_difference(table))
paired_table = pd.concat(paired, ignore_index=True) if paired else pd.DataFrame()
claim = "\n\n".join(texts) if texts else "The compared variants are not all available."
print(claim)
if not paired_table.empty:
    written += analysis.write_table(paired_table, tables_dir() / "07_paired_tests",
                                    title="Paired bootstrap over images: differences between refinement variants",
                                    note=claim + "\n\n" + f"{n_boot} resamples, seed {seed}. " + note)
paired_table

# %% [markdown]
# ## Table 1 as a figure
#
# Per dataset the mean mIoU over masks with its 95 % bootstrap interval over images, and the mean
# over the datasets with its interval (the datasets' resamples averaged).

# %%
from uncertsam_utils import plots  # noqa: E402

table1_means = analysis.dataset_mean_summary(results, ["IoU", "BIoU_2"], n_boot=1000, seed=seed)
fig = plots.interval_figure(analysis.numeric_table(summary, ["IoU"]), "IoU", datasets=datasets, methods=available,
                            mean_summary=table1_means, label="mIoU",
                            title=f"Table 1: refinement variants · {loaded.info.name}")
fig.savefig(figures_dir() / "07_table1.png", dpi=110)
plt.show()

# %% [markdown]
# ## Before and after
#
# Objects chosen by rule, never by hand: the worst, the median and the best object by Δ IoU of
# `fusion-laplace` against the baseline (stated in the caption), with the Laplace first pass's
# entropy map (what `fusion-laplace` is fed) and each variant's mask with its IoU.

# %%
shown = {name: method_objects[name] for name in ("baseline", "mask-prompt", "fusion-laplace", "fusion-ones",
                                                 "gt-mask-prompt") if name in method_objects}
compared = "fusion-laplace" if "fusion-laplace" in available else next(m for m in available if m != "baseline")
chosen = analysis.select_examples(results, "IoU", compared, "baseline")
caption = analysis.examples_caption(chosen, "IoU", compared, "baseline")
map_method = build_methods(["laplace"], loaded, posterior=parts["posterior"])["laplace"] if posterior_file else method_objects["baseline"]
examples = refinement_examples(predictor, shown, root, uncertainty_method=map_method, seed=seed, chosen=chosen)
fig = refinement_grid(examples, map_label=f"first-pass entropy ({'Laplace' if posterior_file else 'SAM-2'}, nats)",
                      title=f"Refinement before and after · {loaded.info.name}", caption=caption,
                      path=figures_dir() / "07_refinement_examples.png")
plt.show()

# %% [markdown]
# ## The claims this notebook decides, and what this shows
#
# The paper's refinement claims (modest gains; the ones map performs like the Laplace map; the
# ground-truth mask bounds refinement), each decided by the rule in its `test` column from paired
# bootstraps over images, written to `tables/claims.csv` / `.md`; then the generated summary.

# %%
from uncertsam_utils.scorecard import update_claims  # noqa: E402

rests = f"one training seed per fusion module (seed {train_seed}), one posterior fit; evaluation seed {seed}"
claims = analysis.refinement_claims(analysis.deltas_from_results(results, n_boot=n_boot, seed=seed), available,
                                    extra_rests_on=rests)
written += update_claims(claims)
lines = [f"- **{c.statement}**: {c.verdict}. {c.evidence}." for c in claims] + ["", claim]
print("\n".join(lines))
print("\n".join(str(p) for p in written + [figures_dir() / "07_table1.png", figures_dir() / "07_refinement_examples.png"]))
