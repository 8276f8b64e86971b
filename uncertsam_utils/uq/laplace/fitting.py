"""Fitting the last-layer Laplace posterior: the recipes, the one pass over the data, the prior search.

``fit_posterior`` builds a structure (``structures.make_laplace``), runs laplace-torch's ``fit`` over
the prompt features (``features.py``) and sets the prior precision (``optimize_prior``: marginal
likelihood, grid search or fixed), returning a :class:`~uncertsam_utils.uq.laplace.posterior.LastLayerPosterior`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .features import FULL_BATCH, PromptFeatures, cached_features, feature_loader, rank_share, synthetic_images
from .posterior import LastLayerPosterior, model_identity
from .structures import make_laplace, single_threaded

PRIOR_METHODS = ("marglik", "gridsearch", "fixed")
MARGLIK_GRID = (-4.0, 10.0, 57)  # log10 prior precision: min, max, points (0.25 decade)


@dataclass(frozen=True)
class Recipe:
    """How a posterior is fitted. Prediction settings belong to the UQ methods (method.py)."""

    name: str
    pixel_likelihood: str  # "bernoulli" (per pixel) or "softmax" (one categorical over all pixels)
    fit_size: int | None  # logits resized to fit_size² for the likelihood; None: the model's mask size
    prior: str  # "marglik", "gridsearch" or "fixed"
    prior_precision: float  # the fixed value, or the start of the search
    description: str
    temperature: float | str = 1.0  # of the likelihood (GGN and loss / T); "val": chosen on fit/val (tempering.py)


RECIPES: dict[str, Recipe] = {
    "tempered": Recipe("tempered", "bernoulli", None, "marglik", 1.0,
                       "per-pixel Bernoulli GGN at the model's low resolution, tempered: likelihood / T with T chosen on "
                       "fit/val by held-out predictive NLL; prior precision by the tempered marginal likelihood",
                       temperature="val"),
    "untempered": Recipe("untempered", "bernoulli", None, "marglik", 1.0,
                         "per-pixel Bernoulli GGN at the model's low resolution, every pixel an independent "
                         "observation (T = 1); prior precision by marginal likelihood"),
    "paper": Recipe("paper", "softmax", 128, "fixed", 1.0,
                    "the reference code: GGN of a softmax over the 128² resized logits; prior precision 1"),
}
RECIPE_ALIASES = {"exact": "untempered"}  # the untempered recipe's name in 0.2 (posterior files, commands)


def get_recipe(name: str) -> Recipe:
    name = RECIPE_ALIASES.get(name, name)
    if name not in RECIPES:
        raise KeyError(f"unknown Laplace recipe {name!r}; choose from {', '.join(RECIPES)}")
    return RECIPES[name]


# ---------------------------------------------------------------------------------- prior search
def marglik_curve(la, log10_grid: Sequence[float]) -> list[float]:
    """laplace-torch's log marginal likelihood at each scalar prior precision 10^x (state restored)."""
    saved = la.prior_precision.detach().clone()
    values = []
    with torch.no_grad():
        for x in log10_grid:
            value = la.log_marginal_likelihood(prior_precision=torch.tensor(10.0 ** float(x)))
            values.append(float(value))
    la.prior_precision = saved
    return values


def optimize_prior(la, method: str, *, value: float = 1.0, val_loader=None, prior_structure: str = "scalar",
                   grid: tuple[float, float, int] = MARGLIK_GRID, n_steps: int = 100, lr: float = 0.1,
                   progress: bool = False) -> dict:
    """Set the prior precision with laplace-torch's ``optimize_prior_precision`` and report the search.

    ``marglik``: the log marginal likelihood on a log grid (the curve, also for the notebook), then
    laplace-torch's Adam on log τ (``n_steps``, ``lr``) from the best grid point.
    ``gridsearch``: laplace-torch's grid search of the validation NLL of the probit predictive on
    ``val_loader`` over the same grid. ``fixed``: τ = ``value`` (the paper: 1).
    """
    if method not in PRIOR_METHODS:
        raise ValueError(f"unknown prior method {method!r}; choose from {PRIOR_METHODS}")
    if torch.is_inference_mode_enabled():
        raise RuntimeError("the prior precision search needs autograd: do not run it under torch.inference_mode()")
    log10_grid = np.linspace(grid[0], grid[1], int(grid[2]))
    report: dict = {"method": method, "log10_grid": log10_grid.tolist()}
    with single_threaded():
        curve = marglik_curve(la, log10_grid)
    report["marglik"] = curve
    with warnings.catch_warnings(), torch.enable_grad(), single_threaded():
        warnings.filterwarnings("ignore", message=".*link_approx.*")
        if method == "fixed":
            la.prior_precision = float(value)
        elif method == "marglik":
            start = 10.0 ** float(log10_grid[int(np.nanargmax(curve))])
            report["start"] = start
            la.optimize_prior_precision(pred_type="glm", method="marglik", init_prior_prec=start, n_steps=n_steps,
                                        lr=lr, prior_structure=prior_structure, progress_bar=progress)
        else:
            if val_loader is None:
                raise ValueError("grid search needs validation data (val_loader)")
            la.optimize_prior_precision(pred_type="glm", method="gridsearch", val_loader=val_loader,
                                        link_approx="probit", log_prior_prec_min=grid[0], log_prior_prec_max=grid[1],
                                        grid_size=int(grid[2]), prior_structure=prior_structure, progress_bar=progress)
    prior = la.prior_precision.detach().cpu()
    report["prior_precision"] = prior.tolist()
    with torch.no_grad():
        report["log_marglik"] = float(la.log_marginal_likelihood())
    return report


