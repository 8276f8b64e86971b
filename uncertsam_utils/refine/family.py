"""Table 1's fusion modules: every variant and seed trained on shared encodings and first passes, and cached.

``train_fusion_family`` trains the modules of several variants (``laplace``, ``ones``, ``entropy``)
and seeds with one recipe: the frozen encodings of fit/train and fit/val and the validation bank are
computed once (``training.FusionInputs``), and in the box regime each seed's training bank is shared
by its variants (every variant of a seed sees the same objects and jittered boxes; the seeds differ in
init, order and jitter). Each module is cached on its own (``cached_fusion_path``: model, recipe,
seed, data, posterior), so a rerun trains only what is missing and an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..artifacts import cache_digest, fit_data_key, full_key, model_identity, model_key
from .training import RECIPE_VERSION, FusionInputs, FusionTrainConfig, load_training_data, posterior_fingerprint, train_fusion


def fusion_cache_key(root: Path, loaded_model, config: FusionTrainConfig, seed: int, posterior=None,
                     limit: int | None = None) -> dict:
    """What a module trained by ``train_fusion_family`` depends on (with ``artifacts.full_key``'s code
    and libraries): the model, the recipe, the seed, the fit data's content, ``limit`` and the
    Laplace first pass's posterior."""
    return {"model": model_key(loaded_model), "config": dataclasses.asdict(config), "seed": int(seed),
            "data": fit_data_key(root), "recipe_version": RECIPE_VERSION, "limit": limit,
            "posterior": None if posterior is None or config.first_pass != "laplace" else posterior_fingerprint(posterior)}


def cached_fusion_path(root: Path, loaded_model, config: FusionTrainConfig, seed: int, posterior=None,
                       limit: int | None = None) -> Path:
    """Where ``train_fusion_family`` keeps the module trained from these inputs (under the results cache)."""
    from ..paths import results_cache_dir

    digest = cache_digest(fusion_cache_key(root, loaded_model, config, seed, posterior, limit))
    return results_cache_dir() / "fusion" / f"{loaded_model.info.name}-{config.uncertainty}-{config.regime}-{digest}.pt"


def train_fusion_family(root: Path, loaded_model, uncertainties: Sequence[str], *, seeds: Sequence[int] = (0,),
                        config: FusionTrainConfig = FusionTrainConfig(), posterior=None, limit: int | None = None,
                        train_missing: bool = True, progress: bool = True,
                        log: Callable[[str], None] = print) -> dict[str, list[Path | None]]:
    """``{uncertainty: [module file per seed]}`` for ``config`` (its ``uncertainty`` replaced by each of
    ``uncertainties``): cached files (verified), and with ``train_missing`` the missing ones trained now
    on the first ``limit`` images of ``<root>/fit/train`` (None where a module is missing and not
    trained, or needs a Laplace posterior that is not given)."""
    from ..cache.entries import reuse_entry

    root = Path(root)
    configs = {u: dataclasses.replace(config, uncertainty=u) for u in uncertainties}
    paths = {u: [cached_fusion_path(root, loaded_model, c, s, posterior, limit) for s in seeds] for u, c in configs.items()}
    usable = {u for u, c in configs.items() if c.first_pass != "laplace" or posterior is not None}
    for u in sorted(set(configs) - usable):
        log(f"fusion-{u}: no Laplace posterior, so no first pass to train on")
    missing = {(u, s) for u in usable for s, p in zip(seeds, paths[u]) if not reuse_entry(p, log)}
    if missing and train_missing:
        _train_missing(root, loaded_model, configs, paths, missing, seeds, posterior, limit, progress, log)
    return {u: [p if u in usable and p.is_file() else None for p in paths[u]] for u in configs}


