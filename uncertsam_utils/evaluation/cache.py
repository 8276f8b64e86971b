"""Evaluations and fitted parts kept in the cache folder: one notebook evaluation per set of inputs
(``evaluate_cached``), the Laplace posteriors (``fit_posterior_cached``) and the lookup of what a
method list needs (``find_fitted_parts``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..metrics.per_mask import RANK_MAX_PIXELS
from ..uq.base import UQMethod
from ..uq.combined import CombinedUncertainty
from .driver import evaluate_datasets
from .results import FORMAT_VERSION


def evaluation_cache_dir(prefix: str, inputs: Mapping) -> Path:
    """``<cache>/evaluations/<prefix>-<hash of inputs>``: where a notebook keeps its evaluation CSVs.
    ``inputs`` (JSON-able) should hold everything that changes the numbers; the format version of the
    CSVs is added here."""
    from ..artifacts import cache_digest
    from ..paths import cache_dir

    digest = cache_digest({"format": FORMAT_VERSION, "rank_max_pixels": RANK_MAX_PIXELS, **dict(inputs)})
    return cache_dir() / "evaluations" / f"{prefix}-{digest}"


def evaluate_cached(prefix: str, predictor, loaded_model, methods: Mapping[str, UQMethod], data_root,
                    datasets: Sequence[str], fitted: Mapping, *, max_images: int | None = None, seed: int = 42,
                    split: str = "test", nproc: int | None = None) -> Path:
    """``evaluate_datasets`` into ``evaluation_cache_dir(prefix, inputs)``, ``inputs`` being everything
    that changes the numbers: data, datasets, model, methods, the SHA-256 of the ``fitted`` files
    (name → file; None and in-memory objects are left out), max_images, seed and split. A notebook's
    evaluation; reruns reuse the CSVs or resume. Returns the folder.

    ``nproc`` (None: ``$UNCERTSAM_EVAL_NPROC``, else 1; ``uncertsam reproduce --eval-nproc N`` sets
    it): with more than one, the evaluation runs in that many processes under torchrun (jobs.py; one
    GPU each on CUDA), with byte-identical CSVs."""
    from .. import distributed
    from ..model.checkpoints import sha256_of
    from .jobs import default_nproc, evaluate_in_processes

    if distributed.launched() and not distributed.ranks().distributed:
        raise RuntimeError("a notebook started under torchrun would evaluate once per process: run it as one process "
                           "(uncertsam reproduce --eval-nproc N runs its evaluation in N processes)")

    inputs = {
        "data": str(Path(data_root).resolve()),
        "fitted": {k: sha256_of(Path(v)) for k, v in fitted.items() if v is not None and not hasattr(v, "la")},
        "datasets": list(datasets),
        "model": loaded_model.identity(),
        "methods": {name: repr(m) for name, m in methods.items()},
        "max_images": max_images,
        "seed": seed,
        "split": split,
    }
    out_dir = evaluation_cache_dir(prefix, inputs)
    identity = {"model": loaded_model.identity()}
    nproc = default_nproc() if nproc is None else int(nproc)
    if nproc > 1 and not _complete(out_dir, datasets, methods):
        evaluate_in_processes(nproc, loaded_model, methods, data_root, datasets, out_dir, split=split, seed=seed,
                              max_images=max_images, identity=identity)
    # in one process; after a multi-process run this only checks the manifest and finds every CSV done
    evaluate_datasets(predictor, methods, data_root, datasets, out_dir, split=split, seed=seed, max_images=max_images,
                      identity=identity)
    return out_dir


def _complete(out_dir: Path, datasets: Sequence[str], methods) -> bool:
    from .counts import counts_path
    from .results import csv_path

    return all(csv_path(out_dir, d, m).is_file() for d in datasets for m in methods) and \
        all(counts_path(out_dir, d).is_file() for d in datasets)


LAPLACE_RECIPES = {"laplace": "exact", "laplace-paper": "paper"}  # the posterior each predictive is paired with


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

    In order: the files given; the artefacts already cached for this model, data, recipe and seed (the
    variance head of ``train_or_load``, a posterior through the Laplace module's
    ``cached_posterior_path`` if it has one, or one fitted here before); with ``fit_missing``, fitted
    now on ``<data_root>/fit/train`` (``fit_images``: its first N images; ``epochs``: of the head) and
    cached; else None (``build_methods`` then says what is missing).
    """
    needed = needed_parts(methods)
    posteriors = dict(posterior) if isinstance(posterior, Mapping) else {m: posterior for m in LAPLACE_RECIPES}
    for name, recipe in LAPLACE_RECIPES.items():
        if name not in needed or posteriors.get(name) is not None:
            continue
        posteriors[name] = _cached_posterior(data_root, loaded_model, recipe, fit_images, seed)
        if posteriors[name] is None and fit_missing:
            posteriors[name] = fit_posterior_cached(data_root, loaded_model, recipe, fit_images=fit_images, seed=seed,
                                                    progress=progress, log=log)
    if head is None and "varnet" in needed:
        import dataclasses

        from ..uq.varnet_training import VarnetTrainConfig, cached_head_path, train_or_load

        config = VarnetTrainConfig() if epochs is None else dataclasses.replace(VarnetTrainConfig(), epochs=int(epochs))
        path = cached_head_path(Path(data_root), loaded_model, config, seed, fit_images)
        if path.is_file():
            head = path
        elif fit_missing:
            train_or_load(Path(data_root), loaded_model, config=config, seed=seed, limit=fit_images,
                          progress=progress, log=log)
            head = path
    return {"posterior": {k: v for k, v in posteriors.items() if k in LAPLACE_RECIPES}, "head": head}


