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
# # 04 · Last-layer Laplace approximation
#
# **The idea.** Treat one small layer of SAM-2 as uncertain and everything else as fixed. The
# layer is the last Linear of the hypernetwork MLP of mask token 0 (256 → 32: 8,224 parameters on
# every official SAM-2; 64 → 8 = 520 on the nano model). Its output z = W h + b (the
# "hypernetwork vector") is multiplied with the upscaled mask embedding U to give every
# low-resolution logit, f_p = u_pᵀ z. A Laplace approximation puts a Gaussian on (W, b) around the
# trained weights, with precision = prior precision + curvature of the training loss (the
# generalised Gauss–Newton matrix, GGN). Because f is *linear* in (W, b), everything is exact and
# cheap:
#
# * **curvature in closed form.** The Jacobian of pixel p factorises as u_p ⊗ h̃ (h̃ = [h; 1]), so
#   one prompt's GGN is A ⊗ h̃h̃ᵀ with A = U Λ Uᵀ (C × C, Λ the likelihood's Hessian in the logits):
#   a sum over pixels, never a Jacobian;
# * **prediction in closed form.** z is Gaussian, N(z_MAP, Σ_z) with Σ_z = J Σ Jᵀ (C × C), so every
#   logit is Gaussian, N(μ_p, u_pᵀ Σ_z u_p): per-pixel maps are one-dimensional Gaussian integrals of
#   the sigmoid, computed in closed form, with one encoder and one decoder pass per image.
#
# laplace-torch is the posterior engine: the posterior is a laplace-torch `DiagLaplace` /
# `KronLaplace` / `FullLaplace`, fitted by its own `fit` loop with our closed-form curvature as the
# backend; its marginal-likelihood optimisation, grid search, `functional_variance`, sampling and
# `state_dict` are used as they are.
#
# **Two recipes.**
#
# | | `paper` (reference code) | `exact` (default) |
# |---|---|---|
# | likelihood of the fit | one softmax over the 128² resized pixels | per-pixel Bernoulli at the model's low resolution |
# | prior precision | 1 (never tuned) | marginal likelihood (or grid search on a validation split) |
# | prediction | S = 1,000 Monte Carlo samples, entropy of the mean | closed form (probit mixture; MI and std without sampling) |
# | numerics | bf16: probabilities clipped to [0.01, 0.99] (reproduced, an option) | fp32 |
#
# The paper's softmax over all pixels treats a mask as *one* categorical draw of a single pixel,
# while the prediction uses independent per-pixel sigmoids: the curvature is tiny, the prior of 1
# dominates and the logit variances are large. The exact recipe fits the likelihood the prediction
# uses and lets the data choose the prior precision.
#
# **Differences from the reference code, and why:** the fit is one pass with jittered GT boxes
# (no flips or point prompts: the posterior is for box prompts; the reference's `multiplier=3` has
# no effect either); mask token 0 always (no stability fallback, which would zero the curvature);
# the paper's MC samples the C-dimensional hypernetwork vector (same distribution, vectorised)
# rather than 8,224 weights in a Python loop; the posterior file holds only the treated layer's
# posterior and the identity of the model it belongs to.

# %% tags=["parameters"]
data_root = None  # None: UncertSAM-mini in the cache (generated on first use); or a root in the layout
model = "nano"  # registry name: nano, sam2.1_hiera_tiny, ...
checkpoint = None  # None: default weights; "random": seeded random weights (pipeline checks only); or a path
recipe = "exact"  # the posterior shown as `laplace`: exact or paper
structure = "diag"  # diag, kron or full
fit_images = None  # None: the whole fit/train split; N: its first N images
seed = 0
images_per_domain = 1

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from uncertsam_utils.data.layout import SplitReader
from uncertsam_utils.data.resize import boxes_from_masks, resize_masks
from uncertsam_utils.evaluation import fit_posterior_cached
from uncertsam_utils.paths import figures_dir
from uncertsam_utils.plots import METHOD_COLOURS, qualitative_grid, qualitative_rows
from uncertsam_utils.session import open_session
from uncertsam_utils.uq import image_generator, make_method
from uncertsam_utils.uq.laplace import LastLayerPosterior

session = open_session(data_root, model, checkpoint, seed=seed)
root, datasets, loaded, predictor = session.root, session.datasets, session.loaded, session.predictor
layer = predictor.treated_layer
fit_split = SplitReader(root, "fit", "train", resize_check_size=predictor.image_size)
print(f"treated layer: Linear({layer.in_features} → {layer.out_features}), "
      f"{layer.weight.numel() + layer.bias.numel():,} parameters; low resolution {predictor.mask_size}²")
print(f"fitting data: {fit_split.split_dir} ({len(fit_split)} images, using {fit_images or 'all'})")

# %% [markdown]
# ## The fit
#
# One pass over the fit split: per image one random object, its GT box with SAM's box jitter,
# one encoder and one decoder pass, the closed-form curvature added to laplace-torch's H (its
# progress bar). Posteriors are cached by model, data, recipe, structure and seed (the same cache
# as notebooks 06 and 07, which therefore use these very posteriors).

