"""The evaluation driver: every method on every image of a split, one CSV row per mask (paper §6).

Protocol (the paper's): the tight ground-truth box of each mask, computed in the model's square
input frame (``Sample.boxes``), is the only prompt; each method predicts at low resolution, its
logits and maps are upsampled bilinearly to the original image size and every column of
``metrics.METRIC_COLUMNS`` is computed per mask (BIG at half resolution, paper §1.4).

Output, under ``out_dir``::

    evaluation.json                  settings and methods of the run (a rerun must match them)
    <dataset>/<method>.csv           the result: one row per mask, sorted by (image_id, mask_id)
    <dataset>/.parts/<method>/<image_id:08d>.csv   rows of one image while the dataset is running

Columns: ``image_id, mask_id, dataset, method``, the paper's 28 (the reference code's names), then
ours (``spearman, auroc, aupr, ause`` and their ROI versions ``*_``). Floats are written with
``FLOAT_FORMAT`` (6 significant digits; NaN as ``nan``).

Resuming: the rows of each image and method are written to a temporary file and renamed into place
(atomic), so a run killed at any moment keeps every finished image and no half-written one. A rerun
skips finished images; once every image of a dataset is done, its parts are concatenated into the
final CSV (renamed into place) and removed. The same inputs give byte-identical CSVs, whatever the
interruptions: every method of every image draws from a fresh generator
``image_generator(seed, dataset, image_id)``, so results do not depend on order or on which other
methods run.

Masks that vanish at the model's input size (no pixel left in the squashed frame, so no box
prompt; the reference code crashes on them) are not evaluated and are reported on the console.

Sharing: the image encoder runs once per image; its encoding goes to every method (methods that
change the image, like TTA, use it only for their clean copy). A combination whose components are
also evaluated as methods (the same instances) reuses their results instead of recomputing them.

Speed: the metrics of an image are computed in a worker thread (``metric_workers``) while the next
image is predicted; one output folder belongs to one process at a time (a second process would
remove the first one's temporary files). With two torch threads on a two-core machine the two
overlap; on a busy machine ``torch.set_num_threads(1)`` (``--threads 1``) is much faster.
Ranking metrics use at most ``RANK_MAX_PIXELS`` pixels per mask and region (``metrics.per_mask``).
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.resize import boxes_from_masks, resize_masks
from .metrics import HALF_RESOLUTION_DATASETS, METRIC_COLUMNS, prepare_targets, result_metrics
from .metrics.per_mask import RANK_MAX_PIXELS
from .uq.base import UQMethod, image_generator
from .uq.combined import CombinedUncertainty

ID_COLUMNS = ("image_id", "mask_id", "dataset", "method")
CSV_COLUMNS = ID_COLUMNS + METRIC_COLUMNS
FLOAT_FORMAT = "{:.6g}"
MANIFEST = "evaluation.json"
FORMAT_VERSION = 1
PARTS = ".parts"


class EvaluationMismatch(RuntimeError):
    """The output folder holds results of a different configuration."""


# ------------------------------------------------------------------------------------------ files

def csv_path(out_dir, dataset: str, method: str) -> Path:
    return Path(out_dir) / dataset / f"{method}.csv"


def _part_path(out_dir, dataset: str, method: str, image_id: int) -> Path:
    return Path(out_dir) / dataset / PARTS / method / f"{int(image_id):08d}.csv"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling, fsync'ed and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _remove_stale_temporaries(folder: Path) -> None:
    if folder.is_dir():
        for tmp in folder.rglob(".*.tmp-*"):
            tmp.unlink(missing_ok=True)


def format_value(value) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "nan"
    return FLOAT_FORMAT.format(value + 0.0)  # + 0.0: no "-0"


def _check_name(kind: str, name: str) -> str:
    if not name or any(c in name for c in ',"\n\r/\\') or name.startswith("."):
        raise ValueError(f"{kind} name {name!r} cannot be used in the CSV / as a file name")
    return name


def format_rows(image_id: int, mask_ids: Sequence[int], dataset: str, method: str, metrics: Mapping) -> str:
    """CSV lines (no header) of one image and method, sorted by mask id."""
    order = np.argsort(np.asarray(mask_ids), kind="stable")
    lines = []
    for k in order:
        values = [str(int(image_id)), str(int(mask_ids[k])), dataset, method]
        values += [format_value(metrics[col][k]) for col in METRIC_COLUMNS]
        lines.append(",".join(values))
    return "".join(line + "\n" for line in lines)


def header() -> str:
    return ",".join(CSV_COLUMNS) + "\n"


# ------------------------------------------------------------------------------------------ manifest

def _method_identity(method: UQMethod) -> dict:
    return {"class": f"{type(method).__module__}.{type(method).__qualname__}", "repr": repr(method)}


def _settings(split: str, seed: int, max_images: int | None, identity: Mapping | None, rank_max_pixels) -> dict:
    return {
        "format": FORMAT_VERSION,
        "split": split,
        "seed": int(seed),
        "max_images": None if max_images is None else int(max_images),
        "rank_max_pixels": rank_max_pixels,
        "run": dict(identity or {}),
    }


def check_manifest(out_dir, settings: dict, methods: Mapping[str, UQMethod]) -> None:
    """Create ``evaluation.json`` or check that it agrees with this run (adding new methods)."""
    path = Path(out_dir) / MANIFEST
    wanted_methods = {name: _method_identity(m) for name, m in methods.items()}
    current = {"settings": settings, "methods": {}}
    if path.is_file():
        current = json.loads(path.read_text())
        old = current.get("settings")
        if old != json.loads(json.dumps(settings)):
            raise EvaluationMismatch(
                f"{out_dir} holds an evaluation with other settings:\n  there: {json.dumps(old, sort_keys=True)}\n"
                f"  now:   {json.dumps(settings, sort_keys=True)}\nuse another output folder (or delete this one)")
        for name, ident in wanted_methods.items():
            there = current["methods"].get(name)
            if there is not None and there != ident:
                raise EvaluationMismatch(
                    f"{out_dir} holds results of method {name!r} with other hyperparameters:\n  there: {there['repr']}\n"
                    f"  now:   {ident['repr']}\nuse another output folder (or delete {name}.csv and its parts)")
    merged = {"settings": settings, "methods": {**current.get("methods", {}), **wanted_methods}}
    merged["methods"] = dict(sorted(merged["methods"].items()))
    text = json.dumps(merged, indent=2, sort_keys=True) + "\n"
    if not path.is_file() or path.read_text() != text:
        atomic_write(path, text)


# ------------------------------------------------------------------------------------------ driver

def _ordered(methods: Mapping[str, UQMethod]) -> list[str]:
    """Plain methods first, then combinations (which may reuse the plain results)."""
    return sorted(methods, key=lambda n: isinstance(methods[n], CombinedUncertainty))


def _shared_components(methods: Mapping[str, UQMethod]) -> dict[str, dict[str, str]]:
    """For each combination: component key → name of the evaluated method that is the same instance."""
    out = {}
    for name, method in methods.items():
        if isinstance(method, CombinedUncertainty):
            out[name] = {key: other for key, comp in method.components.items()
                         for other, candidate in methods.items() if candidate is comp}
    return out


def evaluate(predictor, methods: Mapping[str, UQMethod], reader, out_dir, *, seed: int = 42,
             max_images: int | None = None, progress: bool = True,
             after_image: Callable[[str, int], None] | None = None, identity: Mapping | None = None,
             rank_max_pixels: int | None = RANK_MAX_PIXELS, metric_workers: int = 1) -> dict[str, Path]:
    """Evaluate ``methods`` (CSV name → instance) on the images of one ``SplitReader``.

    ``max_images``: the first N images by id. ``after_image(dataset, image_id)`` is called when all
    rows of an image are on disk (a hook for progress reports and for tests that interrupt a run).
    ``identity``: what else defines the run (model, checkpoint, data root...), recorded in and checked
    against ``evaluation.json``. ``metric_workers``: threads that compute the metrics of one image
    while the next image is predicted (0: everything in the calling thread); the results do not
    depend on it. Returns method → final CSV path.
    """
    out_dir = Path(out_dir)
    dataset = _check_name("dataset", reader.dataset)
    for name in methods:
        _check_name("method", name)
    if not methods:
        raise ValueError("no methods to evaluate")
    check_manifest(out_dir, _settings(reader.split, seed, max_images, identity, rank_max_pixels), methods)
    _remove_stale_temporaries(out_dir / dataset)
    image_ids = list(reader.image_ids)[: max_images if max_images is not None else None]
    finals = {name: csv_path(out_dir, dataset, name) for name in methods}
    pending: dict[str, set[int]] = {}
    for name in methods:
        if finals[name].is_file():
            continue
        parts = _part_path(out_dir, dataset, name, 0).parent
        done = {int(p.stem) for p in parts.glob("*.csv")} if parts.is_dir() else set()
        pending[name] = set(image_ids) - done
    shared = _shared_components(methods)
    order = _ordered(methods)
    todo_images = [i for i in image_ids if any(i in pending.get(name, ()) for name in methods)]
    bar = tqdm(total=len(image_ids), initial=len(image_ids) - len(todo_images), desc=f"eval {dataset}",
               unit="img", disable=not progress, dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=metric_workers) if metric_workers > 0 else None
    in_flight: list[tuple[int, list]] = []  # (image id, futures writing its parts), oldest first

    def finish_oldest() -> None:
        image_id, futures = in_flight.pop(0)
        for future in futures:
            future.result()  # re-raises a failure of the metrics
        bar.update(1)
        if after_image is not None:
            after_image(dataset, image_id)

    try:
        for image_id in todo_images:
            jobs = _evaluate_image(predictor, methods, order, shared, reader, dataset, image_id, pending, out_dir,
                                   seed, rank_max_pixels)
            in_flight.append((image_id, [pool.submit(job) if pool is not None else _done(job()) for job in jobs]))
            while len(in_flight) > 1 or (in_flight and pool is None):
                finish_oldest()
        while in_flight:
            finish_oldest()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)  # metrics already computing still reach the disk
        bar.close()
    for name in methods:
        if name in pending:
            _assemble(out_dir, dataset, name, image_ids)
    return finals


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _evaluate_image(predictor, methods, order, shared, reader, dataset, image_id, pending, out_dir, seed,
                    rank_max_pixels) -> list[Callable[[], None]]:
    """Predict every pending method on one image; returns the jobs that score and write each result."""
    names = [n for n in order if image_id in pending.get(n, ())]
    sample = reader.load(image_id)
    masks, mask_ids = np.asarray(sample.masks, bool), np.asarray(sample.mask_ids)
    input_masks = resize_masks(masks, predictor.image_size)
    boxes, vanished = boxes_from_masks(input_masks)
    if vanished.any():  # no pixel left in the model's input frame: no box prompt, not evaluated
        tqdm.write(f"{dataset} image {image_id}: mask(s) {mask_ids[vanished].tolist()} vanish at the model's "
                   f"input size {predictor.image_size}; not evaluated")
        masks, mask_ids, boxes = masks[~vanished], mask_ids[~vanished], boxes[~vanished]
        input_masks = input_masks[~vanished]
    if len(mask_ids) == 0:
        return [partial(atomic_write, _part_path(out_dir, dataset, name, image_id), "") for name in names]
    targets = prepare_targets(torch.from_numpy(masks), half_resolution=dataset in HALF_RESOLUTION_DATASETS)
    needs_encoding = any(not methods[n].changes_image or isinstance(methods[n], CombinedUncertainty) for n in names)
    with torch.inference_mode():
        encoding = predictor.encode(sample.image, use_cache=False) if needs_encoding else None
    results, jobs = {}, []
    for name in names:
        method = methods[name]
        kwargs = {}
        if isinstance(method, CombinedUncertainty):
            kwargs["precomputed"] = {key: results[other] for key, other in shared[name].items() if other in results}
        if method.needs_ground_truth:  # upper bounds (gt-mask-prompt) prompt with the masks they are scored on
            kwargs["gt_masks"] = input_masks
        result = method.predict(predictor, sample.image, boxes, encoding=encoding,
                                generator=image_generator(seed, dataset, image_id), **kwargs)
        results[name] = result
        jobs.append(partial(_score_and_write, result, targets, rank_max_pixels, image_id, mask_ids.tolist(), dataset,
                            name, _part_path(out_dir, dataset, name, image_id)))
    return jobs


def _score_and_write(result, targets, rank_max_pixels, image_id, mask_ids, dataset, name, path) -> None:
    metrics = result_metrics(result, targets, rank_max_pixels=rank_max_pixels)
    atomic_write(path, format_rows(image_id, mask_ids, dataset, name, metrics))


def _assemble(out_dir: Path, dataset: str, method: str, image_ids: Iterable[int]) -> None:
    parts_dir = _part_path(out_dir, dataset, method, 0).parent
    chunks = [header()]
    for image_id in sorted(image_ids):
        chunks.append(_part_path(out_dir, dataset, method, image_id).read_text(encoding="utf-8"))
    atomic_write(csv_path(out_dir, dataset, method), "".join(chunks))
    for part in parts_dir.glob("*.csv"):
        part.unlink()
    parts_dir.rmdir()
    try:
        parts_dir.parent.rmdir()  # .parts, once every method is assembled
    except OSError:
        pass


def evaluate_datasets(predictor, methods: Mapping[str, UQMethod], data_root, datasets: Sequence[str], out_dir, *,
                      split: str = "test", seed: int = 42, max_images: int | None = None, progress: bool = True,
                      after_image: Callable[[str, int], None] | None = None, identity: Mapping | None = None,
                      rank_max_pixels: int | None = RANK_MAX_PIXELS,
                      metric_workers: int = 1) -> dict[tuple[str, str], Path]:
    """``evaluate`` on each dataset of ``data_root`` (the published layout); (dataset, method) → CSV."""
    from .data.layout import SplitReader

    identity = {"data_root": str(Path(data_root).resolve()), **dict(identity or {})}
    out = {}
    for dataset in datasets:
        # Masks are checked for a box prompt at the model's input size per image (as they are loaded)
        # instead of at 1024 for the whole split when the reader is built.
        reader = SplitReader(data_root, dataset, split, resize_check_size=None)
        paths = evaluate(predictor, methods, reader, out_dir, seed=seed, max_images=max_images, progress=progress,
                         after_image=after_image, identity=identity, rank_max_pixels=rank_max_pixels,
                         metric_workers=metric_workers)
        out.update({(dataset, name): path for name, path in paths.items()})
    return out


def load_results(out_dir, datasets: Sequence[str] | None = None, methods: Sequence[str] | None = None):
    """The final CSVs under ``out_dir`` as one pandas DataFrame (datasets and methods sorted)."""
    import pandas as pd

    out_dir = Path(out_dir)
    frames = []
    for path in sorted(out_dir.glob("*/*.csv")):
        dataset, method = path.parent.name, path.stem
        if (datasets is not None and dataset not in datasets) or (methods is not None and method not in methods):
            continue
        frames.append(pd.read_csv(path, keep_default_na=False, na_values=["nan"]))
    if not frames:
        raise FileNotFoundError(f"no evaluation CSVs under {out_dir}")
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(["dataset", "method", "image_id", "mask_id"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------ methods

NEEDS_POSTERIOR = ("laplace", "laplace-paper")
NEEDS_HEAD = ("varnet",)
NEEDS_FUSION = ("fusion-laplace", "fusion-ones", "fusion-entropy")


def build_methods(names: Sequence[str], loaded_model, *, T: int = 10, K: int = 10, posterior=None, head=None,
                  components: Sequence[str] | None = None, fusion: Mapping | None = None) -> dict[str, UQMethod]:
    """Method instances by name, for the CLI and the notebooks.

    ``T`` (TTA copies), ``K`` (prompt perturbations), ``posterior`` (a fitted Laplace posterior file for
    ``laplace`` and ``laplace-paper``, or a dict method name → file, since the paper's predictive is
    normally paired with a ``--recipe paper`` posterior), ``head`` (a trained variance head file, for
    ``varnet``), ``fusion`` (method name → trained fusion file, for the ``fusion-*`` refinement variants;
    those with a Laplace first pass use the ``laplace`` posterior).
    A combination (``combined-rank``, ``combined-product``) is built from its default components, or
    from ``components``; a component that is also in ``names`` is the same instance, so the driver
    computes it once.
    """
    from .uq import METHODS

    built: dict[str, UQMethod] = {}

    def single(name: str) -> UQMethod:
        if name in built:
            return built[name]
        if name not in METHODS:
            raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
        cls = METHODS[name]
        if issubclass(cls, CombinedUncertainty):
            raise ValueError(f"{name!r} cannot be a component of a combination")
        if name == "tta":
            method = cls(T=T)
        elif name == "prompt":
            method = cls(K=K)
        elif name in NEEDS_HEAD:
            if head is None:
                raise ValueError(f"method {name!r} needs a trained variance head: pass head=FILE (--head)")
            method = cls.load(head, loaded_model)
        elif name in NEEDS_POSTERIOR:
            fitted = posterior.get(name) if isinstance(posterior, Mapping) else posterior
            if fitted is None:
                raise ValueError(f"method {name!r} needs a fitted Laplace posterior: pass posterior=FILE (--posterior"
                                 f"{'-paper' if name == 'laplace-paper' else ''})")
            method = _load_laplace(cls, fitted, loaded_model)
        elif name in NEEDS_FUSION:
            method = _load_fusion(cls, (fusion or {}).get(name), posterior, loaded_model)
        else:
            method = cls()
        built[name] = method
        return method

    out: dict[str, UQMethod] = {}
    for name in names:  # plain methods first, so that combinations share their instances
        if name in METHODS and not issubclass(METHODS[name], CombinedUncertainty):
            out[name] = single(name)
    for name in names:
        if name in out:
            continue
        cls = METHODS.get(name)
        if cls is None:
            raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
        wanted = tuple(components) if components else cls.default_components
        out[name] = cls({c: single(c) for c in wanted})
    return {name: out[name] for name in names}


def _load_laplace(cls, posterior, loaded_model) -> UQMethod:
    """A Laplace method with its fitted posterior (a file or a posterior object), checked against the
    model's treated layer now rather than at the first image."""
    method = cls(posterior=posterior)
    fitted = getattr(method, "fitted", None)
    if hasattr(fitted, "check_model"):
        fitted.check_model(loaded_model)  # PosteriorMismatchError (a ValueError) for another model
    return method