# ----------------------------------------------------------------------------- several processes
def sum_curvature_over_ranks(la) -> None:
    """Under torchrun: every rank fitted its share of the prompts; the curvature (H, or the Kronecker
    factors) and the loss become their sums over the ranks, identical on every rank. laplace-torch's
    ``n_data`` is already the whole data's (``feature_loader``). The same posterior as one process,
    up to the order of the float sums."""
    from laplace.baselaplace import KronLaplace

    from ... import distributed

    if not distributed.ranks().distributed:
        return
    la.loss = distributed.all_reduce_sum(torch.as_tensor(la.loss, dtype=torch.float32))
    if isinstance(la, KronLaplace):  # the summed factors are kept in H_facs, H is their decomposition
        la.H_facs.kfacs = [[distributed.all_reduce_sum(f) for f in block] for block in la.H_facs.kfacs]
        la.H = la.H_facs.decompose(damping=la.damping)
    else:
        la.H = distributed.all_reduce_sum(la.H)
        for cached in ("_eigen", "_covariance_cache"):  # SegFullLaplace's factorisations of the old H
            if hasattr(la, cached):
                setattr(la, cached, None)


def _search_prior(la, prior: str, tau: float, prior_structure: str, predictor, val_data, seed, objects,
                  val_images) -> dict:
    """The prior precision search. Under torchrun every rank searches (the grid search's validation
    NLL is summed over the ranks' shares of the validation images by laplace-torch's torchmetrics
    metric) and every rank takes rank 0's result, so that all hold the same posterior."""
    from ... import distributed

    val_loader = None
    if prior == "gridsearch":
        if val_data is None:
            raise ValueError("prior='gridsearch' needs validation data (val_data)")
        val_loader = cached_features(predictor, val_data, seed=seed + 1, objects=objects, max_images=val_images,
                                     by_rank=True)
    report = optimize_prior(la, prior, value=tau, val_loader=val_loader, prior_structure=prior_structure,
                            progress=False)
    report = distributed.broadcast_object(report)
    la.prior_precision = torch.tensor(report["prior_precision"], dtype=la._dtype)
    return report


def _share(dataset) -> list[int] | None:
    """This rank's fitting prompts (``rank_share``); every rank needs at least one image."""
    share = rank_share(dataset)
    if share is not None and not share:
        from ... import distributed

        raise ValueError(f"{len({i for i, _ in dataset.index})} fitting images for {distributed.ranks().world_size} "
                         "processes: use fewer processes")
    return share


def _fit_curvature(la, loaded, dataset, loader, progress: bool) -> float:
    """laplace-torch's fit over this rank's share of the prompts, then the sums over the ranks; seconds."""
    start = time.perf_counter()
    was_training = loaded.model.training
    loaded.model.eval()
    try:
        la.fit(loader, progress_bar=progress)
    finally:
        loaded.model.train(was_training)
    seconds = time.perf_counter() - start
    sum_curvature_over_ranks(la)
    return seconds


def marglik_search(la) -> dict:
    """The prior precision by the (tempered) marginal likelihood: the tempered recipe's search at each T."""
    return optimize_prior(la, "marglik")