# %%
def cached_posterior(recipe_name: str, structure_name: str) -> LastLayerPosterior:
    """The posterior of the one fitting road (``fit_posterior_cached``), shared with notebooks 06-07."""
    start = time.perf_counter()
    path = fit_posterior_cached(root, loaded, recipe_name, structure=structure_name, fit_images=fit_images, seed=seed,
                                predictor=predictor)
    posterior = LastLayerPosterior.load(path, loaded)
    info = posterior.info
    print(f"{recipe_name}/{structure_name}: {info['prompts']} prompts, fitted in {info['fit_seconds']:.1f} s "
          f"({info['fit_seconds'] / info['prompts'] * 1000:.0f} ms per image); ready in "
          f"{time.perf_counter() - start:.1f} s from {path.name}")
    return posterior


main = cached_posterior(recipe, structure)
paper = main if (recipe, structure) == ("paper", "diag") else cached_posterior("paper", "diag")

# %% [markdown]
# ## The prior precision
#
# The log marginal likelihood of the Laplace approximation, log p(D | τ) ≈ log p(D | θ*) −
# ½ τ ‖θ*‖² − ½ log det(H + τ I) + ½ P log τ, as laplace-torch computes it for each prior
# precision τ on a log grid; the exact recipe takes the best grid point and refines it with
# laplace-torch's `optimize_prior_precision(method="marglik")`. The paper keeps τ = 1. Its curve
# (right) is for its own, softmax-over-pixels likelihood: the curvature of one categorical per image
# is tiny, so almost any τ beats the data.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), constrained_layout=True)
for ax, posterior, name in ((axes[0], main, f"laplace ({main.recipe}/{main.structure})"),
                            (axes[1], paper, "laplace-paper (paper/diag)")):
    search = posterior.info["prior"]
    colour = METHOD_COLOURS["laplace" if posterior is main else "laplace-paper"]
    curve = np.asarray(search["marglik"])
    best = max(curve.max(), search["log_marglik"])
    ax.plot(search["log10_grid"], curve - best, color=colour, lw=2)
    ax.set_yscale("symlog", linthresh=1.0)  # the optimum and the drop of several orders beside it
    tau = posterior.prior_precision.tolist()
    for value in tau:
        ax.axvline(np.log10(value), color="black", ls="--", lw=1)
    ax.set_title(f"{name}: τ = {', '.join(f'{t:.3g}' for t in tau)} ({search['method']})", fontsize=9)
    ax.set_xlabel("log10 prior precision τ")
    ax.set_ylabel("log marginal likelihood − its maximum")
fig.savefig(figures_dir() / "04_laplace_marglik.png", dpi=100)
plt.show()
for posterior in (main, paper):
    print(f"{posterior.recipe}/{posterior.structure}: τ = {posterior.prior_precision.tolist()}, "
          f"log marglik {posterior.info['prior']['log_marglik']:.6g}, {posterior.info['prompts']} prompts")

# %% [markdown]
# ## The paper's recipe beside the exact one
#
# The same objects through both: `laplace` (the exact predictive of the main posterior) and
# `laplace-paper` (1,000 MC samples, clipped, of the paper's posterior). Columns: the image and
# its box, the entropy of p̄ of each, their difference, and the logit standard deviation √v_p of
# each posterior (log scale): the paper's prior of 1 with a nearly flat likelihood leaves the
# logits far more uncertain, so its entropy saturates near ln 2 wherever the MAP logit is not
# large.

# %%
exact_method = make_method("laplace", posterior=main)
paper_method = make_method("laplace-paper", posterior=paper)
examples = []
for dataset in datasets:
    reader = SplitReader(root, dataset, "test")
    sample = reader.load(reader.image_ids[0])
    boxes, vanished = boxes_from_masks(resize_masks(sample.masks, predictor.image_size))
    if (~vanished).sum() == 0:
        continue
    boxes, masks = boxes[~vanished], sample.masks[~vanished]
    largest = int(masks.reshape(len(masks), -1).sum(1).argmax())
    generator = image_generator(seed, dataset, sample.image_id)
    ours = exact_method.predict(predictor, sample.image, boxes).at_original_size()
    theirs = paper_method.predict(predictor, sample.image, boxes, generator=generator).at_original_size()
    examples.append((dataset, sample, boxes[largest], largest, ours, theirs))

columns = ("image + box", "laplace: H(p̄)", "laplace-paper: H(p̄)", "difference", "laplace: √v", "laplace-paper: √v")
fig, axes = plt.subplots(len(examples), len(columns), figsize=(2.3 * len(columns), 2.3 * len(examples)),
                         squeeze=False, constrained_layout=True)
sd_all = np.concatenate([r.maps["logit_variance"][k].sqrt().flatten().numpy() for *_, k, a, b in examples for r in (a, b)])
sd_range = (max(np.percentile(sd_all, 1), 1e-4), np.percentile(sd_all, 99.5))
from matplotlib.colors import LogNorm  # noqa: E402

