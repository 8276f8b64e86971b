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
# uncertainty content. This notebook regenerates Table 1 and tests that claim, counting both sources
# of variation: the test images and the training seeds.
#
# The variants (each a method of the common interface, scored by the same evaluation as notebook 06):
#
# | variant | first pass | second pass (with the same box) |
# |---|---|---|
# | `baseline` | SAM-2 | none |
# | `mask-prompt` | SAM-2 | its own logits as mask prompt, no fusion |
# | `fusion-laplace` | Laplace (the tempered posterior of notebook 04) | fusion of the Laplace logits with their entropy map |
# | `fusion-ones` | Laplace | the same, with an all-ones map (the ablation) |
# | `fusion-entropy` | SAM-2 | fusion with SAM-2's own entropy map |
# | `gt-mask-prompt` | — | the ground-truth mask as mask prompt (upper bound) |
#
# **The training recipe** (`refine/training.py`): the modules start at the **exact** initialisation,
# where the untrained module *is* mask-prompt refinement of its first pass, and that untrained module
# is **epoch 0, a candidate of model selection**. They train under the evaluation prompt (the **box
# regime**: each object's box with SAM's jitter, one step; its first passes are computed once and
# shared by the variants of a seed), lr 1e-4, for up to 5 epochs, and the epoch with the highest
# fit/val mIoU under the clean box is kept (ties to the earlier epoch; training stops after 2
# epochs without a better one). Fit/val, never the test domains, decides. Each variant is trained
# with several seeds (init, order, jitter); `fusion-laplace` and `fusion-ones` of one seed share
# everything but the map. Beside the selected modules, Table 1 reports the **trained** ones (the last
# epoch, whatever selection kept), so that the ones-map question is also asked of modules that
# training actually changed, and the paper's **click regime** (8 iterative click steps starting with
# the box or a click) as a documented variant.

# %% tags=["parameters"]
data_root = None  # benchmark root in the published layout; None: the generated UncertSAM-mini
model = "nano"  # model registry name (nano, sam2_hiera_large, ...)
checkpoint = None  # None: the model's default weights; "random": seeded random weights (smoke only)
variants = ["baseline", "mask-prompt", "fusion-laplace", "fusion-ones", "fusion-entropy", "gt-mask-prompt"]
max_images = None  # first N test images per dataset; None: all
seed = 42  # the paper's evaluation seed
device = "cpu"
posterior = None  # Laplace posterior file (the tempered recipe); None: cached (notebooks 04/06), or fitted here
fusion = None  # {variant: [fusion file per seed]} of the box regime; None: cached, or trained here
fit_missing = True  # fit / train missing parts (cached); False: use only the parts already there
allow_missing_methods = False  # a variant that cannot be built stops the notebook; True: left out, named in the tables
allow_missing_datasets = False  # means over fewer than the 8 datasets stop the notebook; True: allowed, said in the tables
fit_images = None  # Laplace posterior: the first N images of fit/train (None: all), as notebooks 04-06
fusion_images = 400  # fusion training: the first N images of fit/train (None: all, the paper's)
fusion_val_images = 200  # fusion selection: the first N images of fit/val, every object under the clean box (mini: 100, for the CPU budget)
fusion_epochs = 5  # at most (the paper's 5); patience stops earlier
patience = 2  # epochs without a better fit/val mIoU before stopping
fusion_seeds = [0, 1, 2]  # training seeds of every box-regime variant
trained_rows = ["fusion-laplace", "fusion-ones"]  # variants whose last trained epoch is evaluated too
click_variants = ["fusion-laplace"]  # variants also trained in the paper's click regime
click_epochs = 1  # epochs of the click regime
click_seeds = [0]  # seeds of the click regime
n_boot = 4000  # bootstrap resamples (images, and images x seeds)

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from uncertsam_utils import analysis
from uncertsam_utils.analysis import seeds as analysis_seeds
from uncertsam_utils.evaluation import (build_available, build_methods, check_coverage, evaluate_cached,
                                        find_fitted_parts, load_counts, load_results)
