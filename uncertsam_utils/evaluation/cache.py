"""Evaluations and fitted parts kept in the results cache: one notebook evaluation per set of inputs
(``evaluate_cached``), the Laplace posteriors (``fit_posterior_cached``) and the lookup of what a
method list needs (``find_fitted_parts``).

Every entry is named by a digest of all its inputs (``artifacts.cache_digest``: parameters, seeds,
the model's identity, the data's content, the fitted files' SHA-256, the package's computing code
and the libraries' versions), records the SHA-256 of its files once complete, and is verified before
it is reused (``cache.reuse_entry``): a changed entry is said, removed and computed again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..metrics.per_mask import RANK_MAX_PIXELS
from ..uq.base import UQMethod
from ..uq.combined import CombinedUncertainty
from .driver import evaluate_datasets
from .results import FORMAT_VERSION


def evaluation_key(prefix: str, inputs: Mapping) -> dict:
    """The key of a notebook's evaluation: ``inputs`` plus the CSV format and the ranking-pixel cap."""
    return {"prefix": prefix, "format": FORMAT_VERSION, "rank_max_pixels": RANK_MAX_PIXELS, **dict(inputs)}


def evaluation_cache_dir(prefix: str, inputs: Mapping) -> Path:
    """``<results cache>/evaluations/<prefix>-<digest of the key>``: where a notebook keeps its
    evaluation CSVs. ``inputs`` (JSON-able) should hold everything that changes the numbers."""
    from ..artifacts import cache_digest
    from ..paths import results_cache_dir

    return results_cache_dir() / "evaluations" / f"{prefix}-{cache_digest(evaluation_key(prefix, inputs))}"


def evaluation_inputs(loaded_model, methods: Mapping[str, UQMethod], data_root, datasets: Sequence[str],
                      fitted: Mapping, *, max_images: int | None, seed: int, split: str) -> dict:
    """Everything a notebook's evaluation depends on (with ``artifacts.full_key``'s code and libraries):
    the data (its root and the content of each evaluated split), the datasets, the model, the
    methods' hyperparameters (their repr), the SHA-256 of the ``fitted`` files (name → file; None
    and in-memory objects are left out), max_images, seed and split. The number of processes is not
    an input: several give byte-identical CSVs."""
    from ..artifacts import model_key
    from ..cache.fingerprints import data_fingerprint
    from ..model.checkpoints import sha256_of

    return {
        "data": str(Path(data_root).resolve()),
        "content": data_fingerprint(data_root, [f"{d}/{split}" for d in datasets]),
        "fitted": {k: sha256_of(Path(v)) for k, v in fitted.items() if v is not None and not hasattr(v, "la")},
        "datasets": list(datasets),
        "model": model_key(loaded_model),
        "methods": {name: repr(m) for name, m in methods.items()},
        "max_images": max_images,
        "seed": seed,
        "split": split,
    }


def evaluate_cached(prefix: str, predictor, loaded_model, methods: Mapping[str, UQMethod], data_root,
                    datasets: Sequence[str], fitted: Mapping, *, max_images: int | None = None, seed: int = 42,
                    split: str = "test", nproc: int | None = None, log: Callable[[str], None] = print) -> Path:
    """``evaluate_datasets`` into ``evaluation_cache_dir(prefix, inputs)`` (``evaluation_inputs``): a
    notebook's evaluation. A complete, verified entry is reused; one whose files changed is said and
    computed again; an unfinished one resumes. Returns the folder.

    ``nproc`` (None: ``$UNCERTSAM_EVAL_NPROC``, else 1; ``uncertsam reproduce --eval-nproc N`` sets
    it): with more than one, the evaluation runs in that many processes under torchrun (jobs.py; one
    GPU each on CUDA), with byte-identical CSVs."""
    from .. import distributed
    from ..artifacts import full_key
    from ..cache.entries import record_entry, reuse_entry
    from .jobs import default_nproc, evaluate_in_processes

    if distributed.launched() and not distributed.ranks().distributed:
        raise RuntimeError("a notebook started under torchrun would evaluate once per process: run it as one process "
                           "(uncertsam reproduce --eval-nproc N runs its evaluation in N processes)")

    inputs = evaluation_inputs(loaded_model, methods, data_root, datasets, fitted, max_images=max_images, seed=seed,
                               split=split)
    out_dir = evaluation_cache_dir(prefix, inputs)
    if reuse_entry(out_dir, log):
        return out_dir
    identity = {"model": loaded_model.identity()}
    nproc = default_nproc() if nproc is None else int(nproc)
    if nproc > 1 and not _complete(out_dir, datasets, methods):
        evaluate_in_processes(nproc, loaded_model, methods, data_root, datasets, out_dir, split=split, seed=seed,
                              max_images=max_images, identity=identity)
    # in one process; after a multi-process run this only checks the manifest and finds every CSV done
    evaluate_datasets(predictor, methods, data_root, datasets, out_dir, split=split, seed=seed, max_images=max_images,
                      identity=identity)
    record_entry(out_dir, "evaluations", full_key(evaluation_key(prefix, inputs)))
    return out_dir