def _train_missing(root, loaded_model, configs, paths, missing, seeds, posterior, limit, progress, log) -> None:
    from ..cache.entries import record_entry
    from ..model.predictor import Predictor

    some = next(iter(configs.values()))
    train_data, val_data = load_training_data(root, loaded_model.image_size, limit=limit, val_images=some.val_images,
                                              progress=progress)
    kinds = {configs[u].first_pass for u, _ in missing}
    inputs = FusionInputs.build(Predictor(loaded_model.model.eval()), train_data, val_data, kinds=kinds,
                                posterior=posterior if "laplace" in kinds else None, progress=progress)
    log(f"fusion training data: {train_data.num_images} fit/train and {val_data.num_images} fit/val images encoded "
        f"in {inputs.encode_seconds:.0f} s; {len(missing)} module(s) to train")
    for index, seed in enumerate(seeds):
        todo = [u for u in configs if (u, seed) in missing]
        bank = inputs.train_bank(seed, some) if some.regime == "box" and todo else None
        for u in todo:
            config = configs[u]
            first = posterior if config.first_pass == "laplace" else None
            train_fusion(loaded_model, train_data, val_data, config=config, posterior=first, out=paths[u][index],
                         seed=seed, resume=True, progress=progress, inputs=inputs, bank=bank, log=log,
                         extra_record={"data": {"root": root.name, "limit": limit}})
            key = fusion_cache_key(root, loaded_model, config, seed, first, limit)
            record_entry(paths[u][index], "fusion", full_key(key))


def find_fusion_modules(root: Path, loaded_model, variants: Sequence[str], *, given: Mapping | None = None,
                        posterior=None, config: FusionTrainConfig = FusionTrainConfig(), seeds: Sequence[int] = (0,),
                        limit: int | None = None, train_missing: bool = False, progress: bool = True,
                        log: Callable[[str], None] = print) -> dict[str, list[Path]]:
    """Fusion files for the ``fusion-*`` methods among ``variants`` (method name → one file per seed):
    the files ``given`` (a file or a list per method); else the modules cached for these inputs; else,
    with ``train_missing``, trained now (``train_fusion_family``). ``posterior`` (a file or a fitted
    posterior) is the Laplace first pass of ``fusion-laplace`` and ``fusion-ones``. Methods with a
    missing module are left out (``build_methods`` then says what is missing)."""
    from ..uq import METHODS

    given = dict(given or {})
    if isinstance(posterior, (str, Path)):
        from ..uq.laplace import LastLayerPosterior

        posterior = LastLayerPosterior.load(posterior, loaded_model)
    out: dict[str, list[Path]] = {}
    wanted = {}
    for name in variants:
        uncertainty = getattr(METHODS.get(name), "uncertainty", None)
        if uncertainty is None:
            continue
        if given.get(name) is not None:
            files = given[name]
            out[name] = [Path(f) for f in (files if isinstance(files, (list, tuple)) else [files])]
        else:
            wanted[uncertainty] = name
    if wanted:
        found = train_fusion_family(root, loaded_model, list(wanted), seeds=seeds, config=config, posterior=posterior,
                                    limit=limit, train_missing=train_missing, progress=progress, log=log)
        for uncertainty, files in found.items():
            if all(f is not None for f in files):
                out[wanted[uncertainty]] = files
    return {name: out[name] for name in variants if name in out}


def seeded_methods(variant: str, files: Sequence[Path], seeds: Sequence[int], loaded_model, posterior=None, *,
                   state: str = "selected", label: str | None = None) -> dict:
    """``{<label>.s<seed>: method}``: the ``variant`` (a ``fusion-*`` method name) with each seed's module
    (``state``: the selected one or the last trained epoch's), checked against the model; ``posterior``
    (a fitted posterior) is the Laplace first pass. The method's ``fusion`` (its repr, part of the
    evaluation's cache key) names the file and the state."""
    from ..seeds import seeded_name
    from ..uq import METHODS
    from .fusion import load_fusion
    from .passes import UNCERTAINTY_SOURCES

    cls = METHODS[variant]
    first = posterior if UNCERTAINTY_SOURCES[cls.uncertainty][0] == "laplace" else None
    out = {}
    for seed, file in zip(seeds, files):
        module, _ = load_fusion(file, model_identity(loaded_model), uncertainty=cls.uncertainty, state=state)
        method = cls(fusion=module, posterior=first)
        method.fusion = str(file) if state == "selected" else f"{file}#{state}"
        out[seeded_name(label or variant, seed)] = method
    return out


__all__ = ["cached_fusion_path", "find_fusion_modules", "fusion_cache_key", "seeded_methods", "train_fusion_family"]