def posterior_cache_path(data_root, loaded_model, recipe: str, fit_images: int | None, seed: int,
                         structure: str = "diag") -> Path:
    """Where ``fit_posterior_cached`` keeps a posterior fitted from these inputs."""
    from ..artifacts import cache_digest, fit_data_key
    from ..paths import cache_dir

    digest = cache_digest({
        "model": loaded_model.identity(), "random_seed": loaded_model.seed if loaded_model.random_weights else None,
        "recipe": recipe, "structure": structure, "fit_images": fit_images, "seed": int(seed),
        "data": fit_data_key(data_root)})
    return cache_dir() / "laplace" / f"{loaded_model.info.name}-{recipe}-{structure}-{digest}.pt"


def fit_posterior_cached(data_root, loaded_model, recipe: str, *, structure: str = "diag", fit_images: int | None = None,
                         seed: int = 0, predictor=None, progress: bool = True,
                         log: Callable[[str], None] = print) -> Path:
    """The last-layer Laplace posterior of ``recipe`` and ``structure`` fitted on ``<data_root>/fit/train``
    (first ``fit_images`` images), from the cache or fitted now (one pass) and cached. The one place
    that fits the posteriors of the notebooks and the evaluation, so they all use the same."""
    from ..data.layout import SplitReader
    from ..uq.laplace.fitting import fit_posterior

    path = posterior_cache_path(data_root, loaded_model, recipe, fit_images, seed, structure)
    if path.is_file():
        return path
    log(f"fitting the {recipe!r}/{structure} Laplace posterior on {Path(data_root) / 'fit' / 'train'} "
        f"({'all' if fit_images is None else fit_images} images)")
    # masks without a box at the model's size are skipped (and counted) by the fit itself
    val = SplitReader(data_root, "fit", "val", resize_check_size=None)
    train = SplitReader(data_root, "fit", "train", resize_check_size=None)
    fitted = fit_posterior(loaded_model, train, recipe=recipe, structure=structure, seed=seed, max_images=fit_images,
                           val_data=val, progress=progress, predictor=predictor)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fitted.save(tmp)
    os.replace(tmp, path)
    return path


def _cached_posterior(data_root, loaded_model, recipe: str, fit_images, seed):
    """The posterior ``fit_posterior_cached`` already made for these inputs, or None."""
    path = posterior_cache_path(data_root, loaded_model, recipe, fit_images, seed)
    return path if path.is_file() else None