def _load_fusion(cls, fusion_file, posterior, loaded_model) -> UQMethod:
    """A fused refinement variant with its trained module, checked against the model now."""
    from .refine.fusion import load_fusion
    from .refine.passes import UNCERTAINTY_SOURCES
    from .uq.laplace import LaplaceExact

    if fusion_file is None:
        raise ValueError(f"method {cls.name!r} needs a trained fusion module: pass fusion={{{cls.name!r}: FILE}} "
                         f"(--fusion {cls.name}=FILE) from `uncertsam train fusion --uncertainty {cls.uncertainty}`")
    from .uq.varnet_head import model_identity

    module, _ = load_fusion(fusion_file, model_identity(loaded_model), uncertainty=cls.uncertainty)
    fitted = None
    if UNCERTAINTY_SOURCES[cls.uncertainty][0] == "laplace":
        fitted = posterior.get("laplace") if isinstance(posterior, Mapping) else posterior
        if fitted is None:
            raise ValueError(f"method {cls.name!r} has a Laplace first pass: pass posterior=FILE (--posterior)")
        fitted = _load_laplace(LaplaceExact, fitted, loaded_model).fitted
    method = cls(fusion=module, posterior=fitted)
    method.fusion = str(fusion_file)
    return method


# ------------------------------------------------------------------------------------------ caching