def _complete(out_dir: Path, datasets: Sequence[str], methods) -> bool:
    from .counts import counts_path
    from .results import csv_path

    return all(csv_path(out_dir, d, m).is_file() for d in datasets for m in methods) and \
        all(counts_path(out_dir, d).is_file() for d in datasets)


# The posterior each method is paired with (baseline-ts reads its logit scale from the tempered one).
LAPLACE_RECIPES = {"laplace": "tempered", "laplace-untempered": "untempered", "laplace-paper": "paper",
                   "baseline-ts": "tempered"}


def needed_parts(methods: Sequence[str]) -> set[str]:
    """The methods among ``methods`` and the default components of its combinations."""
    from ..uq import METHODS

    needed = set(methods)
    for name in methods:
        cls = METHODS.get(name)
        if cls is not None and issubclass(cls, CombinedUncertainty):
            needed |= set(cls.default_components)
    return needed


def find_fitted_parts(data_root, loaded_model, methods: Sequence[str], *, posterior=None, head=None,
                      fit_missing: bool = False, fit_images: int | None = None, epochs: int | None = None,
                      seed: int = 0, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """``{"posterior": {method: file}, "head": file}`` for ``build_methods``, for the Laplace and
    variance-network methods among ``methods`` (and their combinations' components).

    In order: the files given; the artefacts already cached for these inputs and verified (the
    variance head of ``train_or_load``, the posterior of ``fit_posterior_cached``); with ``fit_missing``, fitted
    now on ``<data_root>/fit/train`` (``fit_images``: its first N images; ``epochs``: of the head) and
    cached; else None (``build_methods`` then says what is missing).
    """
    needed = needed_parts(methods)
    posteriors = dict(posterior) if isinstance(posterior, Mapping) else {m: posterior for m in LAPLACE_RECIPES}
    for name, recipe in LAPLACE_RECIPES.items():
        if name not in needed or posteriors.get(name) is not None:
            continue
        posteriors[name] = _cached_posterior(data_root, loaded_model, recipe, fit_images, seed, log)
        if posteriors[name] is None and fit_missing:
            posteriors[name] = fit_posterior_cached(data_root, loaded_model, recipe, fit_images=fit_images, seed=seed,
                                                    progress=progress, log=log)
    if head is None and "varnet" in needed:
        import dataclasses

        from ..cache.entries import reuse_entry
        from ..uq.varnet.training import VarnetTrainConfig, cached_head_path, train_or_load

        config = VarnetTrainConfig() if epochs is None else dataclasses.replace(VarnetTrainConfig(), epochs=int(epochs))
        path = cached_head_path(Path(data_root), loaded_model, config, seed, fit_images)
        if reuse_entry(path, log):
            head = path
        elif fit_missing:
            train_or_load(Path(data_root), loaded_model, config=config, seed=seed, limit=fit_images,
                          progress=progress, log=log)
            head = path
    return {"posterior": {k: v for k, v in posteriors.items() if k in LAPLACE_RECIPES}, "head": head}


def posterior_key(data_root, loaded_model, recipe: str, fit_images: int | None, seed: int,
                  structure: str = "diag", selection_images: int | None = None) -> dict:
    """What a posterior fitted by ``fit_posterior_cached`` depends on (with ``artifacts.full_key``'s
    code and libraries): the model, the recipe (its whole spec) and structure, the fit images, the
    seed and the fit data's content (fit/val included, which the tempered recipe's temperature is
    chosen on: its search grids, criterion and ``selection_images`` too)."""
    import dataclasses

    from ..artifacts import fit_data_key, model_key
    from ..uq.laplace.fitting import get_recipe

    spec = get_recipe(recipe)
    selection = None
    if spec.temperature == "val":
        from ..uq.laplace import tempering

        selection = {"criterion": tempering.CRITERION, "kappa": tempering.KAPPA_GRID, "scale": tempering.SCALE_GRID,
                     "refine": tempering.REFINE_DECADE, "images": selection_images}
    return {"model": model_key(loaded_model), "recipe": dataclasses.asdict(spec), "structure": structure,
            "fit_images": fit_images, "seed": int(seed), "data": fit_data_key(data_root), "selection": selection}


def posterior_cache_path(data_root, loaded_model, recipe: str, fit_images: int | None, seed: int,
                         structure: str = "diag", selection_images: int | None = None) -> Path:
    """Where ``fit_posterior_cached`` keeps a posterior fitted from these inputs."""
    from ..artifacts import cache_digest
    from ..paths import results_cache_dir
    from ..uq.laplace.fitting import get_recipe

    digest = cache_digest(posterior_key(data_root, loaded_model, recipe, fit_images, seed, structure, selection_images))
    return results_cache_dir() / "laplace" / f"{loaded_model.info.name}-{get_recipe(recipe).name}-{structure}-{digest}.pt"


def fit_posterior_cached(data_root, loaded_model, recipe: str, *, structure: str = "diag", fit_images: int | None = None,
                         seed: int = 0, selection_images: int | None = None, predictor=None, progress: bool = True,
                         log: Callable[[str], None] = print) -> Path:
    """The last-layer Laplace posterior of ``recipe`` and ``structure`` fitted on ``<data_root>/fit/train``
    (first ``fit_images`` images), from the cache (verified) or fitted now (one pass) and cached. The
    one place that fits the posteriors of the notebooks and the evaluation, so they all use the same.
    A recipe that differs from a cached one only in its temperature (``tempered`` / ``untempered``) is
    derived from it without a pass over the data (``derive.derive``). The tempered recipe chooses its
    temperature on fit/val: its first ``selection_images`` images (None: all of it)."""
    from ..artifacts import full_key
    from ..cache.entries import record_entry, reuse_entry
    from ..data.layout import SplitReader
    from ..uq.laplace import LastLayerPosterior
    from ..uq.laplace.derive import derive
    from ..uq.laplace.fitting import RECIPES, fit_posterior, get_recipe

    spec = get_recipe(recipe)
    key = (data_root, loaded_model, spec.name, fit_images, seed, structure, selection_images)
    path = posterior_cache_path(*key)
    if reuse_entry(path, log):
        return path
    val = SplitReader(data_root, "fit", "val", resize_check_size=None)
    siblings = [name for name, other in RECIPES.items() if name != spec.name
                and (other.pixel_likelihood, other.fit_size) == (spec.pixel_likelihood, spec.fit_size)]
    source = next((p for p in (posterior_cache_path(data_root, loaded_model, name, fit_images, seed, structure,
                                                    selection_images) for name in siblings)
                   if reuse_entry(p, log)), None)
    if source is not None:
        log(f"deriving the {spec.name!r}/{structure} Laplace posterior from {source.name} (same curvature)")
        fitted = derive(LastLayerPosterior.load(source, loaded_model), spec.name,
                        predictor=_predictor(loaded_model, predictor), val_data=val, seed=seed,
                        selection_images=selection_images)
    else:
        log(f"fitting the {spec.name!r}/{structure} Laplace posterior on {Path(data_root).name}/fit/train "
            f"({'all' if fit_images is None else fit_images} images)")
        # masks without a box at the model's size are skipped (and counted) by the fit itself
        train = SplitReader(data_root, "fit", "train", resize_check_size=None)
        fitted = fit_posterior(loaded_model, train, recipe=spec.name, structure=structure, seed=seed,
                               max_images=fit_images, val_data=val, progress=progress, predictor=predictor,
                               selection_images=selection_images)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fitted.save(tmp)
    os.replace(tmp, path)
    record_entry(path, "laplace", full_key(posterior_key(*key)))
    return path


def _predictor(loaded_model, predictor):
    if predictor is not None:
        return predictor
    from ..model import Predictor

    return Predictor(loaded_model.model)


def _cached_posterior(data_root, loaded_model, recipe: str, fit_images, seed, log: Callable[[str], None] = print):
    """The posterior ``fit_posterior_cached`` already made for these inputs (verified), or None."""
    from ..cache.entries import reuse_entry

    path = posterior_cache_path(data_root, loaded_model, recipe, fit_images, seed)
    return path if reuse_entry(path, log) else None
