"""Posteriors of one fit under another temperature: the ``untempered`` posterior from the ``tempered`` one's
curvature, or back, without a second pass over the fitting data (``evaluation.fit_posterior_cached``)."""

from __future__ import annotations

import copy

from .fitting import get_recipe, marglik_search, optimize_prior
from .posterior import LastLayerPosterior
from .tempering import select_on_heldout


def derive(posterior, recipe: str, *, predictor=None, val_data=None, seed: int = 0, selection_images: int | None = None):
    """The posterior of ``recipe`` from a fitted one with the same likelihood, fit size and data: the
    curvature and loss do not depend on the temperature, so the one pass over the data is shared
    (the untempered posterior from the tempered one, or back); only the temperature and the prior
    precision are chosen again, as ``fit_posterior`` chooses them."""
    spec, source = get_recipe(recipe), get_recipe(posterior.recipe)
    if (spec.pixel_likelihood, spec.fit_size) != (source.pixel_likelihood, source.fit_size):
        raise ValueError(f"the {spec.name!r} recipe fits another likelihood than {source.name!r}: fit it anew")
    state = posterior.state()
    state["recipe"], state["info"] = spec.name, copy.deepcopy(posterior.info)
    derived = LastLayerPosterior.from_state(state)
    la, info = derived.la, derived.info
    info.pop("temperature_selection", None)
    info["recipe_description"], info["derived_from"] = spec.description, posterior.recipe
    la.temperature = 1.0 if spec.temperature == "val" else float(spec.temperature)
    search = optimize_prior(la, spec.prior, value=spec.prior_precision)
    if spec.temperature == "val":
        if predictor is None:
            raise ValueError("choosing the temperature needs the model's predictor and val_data")
        masks = int(info["prompts"]) - int(info.get("skipped") or 0)
        selection = select_on_heldout(la, predictor, val_data, masks, marglik_search, seed=seed,
                                      images=selection_images)
        selection["untempered_prior"] = search
        search = selection.pop("prior")
        info["temperature_selection"] = selection
    info["prior"], info["temperature"] = search, float(la.temperature)
    return derived


__all__ = ["derive"]