from uncertsam_utils.paths import figures_dir, tables_dir
from uncertsam_utils.plots import refinement_examples, refinement_grid
from uncertsam_utils.refine.dedup import copy_duplicates, unique_methods
from uncertsam_utils.refine.family import seeded_methods, train_fusion_family
from uncertsam_utils.refine.fusion import load_fusion
from uncertsam_utils.refine.training import FusionTrainConfig
from uncertsam_utils.seeds import seeded_name
from uncertsam_utils.session import open_session
from uncertsam_utils.uq.laplace import LastLayerPosterior

session = open_session(data_root, model, checkpoint, device)
root, datasets, loaded, predictor = session.root, session.datasets, session.loaded, session.predictor
clock = time.perf_counter(), time.process_time()

# %% [markdown]
# ## The fitted parts: the Laplace posterior and the fusion modules
#
# The posterior is the `tempered` one of notebooks 04 and 06 (cached). The modules of every variant
# and seed are trained together: the encodings of fit/train and fit/val are computed once, and each
# seed's first passes once for all its variants; each module is cached on its own (model, recipe,
# seed, data, posterior, code), so a rerun trains nothing (`uncertsam train fusion` trains one from
# the shell).

# %%
tic = time.perf_counter()
parts = find_fitted_parts(root, loaded, ["laplace"], posterior={"laplace": posterior}, fit_missing=fit_missing,
                          fit_images=fit_images)  # the posterior notebooks 04 and 06 use
posterior_file = parts["posterior"].get("laplace")
fitted = LastLayerPosterior.load(posterior_file, loaded) if posterior_file else None
box = FusionTrainConfig(epochs=fusion_epochs, patience=patience or None, val_images=fusion_val_images)
click = FusionTrainConfig.click_regime(epochs=click_epochs, patience=patience or None, val_images=fusion_val_images)
fusion_variants = [v for v in variants if v.startswith("fusion-")]
box_files = {f"fusion-{u}": files for u, files in train_fusion_family(
    root, loaded, [v.removeprefix("fusion-") for v in fusion_variants], seeds=fusion_seeds, config=box,
    posterior=fitted, limit=fusion_images, train_missing=fit_missing).items()}
box_files.update({v: list(files) for v, files in (fusion or {}).items()})
click_files = {f"fusion-{u}": files for u, files in train_fusion_family(
    root, loaded, [v.removeprefix("fusion-") for v in click_variants], seeds=click_seeds, config=click,
    posterior=fitted, limit=fusion_images, train_missing=fit_missing).items()}
print(f"fitted parts ready in {time.perf_counter() - tic:.0f} s")

# %% [markdown]
# ## What training did, and what fit/val selection kept
#
# Per module and validated epoch: the fit/val loss and mIoU under the clean box (every object), and
# the paired difference of the mIoU against the untrained module (epoch 0) over the fit/val masks
# with its standard error. `kept` marks the selected epoch.

# %%
records = {}
for label, groups in (("box", box_files), ("click", click_files)):
    for variant, files in groups.items():
        records[f"{variant} ({label})"] = [load_fusion(f)[1]["training"] for f in files if f is not None]
selection = analysis_seeds.selection_table(records)
selection_text = analysis_seeds.describe_selection(selection[selection["regime"] == "box"])
print(selection_text)
selection.drop(columns=["train loss"]).round(4)

# %% [markdown]
# ## Evaluation (cached)
#
# Every variant on every test image of every domain, the GT box as prompt, scored per mask: the
# selected module of each seed (`<variant>.s<seed>`), the last trained epoch's (`<variant>.trained.s<seed>`)
# for `trained_rows`, and the click regime's trained module (`<variant>.click.trained.s<seed>`).
# Modules that selection kept untrained are mask-prompt refinement of their first pass, identical by
# construction whatever the seed (and for `fusion-entropy`, identical to `mask-prompt`): each such
# group is evaluated once and its rows copied to the others (`refine/dedup.py`). The CSVs are cached
# by a hash of every input; an interrupted run resumes where it stopped.

# %%
plain, left_out = build_available([v for v in variants if v not in fusion_variants], loaded,
                                  allow_missing=allow_missing_methods, posterior=parts["posterior"])
methods, rows = dict(plain), {name: [name] for name in plain}
missing = [v for v in fusion_variants if not box_files.get(v) or None in box_files[v]]
if missing and not allow_missing_methods:
    raise RuntimeError(f"no trained modules for {', '.join(missing)}: fit_missing=True trains them")
