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
# # 09 · Beyond the paper: its open questions, answered on the embedded default
#
# The paper ends with questions it could not answer, because its SAM-2 cannot be retrained on a
# workstation. This project trains its own SAM-2 (the nano model) on two CPU cores, so it can:
#
# 1. **End-to-end**: would training the mask decoder, the uncertainty signal and the fusion module
#    together leverage the uncertainty map better than post-hoc fusion on a frozen model?
# 2. **Cross-domain exposure**: would training the refinement on shifted domains (the eight domains'
#    `val` splits, never `test`) help it generalise; and is that "seen this domain" or "seen shifted
#    domains" (leave-one-domain-out)?
# 3. **Spatial context**: the paper's fusion is a 1×1 convolution, so each position sees only its own
#    uncertainty; would a module with a receptive field let the map contribute beyond the ones map?
# 4. **Combined uncertainty**: do the combined maps (Laplace entropy with prompt perturbation's) help as
#    a refinement input, and do they correlate with the errors better than each alone?
#
# **Design.** Every question compares a *treatment* with its *ones-map control* (the same module and
# training, the map replaced by ones: the paper's ablation) and with the *post-hoc baseline* (the
# paper's 1×1 fusion of the Laplace first pass, SAM-2 frozen, trained on fit/train). All arms share one
# recipe: Table 1's box regime (the evaluation prompt with SAM's box jitter; lr 1e-4, AdamW, SAM's
# schedule, loss 20·focal + Dice + IoU L1, exact initialisation so the untrained module is mask-prompt
# refinement), the same number of training images and epochs, the same seeds (a seed fixes the init,
# the order and the jittered boxes, shared by the arms). Each arm gives two modules: the **trained**
# one (last epoch) and the **selected** one (highest fit/val mIoU, the untrained module a candidate;
# never the test split). The verdicts are decided on the trained modules: the selected ones are
# usually the untrained module, which says nothing about the map. Scores are Table 1's (mIoU and mBIoU
# per domain, the box prompt, every test image); differences are bootstrapped over test images and
# training seeds together (a crossed bootstrap), Holm-corrected across the domains.
#
# **Budget.** Every question's arms run for 3 training seeds; leave-one-domain-out adds one arm per
# domain and seed, 54 arms in all. The mini profile (`params/mini.yaml`) therefore trains each arm
# for one epoch on **160** images (exposure arms: 96 fit/train images and 8 val images of each
# domain), selects on **48** fit/val images and scores every test image of the eight domains, so that
# the notebook finishes within 30 minutes on two CPU cores; the defaults below (400 training and 200
# fit/val images, as notebook 07) are for a machine with more time. A small training budget makes
# small effects: the answers are about what this budget can show, each with its interval.

# %% tags=["parameters"]
data_root = None  # benchmark root in the published layout; None: the generated UncertSAM-mini
model = "nano"  # model registry name
checkpoint = None  # None: the model's default weights
device = "cpu"
seed = 42  # evaluation seed (what the methods draw per image); the mini profile sets 0
train_seeds = [0, 1, 2]  # training seeds of every arm
epochs = 1  # training epochs of every arm (the same budget for all)
fusion_images = 400  # training images per epoch (fit/train; exposure arms: fit/train and domain val, same count)
val_images = 200  # fit/val images of the selection
domain_val_images = None  # val images per domain in the exposure arms (None: the whole val split)
decoder_lr = 1e-5  # end-to-end arms: learning rate of the fine-tuned decoder (the new parts: 1e-4)
K = 10  # prompt perturbations of the combined maps (question 4)
questions = ["end_to_end", "cross_domain", "spatial_context", "combined_input"]
max_images = None  # first N test images per domain; None: all
posterior = None  # Laplace posterior file; None: cached (notebooks 04, 06, 07), or fitted here
fit_missing = True
fit_images = None  # Laplace posterior: the first N images of fit/train (None: all), as notebooks 04-07
n_boot = 10000  # bootstrap resamples

# %%
import os
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from uncertsam_utils import analysis
from uncertsam_utils.evaluation import find_fitted_parts
from uncertsam_utils.analysis import open_questions as report
from uncertsam_utils.openq.pool import ArmRecipe
from uncertsam_utils.openq.run import run_open_questions
from uncertsam_utils.paths import figures_dir, tables_dir
from uncertsam_utils.plots.open_questions import question_figure
from uncertsam_utils.scorecard import update_claims
from uncertsam_utils.session import open_session

clock = time.perf_counter(), time.process_time(), os.getloadavg()
session = open_session(data_root, model, checkpoint, device)
datasets = session.datasets

# %% [markdown]
# ## Train and score every arm (cached)
#
# The Laplace posterior is notebook 04's default (cached). The arms are trained on one pool of images
# encoded once, the first passes of a seed computed once and shared (``openq.pool``); each trained and
# selected module is scored on the test images of every domain (leave-one-domain-out modules on their
# held-out domain) by Table 1's columns, from encodings and first passes computed once
# (``evaluation.bank``). Every arm's record and scores are cached; a rerun reads them.

# %%
parts = find_fitted_parts(session.root, session.loaded, ["laplace"], posterior={"laplace": posterior},
                          fit_missing=fit_missing, fit_images=fit_images, seed=seed)  # the posterior of 06 and 07
posterior_file = parts["posterior"]["laplace"]
recipe = ArmRecipe(epochs=epochs, images=fusion_images, val_images=val_images, domain_val_images=domain_val_images,
                   decoder_lr=decoder_lr, prompt_K=K)
