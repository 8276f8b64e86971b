"""The evaluation driver: every method on every image of a split, one CSV row per mask (paper §6).

Protocol (the paper's): the tight ground-truth box of each mask, computed in the model's square
input frame (``Sample.boxes``), is the only prompt; each method predicts at low resolution, its
logits and maps are upsampled bilinearly to the original image size and every column of
``metrics.METRIC_COLUMNS`` is computed per mask (BIG at half resolution, paper §1.4).
The files it writes (format, manifest, atomic parts) are ``results.py``'s.

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
change the image, like TTA, use it only for their clean copy). The baseline's prediction of the
image's masks is the shared error target of every method's ``*_shared`` columns: the evaluated
baseline's when it runs, else one extra decoder pass per image. A combination whose components are
also evaluated as methods (the same instances) reuses their results instead of recomputing them.

Speed: the metrics of an image are computed in a worker thread (``metric_workers``) while the next
image is predicted; one output folder belongs to one process at a time (a second process would
remove the first one's temporary files). With two torch threads on a two-core machine the two
overlap; on a busy machine ``torch.set_num_threads(1)`` (``--threads 1``) is much faster.
Ranking metrics use at most ``RANK_MAX_PIXELS`` pixels per mask and region (``metrics.per_mask``).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.resize import boxes_from_masks, resize_masks
from ..metrics import HALF_RESOLUTION_DATASETS, SharedTarget, prepare_targets, result_metrics
from ..metrics.per_mask import RANK_MAX_PIXELS
from ..uq.base import UQMethod, image_generator
from ..uq.baseline import Baseline
from ..uq.combined import CombinedUncertainty
from .results import (
    assemble,
    atomic_write,
    check_manifest,
    check_name,
    csv_path,
    format_rows,
    part_path,
    remove_stale_temporaries,
    run_settings,
)


def _ordered(methods: Mapping[str, UQMethod]) -> list[str]:
    """Plain methods first, the baseline leading (its prediction is the shared error target), then
    combinations (which may reuse the plain results)."""
    return sorted(methods, key=lambda n: (isinstance(methods[n], CombinedUncertainty),
                                          not isinstance(methods[n], Baseline)))


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
    dataset = check_name("dataset", reader.dataset)
    for name in methods:
        check_name("method", name)
    if not methods:
        raise ValueError("no methods to evaluate")
    check_manifest(out_dir, run_settings(reader.split, seed, max_images, identity, rank_max_pixels), methods)
    remove_stale_temporaries(out_dir / dataset)
    image_ids = list(reader.image_ids)[: max_images if max_images is not None else None]
    finals = {name: csv_path(out_dir, dataset, name) for name in methods}
    pending: dict[str, set[int]] = {}
    for name in methods:
        if finals[name].is_file():
            continue
        parts = part_path(out_dir, dataset, name, 0).parent
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
            assemble(out_dir, dataset, name, image_ids)
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
        return [partial(atomic_write, part_path(out_dir, dataset, name, image_id), "") for name in names]
    targets = prepare_targets(torch.from_numpy(masks), half_resolution=dataset in HALF_RESOLUTION_DATASETS)
    needs_encoding = any(not methods[n].changes_image or isinstance(methods[n], CombinedUncertainty) for n in names)
    with torch.inference_mode():
        encoding = predictor.encode(sample.image, use_cache=False) if needs_encoding else None
    results, jobs = {}, []
    reference = None  # the shared error target (metrics.shared): the baseline's soft error on these masks
    if not any(isinstance(methods[n], Baseline) for n in names):
        baseline = Baseline().predict(predictor, sample.image, boxes, encoding=encoding)
        reference = SharedTarget.from_result(targets, baseline)
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
        if reference is None and isinstance(method, Baseline):
            reference = SharedTarget.from_result(targets, result)
        jobs.append(partial(_score_and_write, result, targets, reference, rank_max_pixels, image_id, mask_ids.tolist(),
                            dataset, name, part_path(out_dir, dataset, name, image_id)))
    return jobs


def _score_and_write(result, targets, reference, rank_max_pixels, image_id, mask_ids, dataset, name, path) -> None:
    metrics = result_metrics(result, targets, reference=reference, rank_max_pixels=rank_max_pixels)
    atomic_write(path, format_rows(image_id, mask_ids, dataset, name, metrics))


def evaluate_datasets(predictor, methods: Mapping[str, UQMethod], data_root, datasets: Sequence[str], out_dir, *,
                      split: str = "test", seed: int = 42, max_images: int | None = None, progress: bool = True,
                      after_image: Callable[[str, int], None] | None = None, identity: Mapping | None = None,
                      rank_max_pixels: int | None = RANK_MAX_PIXELS,
                      metric_workers: int = 1) -> dict[tuple[str, str], Path]:
    """``evaluate`` on each dataset of ``data_root`` (the published layout); (dataset, method) → CSV."""
    from ..data.layout import SplitReader

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