for variant in [v for v in fusion_variants if v not in missing]:
    kinds = [("selected", variant, box_files[variant], fusion_seeds)]
    if variant in trained_rows:
        kinds.append(("last", f"{variant}.trained", box_files[variant], fusion_seeds))
    if click_files.get(variant) and None not in click_files[variant]:
        kinds.append(("last", f"{variant}.click.trained", click_files[variant], click_seeds))
    for state, label, files, seeds in kinds:
        built = seeded_methods(variant, files, seeds, loaded, fitted, state=state, label=label)
        methods.update(built)
        rows[label] = list(built)
unique, same_as = unique_methods(methods)
print(f"{len(methods)} methods, {len(unique)} evaluated ({len(same_as)} identical by construction to one of them)")
files = {f"posterior:{k}": v for k, v in parts["posterior"].items()}
tic = time.perf_counter(), time.process_time()
out_dir = evaluate_cached("07", predictor, loaded, unique, root, datasets, files, max_images=max_images, seed=seed)
print(f"evaluated in {time.perf_counter() - tic[0]:.0f} s ({time.process_time() - tic[1]:.0f} s CPU): {out_dir.name}")
results = copy_duplicates(load_results(out_dir, datasets=datasets, methods=list(unique)), same_as)
coverage = check_coverage(results, list(methods), allow_missing_datasets=allow_missing_datasets, left_out=left_out)
counts = load_counts(out_dir, datasets)  # images and masks read, scored and skipped: every table says them
scored_note = analysis.counts_note(counts)

# %% [markdown]
# ## Table 1: mIoU and mBIoU per dataset, the mean and spread over seeds
#
# Per dataset the mean over masks (mBIoU: boundary IoU at dilation ratio 0.02), averaged over the
# training seeds of a row; the mean columns are the unweighted means over the datasets, with their
# standard deviation over seeds (`sd`; one seed: none). Rows: the selected modules of the box regime
# (the default, named by the variant), their last trained epoch (`trained`), the click regime's
# trained module, and the references.

# %%
# NBVAL_CHECK_OUTPUT
def row_label(label: str) -> str:
    variant, _, kind = label.partition(".")
    return {"": variant, "trained": f"{variant} (trained)", "click.trained": f"{variant} (click, trained)"}[kind]


labels = {row_label(label): names for label, names in rows.items()}
order = [m for m in ("baseline", "mask-prompt") if m in labels] + \
        [row_label(k) for k in rows if k.startswith("fusion-")] + [m for m in ("gt-mask-prompt",) if m in labels]
spread = {metric: analysis_seeds.seed_spread(results, {k: labels[k] for k in order}, metric, datasets)
          for metric in ("IoU", "BIoU_2")}
table1 = pd.DataFrame({"method": order, "seeds": spread["IoU"]["seeds"].to_numpy()})
for metric, name in (("IoU", "mIoU"), ("BIoU_2", "mBIoU (0.02)")):
    for dataset in datasets:
        table1[f"{dataset} {name}"] = spread[metric][dataset].to_numpy()
for metric, name in (("IoU", "mIoU"), ("BIoU_2", "mBIoU (0.02)")):
    table1[f"mean {name}"] = spread[metric]["mean"].to_numpy()
    table1[f"mean {name} sd over seeds"] = spread[metric]["sd"].to_numpy()
note = (f"Means over masks, averaged over each row's training seeds; mean columns: unweighted mean over the "
        f"{len(datasets)} datasets, with its sd over seeds. Model {loaded.label}; data {Path(root).name}; split test; "
        f"max_images {max_images}. Fusion modules: box regime (jittered box, one step), {fusion_images or 'all'} "
        f"fit/train images, up to {fusion_epochs} epochs, patience {patience}, selected on fit/val mIoU "
        f"({fusion_val_images} images, clean box) with the untrained exact init as epoch 0; seeds "
        f"{', '.join(map(str, fusion_seeds))}; '(trained)': the last trained epoch; '(click, trained)': the paper's "
        f"8-step click regime, {click_epochs} epoch(s), seeds {', '.join(map(str, click_seeds))}; Laplace first pass: "
        f"the tempered posterior (T {fitted.temperature:.3g}).") if fitted else "No Laplace posterior."