def evaluation_cache_dir(prefix: str, inputs: Mapping) -> Path:
    """``<cache>/evaluations/<prefix>-<hash of inputs>``: where a notebook keeps its evaluation CSVs.
    ``inputs`` (JSON-able) should hold everything that changes the numbers; the format version of the
    CSVs is added here."""
    from .artifacts import cache_digest
    from .paths import cache_dir

    digest = cache_digest({"format": FORMAT_VERSION, "rank_max_pixels": RANK_MAX_PIXELS, **dict(inputs)})
    return cache_dir() / "evaluations" / f"{prefix}-{digest}"


def evaluate_cached(prefix: str, predictor, loaded_model, methods: Mapping[str, UQMethod], data_root,
                    datasets: Sequence[str], fitted: Mapping, *, max_images: int | None = None, seed: int = 42,
                    split: str = "test") -> Path:
    """``evaluate_datasets`` into ``evaluation_cache_dir(prefix, inputs)``, ``inputs`` being everything
    that changes the numbers: data, datasets, model, methods, the SHA-256 of the ``fitted`` files
    (name → file; None and in-memory objects are left out), max_images, seed and split. A notebook's
    evaluation; reruns reuse the CSVs or resume. Returns the folder."""
    from .model.checkpoints import sha256_of

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
    evaluate_datasets(predictor, methods, data_root, datasets, out_dir, split=split, seed=seed, max_images=max_images,
                      identity={"model": loaded_model.identity()})
    return out_dir


LAPLACE_RECIPES = {"laplace": "exact", "laplace-paper": "paper"}  # the posterior each predictive is paired with


def needed_parts(methods: Sequence[str]) -> set[str]:
    """The methods among ``methods`` and the default components of its combinations."""
    from .uq import METHODS

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

        from .uq.varnet_training import VarnetTrainConfig, cached_head_path, train_or_load

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
    from .artifacts import cache_digest, fit_data_key
    from .paths import cache_dir

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
    from .data.layout import SplitReader
    from .uq.laplace_posterior import fit_posterior

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