# -------------------------------------------------------------------------------------------- fit
def fit_posterior(loaded, data, *, recipe: str = "untempered", structure: str = "diag", prior: str | None = None,
                  prior_precision: float | None = None, prior_structure: str = "scalar", val_data=None,
                  val_images: int | None = 16, seed: int = 0, objects: str = "one", max_images: int | None = None,
                  progress: bool = True, predictor=None, description: str | None = None,
                  selection_images: int | None = None) -> LastLayerPosterior:
    """Fit the treated layer's posterior on ``data`` (a SplitReader or a list of samples), one pass.

    ``data`` may also be a feature loader (``cached_features``) of this model, to fit several
    posteriors from one encoding pass. ``recipe`` sets the likelihood, the fit resolution, the prior method (``prior`` and
    ``prior_precision`` override the latter) and the likelihood temperature. ``val_data`` (needed by
    ``prior="gridsearch"``: up to ``val_images`` images whose features are cached in memory; and by a
    temperature chosen on held-out data: its first ``selection_images`` images, None: all).

    Under torchrun (``uncertsam fit laplace``), the prompts of image i are fitted by rank i mod N, the curvature
    and the loss are summed over the ranks (``sum_curvature_over_ranks``) and rank 0's prior search is
    taken by every rank: every rank returns the single-process posterior up to float summation order.
    The temperature selection on held-out data runs on each rank over the same images.
    """
    from ... import distributed
    from ...model import Predictor

    spec = get_recipe(recipe)
    recipe = spec.name
    prior = spec.prior if prior is None else prior
    tau = spec.prior_precision if prior_precision is None else float(prior_precision)
    predictor = Predictor(loaded.model) if predictor is None else predictor
    layer = predictor.treated_layer
    la = make_laplace(layer, structure, spec.pixel_likelihood, spec.fit_size, prior_precision=tau)
    if isinstance(data, torch.utils.data.DataLoader):
        loader, dataset = data, data.dataset
    else:
        dataset = PromptFeatures(predictor, data, seed=seed, objects=objects, max_images=max_images)
        loader = feature_loader(dataset, FULL_BATCH if structure == "full" else 1, indices=_share(dataset))
    if len(dataset) == 0:
        raise ValueError("no fitting data: the split is empty")
    fit_seconds = max(distributed.all_gather_objects(_fit_curvature(la, loaded, dataset, loader, progress)))
    start = time.perf_counter()
    if spec.temperature != "val":
        la.temperature = float(spec.temperature)
    search = _search_prior(la, prior, tau, prior_structure, predictor, val_data, seed, objects, val_images)
    skipped = [s for part in distributed.all_gather_objects(getattr(dataset, "skipped", None)) for s in part or ()]
    selection = None
    if spec.temperature == "val":  # the untempered search above is kept as the collapse it corrects
        from .tempering import select_on_heldout

        masks = len(dataset) - len(skipped)
        selection = select_on_heldout(la, predictor, val_data, masks, marglik_search, seed=seed,
                                      images=selection_images)
        selection["untempered_prior"] = search
        search = selection.pop("prior")
    info = {
        "data": description if description is not None else _describe_data(data),
        "seed": seed,
        "objects": objects,
        "prompts": len(dataset),
        "images": len({i for i, _ in dataset.index}) if hasattr(dataset, "index") else None,
        "skipped": len(skipped) if hasattr(dataset, "skipped") else None,
        "fit_seconds": fit_seconds,
        "prior_seconds": time.perf_counter() - start,
        "prior": search,
        "recipe_description": spec.description,
        "mask_size": predictor.mask_size,
        "temperature": float(la.temperature),
    }
    if selection is not None:
        info["temperature_selection"] = selection
    return LastLayerPosterior(la, recipe, structure, spec.pixel_likelihood, spec.fit_size, model_identity(loaded), info)


def _describe_data(data) -> str:
    if isinstance(data, torch.utils.data.DataLoader):
        return f"{len(data.dataset)} precomputed prompt features"
    if hasattr(data, "split_dir"):
        return str(data.split_dir)
    return f"{len(data)} in-memory images"


def benchmark_posterior(loaded, recipe: str, generator: torch.Generator, *, images: int = 4) -> LastLayerPosterior:
    """A posterior fitted on a few synthetic images (for ``bench uq``: its cost is not timed there)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    size = int(loaded.model.image_size)
    data = synthetic_images(images, size, seed=seed)
    if get_recipe(recipe).temperature == "val":  # no held-out split here; a prediction costs the same at any T
        recipe = "untempered"
    return fit_posterior(loaded, data, recipe=recipe, seed=seed, progress=False, description="synthetic (benchmark)")


def fit_seconds_per_image(loaded, *, images: int = 4, seed: int = 0, recipe: str = "untempered", repeats: int = 1) -> float:
    """Median wall time of the curvature pass per image (encode + decode + closed form, no prior search)."""
    from ...model import Predictor

    predictor = Predictor(loaded.model)
    data = synthetic_images(images + 1, int(loaded.model.image_size), seed=seed)
    spec = get_recipe(recipe)
    times = []  # the fit's cost does not depend on the temperature: tempered recipes are timed untempered
    for r in range(repeats + 1):  # the first pass warms up
        la = make_laplace(predictor.treated_layer, "diag", spec.pixel_likelihood, spec.fit_size)
        dataset = PromptFeatures(predictor, data[1:] if r else data[:1], seed=seed)
        start = time.perf_counter()
        la.fit(feature_loader(dataset), progress_bar=False)
        if r:
            times.append((time.perf_counter() - start) / len(dataset))
    return float(np.median(times))


__all__ = ["MARGLIK_GRID", "PRIOR_METHODS", "RECIPES", "RECIPE_ALIASES", "Recipe", "benchmark_posterior", "fit_posterior",
           "fit_seconds_per_image", "get_recipe", "marglik_curve", "marglik_search", "optimize_prior"]