note += coverage.note + " " + scored_note
written = analysis.write_table(counts, tables_dir() / "07_counts", title="Images and masks read, scored and skipped",
                               note=scored_note)
written += analysis.write_table(table1, tables_dir() / "07_table1", title="Table 1: refinement variants, mIoU and "
                               "mBIoU per dataset (mean over training seeds)", note=note)
table1.set_index("method")[[c for c in table1.columns if c.startswith("mean") or c == "seeds"]].round(4)

# %% [markdown]
# Every seed of every variant: the epoch fit/val kept, its fit/val mIoU, and the test mean mIoU over
# the datasets.

# %%
# NBVAL_CHECK_OUTPUT
seed_rows = []
for label, names in rows.items():
    if not label.startswith("fusion-"):
        continue
    variant, _, kind = label.partition(".")
    regime = "click" if kind.startswith("click") else "box"
    means = analysis_seeds.dataset_means(results, names, "IoU").reindex(columns=datasets).mean(axis=1)
    for name, record in zip(names, records[f"{variant} ({regime})"]):
        epoch = record["best_epoch"] if kind == "" else record["last_epoch"]
        val = next(r["val_miou"] for r in record["history"] if r["epoch"] == epoch)
        seed_rows.append({"row": row_label(label), "seed": record["seed"], "epoch": epoch, "val mIoU": val,
                          "test mean mIoU": means[name]})
seeds_table = pd.DataFrame(seed_rows)
written += analysis.write_table(seeds_table, tables_dir() / "07_seeds", title="Table 1 by training seed: the epoch "
                                "evaluated (selected, or the last trained), its fit/val mIoU and the test mean mIoU",
                                note=selection_text + " " + note)
seeds_table.round(4)

# %% [markdown]
# ## Comparisons over images and seeds
#
# Each difference is the mean over datasets of the mean over masks, paired by mask (and by seed
# where both rows have seeds: `fusion-laplace` and `fusion-ones` of one seed share init and data).
# Its 95 % interval counts both sources of variation (`analysis_seeds`: a bootstrap of images within
# datasets, the spread over seeds, Welch–Satterthwaite's t interval; the crossed bootstrap of images
# and seeds beside it) and the larger source is named. Two rows whose modules are all untrained are
# identical by construction. Per dataset: the crossed bootstrap, Holm-corrected across datasets. The
# same tables decide the scorecard's claims at the end (`analysis.deltas_from_crossed`).

# %%
# NBVAL_CHECK_OUTPUT
comparisons = [("fusion-laplace", "fusion-ones"), ("fusion-laplace (trained)", "fusion-ones (trained)"),
               ("fusion-laplace", "mask-prompt"), ("fusion-laplace", "baseline"),
               ("fusion-laplace (trained)", "mask-prompt"), ("fusion-laplace (trained)", "baseline"),
               ("fusion-ones (trained)", "mask-prompt"), ("fusion-entropy", "mask-prompt"),
               ("fusion-laplace (click, trained)", "mask-prompt"), ("mask-prompt", "baseline")]
delta = analysis.deltas_from_crossed(results, labels, n_boot=n_boot, seed=seed)
tests, tables, sentences = {}, [], []
for a, b in comparisons:
    if a in labels and b in labels:
        for metric in ("IoU", "BIoU_2"):
            tables.append(delta(a, b, metric))
        tests[a, b] = analysis_seeds.crossed_difference(results, labels[a], labels[b], "IoU", n_boot=n_boot, seed=seed)
        sentences.append(analysis_seeds.describe_crossed(tests[a, b], a, b))
paired_table = pd.concat(tables, ignore_index=True)
print("\n".join(f"- {s}." for s in sentences))
written += analysis.write_table(paired_table, tables_dir() / "07_paired_tests",
                                title="Differences between refinement rows over images and training seeds",
                                note="\n".join(f"- {s}." for s in sentences) + f"\n\n{n_boot} resamples, seed {seed}. "
                                     + note)
paired_table[paired_table["dataset"] == "mean"].drop(columns=["dataset", "p_holm"]).round(4)