for row, (dataset, sample, box, k, ours, theirs) in zip(axes, examples):
    height, width = sample.image.shape[:2]
    scale = np.array([width, height, width, height]) / predictor.image_size
    x0, y0, x1, y1 = box * scale
    row[0].imshow(sample.image)
    row[0].add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=METHOD_COLOURS["laplace"], lw=2))
    row[0].set_ylabel(dataset, fontsize=9)
    h_ours, h_theirs = ours.maps["entropy"][k].numpy(), theirs.maps["entropy"][k].numpy()
    for ax, values in ((row[1], h_ours), (row[2], h_theirs)):
        shown = ax.imshow(values, cmap="magma", vmin=0, vmax=np.log(2))
    fig.colorbar(shown, ax=row[2], fraction=0.046)
    diff = h_ours - h_theirs
    limit = max(float(np.abs(diff).max()), 1e-6)
    shown = row[3].imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(shown, ax=row[3], fraction=0.046)
    for ax, result in ((row[4], ours), (row[5], theirs)):
        shown = ax.imshow(result.maps["logit_variance"][k].sqrt().clamp_min(sd_range[0]).numpy(), cmap="viridis",
                          norm=LogNorm(*sd_range))
    fig.colorbar(shown, ax=row[5], fraction=0.046)
    for ax in row:
        ax.set_xticks([])
        ax.set_yticks([])
for ax, name in zip(axes[0], columns):
    ax.set_title(name, fontsize=9)
fig.suptitle(f"exact ({main.recipe}/{main.structure}) vs paper recipe · {loaded.label}", fontsize=10)
fig.savefig(figures_dir() / "04_laplace_paper_vs_exact.png", dpi=100)
plt.show()

print(f"{'domain':<12} {'H laplace':>10} {'H paper':>9} {'mean |ΔH|':>10} {'√v laplace':>11} {'√v paper':>9}")
for dataset, sample, box, k, ours, theirs in examples:
    print(f"{dataset:<12} {ours.maps['entropy'][k].mean():10.4f} {theirs.maps['entropy'][k].mean():9.4f} "
          f"{(ours.maps['entropy'][k] - theirs.maps['entropy'][k]).abs().mean():10.4f} "
          f"{ours.maps['logit_variance'][k].sqrt().median():11.4g} {theirs.maps['logit_variance'][k].sqrt().median():9.4g}")

# %% [markdown]
# ## Qualitative results across the domains
#
# As in notebooks 02–03: one image per domain (its largest object shown; all objects predicted
# together), the prediction of the Laplace predictive mean p̄ ≥ 0.5, the entropy H(p̄) (0 to ln 2
# nats) and the errors (blue: object missed, red: background claimed). First the exact predictive,
# then the paper's.

# %%
rows = qualitative_rows(predictor, exact_method, root, datasets, images_per_domain=images_per_domain, seed=seed)
fig = qualitative_grid(rows, "laplace", map_name="entropy",
                       title=f"Last-layer Laplace, {main.recipe}/{main.structure} · {loaded.label}",
                       path=figures_dir() / "04_laplace_qualitative.png")
plt.show()

# %%
rows = qualitative_rows(predictor, paper_method, root, datasets, images_per_domain=images_per_domain, seed=seed)
fig = qualitative_grid(rows, "laplace-paper", map_name="entropy",
                       title=f"Last-layer Laplace, paper recipe (S = 1,000, clipped) · {loaded.label}",
                       path=figures_dir() / "04_laplace_paper_qualitative.png")
plt.show()

# %% [markdown]
# ## The other maps of the exact predictive
#
# The entropy of the mean mixes the model's own (aleatoric) uncertainty with the posterior's; the
# mutual information H(p̄) − E[H(σ(f))] keeps only the part due to the uncertain weights, and the
# std of the probability is what the paper reports beside its entropy. All are closed forms of
# (μ_p, v_p): no sampling.

# %%
dataset, sample, box, k, ours, _ = examples[0]
fig, axes = plt.subplots(1, 4, figsize=(11, 2.8), constrained_layout=True)
for ax, name in zip(axes, ("entropy", "mutual_information", "std", "logit_variance")):
    values = ours.maps[name][k].numpy()
    shown = ax.imshow(values, cmap="magma")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_title(name.replace("_", " "), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"{dataset} #{sample.image_id}: maps of `laplace`", fontsize=10)
plt.show()

# %% [markdown]
# ## What this shows
#
# Generated from the fitted posteriors and the example objects above.

# %%
import pandas as pd  # noqa: E402

from uncertsam_utils import analysis  # noqa: E402

recipes = pd.DataFrame([{"domain": d, "H laplace": float(a.maps["entropy"][k].mean()),
                         "H paper": float(b.maps["entropy"][k].mean()),
                         "sd laplace": float(a.maps["logit_variance"][k].sqrt().median()),
                         "sd paper": float(b.maps["logit_variance"][k].sqrt().median())}
                        for d, _, _, k, a, b in examples])
print(analysis.describe_laplace_recipes({f"laplace ({main.recipe}/{main.structure})": main.prior_precision.tolist(),
                                         "laplace-paper (paper/diag)": paper.prior_precision.tolist()}, recipes))