run = run_open_questions(session, questions, train_seeds, recipe, posterior_file=posterior_file,
                         max_images=max_images, eval_seed=seed, progress=False)
results, training = run.results, run.training
wall, cpu = time.perf_counter() - clock[0], time.process_time() - clock[1]
print(f"{len(run.arms)} arms; {wall:.0f} s wall, {cpu:.0f} s CPU (this process) so far; load average "
      f"{clock[2][0]:.1f} at the start, {os.getloadavg()[0]:.1f} now; CPU s by part (0 when cached): "
      + ", ".join(f"{k} {v:.0f}" for k, v in run.cpu.items()))

# %% [markdown]
# What training did: the fit/val mIoU of each arm per epoch (epoch 0: the untrained module, which is
# mask-prompt refinement of the Laplace first pass) and the epoch the selection kept.

# %%
note = (f"Model {session.loaded.label}; training: {fusion_images} images x {epochs} epoch(s) per arm, seeds "
        f"{train_seeds}, selection on {val_images} fit/val images (epoch 0 = untrained); evaluation: test split, "
        f"max_images {max_images}, seed {seed}.")
# the arms' CPU seconds stay in their cached records: a table of them would differ on every fresh run
history = training[["method", "hold_out", "seed", "epoch", "val_miou", "val_miou_first", "selected_epoch"]].rename(
    columns={"val_miou": "val mIoU refined", "val_miou_first": "val mIoU first pass"})
written = analysis.write_table(history, tables_dir() / "09_training", title="Notebook 09: training of every arm",
                               note=note)
history[history["hold_out"].isna()].pivot_table(index=["method", "seed"], columns="epoch", values="val mIoU refined")

# %% [markdown]
# ## The four questions
#
# For each question: its table (each method, trained and selected, mean over seeds, and the
# references), the comparisons (Δ = a − b, crossed bootstrap over images and seeds, per domain and the
# mean over the domains), a figure, the scorecard row and what it shows.
#
# **The rule of each verdict** (stated before the numbers, computed by `analysis.delta_claim` and
# `analysis.joint_claim`): the question's claim *holds* when its treatment (trained, last epoch) beats
# **both** its ones-map control and the post-hoc baseline: for each of the two comparisons, the 95 %
# interval of the mean Δ mIoU over the domains (a t interval with both standard errors: test images
# and training seeds, `analysis.seeds.crossed_difference`) lies above 0 and no domain is
# Holm-significantly lower (crossed bootstrap per domain, Holm across the eight domains). It *does not
# hold* when either interval lies below 0 or at least half of the domains are significantly lower;
# otherwise it is *inconclusive*. Both comparisons must hold (an intersection–union test), so no
# correction across the two is needed. A difference whose interval lies within ±0.005 mIoU is said to
# be "no difference", with its interval.

# %%
# NBVAL_CHECK_OUTPUT
claims, texts, figures = [], {}, {}
rests = f"{len(train_seeds)} training seeds per method"
for slug in questions:
    question = report.QUESTIONS[slug]
    stem = f"09_q{question.number}_{question.slug}"
    table = report.method_table(results, training, question, datasets)
    tests = report.tests_table(results, question, n_boot=n_boot, seed=seed)
    claim = report.question_claim(question, tests, rests_on=rests)
    claims.append(claim)
    texts[slug] = report.describe_question(question, table, tests, claim)
    written += analysis.write_table(table, tables_dir() / stem, title=f"Q{question.number}: {question.title} (mIoU)",
                                    note=texts[slug] + "\n\n" + note)
    written += analysis.write_table(tests, tables_dir() / f"{stem}_tests",
                                    title=f"Q{question.number}: {question.title}, paired differences", note=note)
    figures[slug] = question_figure(question, results, tests, datasets, path=figures_dir() / f"{stem}.png")
    written.append(figures_dir() / f"{stem}.png")
    plt.close(figures[slug])
    print(report.headline(question, tests, claim))

# %% [markdown]
# The figures, what each question's evidence shows, and its table (mean over seeds):

# %%
for slug in questions:
    display(figures[slug])
    display(Markdown(texts[slug]))
    display(report.method_table(results, training, report.QUESTIONS[slug], datasets).round(4))

# %% [markdown]
# ## Question 4, the other half: combined maps and the errors
#
# The maps the question-4 arms are fed, judged as uncertainty estimates: Pearson r of each map with the
# soft error of the Laplace first pass (the prediction the fusion module refines), per mask, mean over
# the masks of each domain.

# %%
# NBVAL_CHECK_OUTPUT
if not run.correlation.empty:
    correlation = report.correlation_table(run.correlation, datasets)
    correlation_text = report.describe_correlation(run.correlation, n_boot=n_boot, seed=seed)
    written += analysis.write_table(correlation, tables_dir() / "09_q4_correlation",
                                    title="Q4: Pearson r of each map with the Laplace first pass's soft error",
                                    note=correlation_text + "\n\n" + note)
    texts["correlation"] = correlation_text
    print(correlation_text)
    display(correlation.round(3))

# %% [markdown]
# ## The scorecard and what this shows

# %%
# NBVAL_CHECK_OUTPUT
written += update_claims(claims)
for claim in claims:
    print(f"{claim.id}: {claim.verdict}")
display(Markdown("\n\n".join(texts.values())))
wall, cpu = time.perf_counter() - clock[0], time.process_time() - clock[1]
print(f"notebook 09: {wall:.0f} s wall, {cpu:.0f} s CPU, load average {clock[2][0]:.1f} -> {os.getloadavg()[0]:.1f}")
print("\n".join(str(p) for p in written))