# %% [markdown]
# ## Table 1 as a figure
#
# Per dataset the mean mIoU over masks (each mask's IoU averaged over the row's seeds) with its 95 %
# bootstrap interval over images, and the mean over the datasets with its interval (the datasets'
# resamples averaged); the interval over seeds is the comparisons' business, below.

# %%
from uncertsam_utils import plots  # noqa: E402

averaged = analysis_seeds.seed_mean_rows(results, {k: labels[k] for k in order}, ["IoU"])
table1_means = analysis.dataset_mean_summary(averaged, ["IoU"], n_boot=1000, seed=seed,
                                             allow_missing=allow_missing_datasets)
summary = analysis.summarise(averaged, ["IoU"], n_boot=1000, seed=seed)
fig = plots.interval_figure(analysis.numeric_table(summary, ["IoU"]), "IoU", datasets=datasets, methods=order,
                            mean_summary=table1_means, label="mIoU",
                            title=f"Table 1: refinement variants · {loaded.info.name}")
fig.savefig(figures_dir() / "07_table1.png", dpi=110)
plt.show()

# %% [markdown]
# ## Before and after
#
# Objects chosen by rule, never by hand: the worst, the median and the best object by Δ IoU of
# `fusion-laplace` (seed 0's selected module) against the baseline (stated in the caption), with the
# Laplace first pass's entropy map (what `fusion-laplace` is fed) and each variant's mask with its IoU.

# %%
shown = {name: methods[name] for name in ("baseline", "mask-prompt") if name in methods}
for label in ("fusion-laplace", "fusion-laplace.trained", "fusion-ones.trained"):
    if label in rows:
        shown[row_label(label)] = methods[rows[label][0]]
if "gt-mask-prompt" in methods:
    shown["gt-mask-prompt"] = methods["gt-mask-prompt"]
compared = rows["fusion-laplace"][0] if "fusion-laplace" in rows else next(m for m in methods if m != "baseline")
chosen = analysis.select_examples(results, "IoU", compared, "baseline")
caption = analysis.examples_caption(chosen, "IoU", compared, "baseline")
map_method = build_methods(["laplace"], loaded, posterior=parts["posterior"])["laplace"] if fitted else methods["baseline"]
examples = refinement_examples(predictor, shown, root, uncertainty_method=map_method, seed=seed, chosen=chosen)
fig = refinement_grid(examples, map_label=f"first-pass entropy ({'Laplace' if fitted else 'SAM-2'}, nats)",
                      title=f"Refinement before and after · {loaded.info.name}", caption=caption,
                      path=figures_dir() / "07_refinement_examples.png")
plt.show()

# %% [markdown]
# ## The claims this notebook decides, and what this shows
#
# The paper's refinement claims (modest gains over the baseline; the ones map performs like the
# Laplace map; the ground-truth mask bounds refinement) and ours (fusion gains over plain
# mask-prompt refinement), each decided by the rule in its `test` column from the crossed
# images x seeds comparisons above (the mean over datasets with its t interval; the evidence names
# the dominant source of variation), written to `tables/claims.csv` / `.md`; then the generated
# summary. The ones-map test is decided on the selected modules unless they are identical by
# construction (all untrained), then on the trained ones (last epoch): an untrained module ignores
# its map, so identity there says nothing about the map.

# %%
# NBVAL_CHECK_OUTPUT
from uncertsam_utils.scorecard import update_claims  # noqa: E402

seeds_note = (f"{len(fusion_seeds)} training seeds per box-regime fusion row ({', '.join(map(str, fusion_seeds))}), "
              f"fit/val selection on {fusion_val_images} images")
claims = analysis.refinement_claims(delta, list(labels), extra_rests_on=seeds_note, decimals=4,
                                    ones_pairs=[("fusion-laplace", "fusion-ones"),
                                                ("fusion-laplace (trained)", "fusion-ones (trained)")])
written += update_claims(claims)
print("\n".join(f"- {c.id}: {c.verdict.upper()}. {c.evidence}" for c in claims))

# %%
print(analysis_seeds.describe_refinement(spread["IoU"].set_index("method"), tests, selection_text))
print(f"\nnotebook time: {time.perf_counter() - clock[0]:.0f} s wall, {time.process_time() - clock[1]:.0f} s CPU")
print("\n".join(str(p) for p in written + [figures_dir() / "07_refinement_examples.png"]))
