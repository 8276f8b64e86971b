"""Every arm of notebook 09 trained (or read from the cache) and scored on the test domains.

``run_open_questions`` plans the arms of the questions asked, and for each arm not in the cache trains
it on the shared pool (``pool``, ``train``) and scores its two modules on the test images of the
evaluation bank (``evaluation.bank``): the **trained** one (the last epoch) and the **selected** one
(the epoch with the highest fit/val mIoU, the untrained module included). A selected module that is
the untrained one is not scored again: every untrained arm is mask-prompt refinement of the Laplace
first pass (exact init; tested), scored once as the reference ``untrained``. Leave-one-domain-out
arms are scored on their held-out domain only (their trained module).

The results cache (``<results cache>/openq/``, ``uncertsam cache list``) holds one verified entry per
arm (``cache.entries``: a folder with its training record ``record.pt``: history, selected epoch, both
states, CPU seconds; and its scores ``scores.csv``), keyed by everything that changes them (the arm,
the recipe, the model, the posterior, the data's content, the evaluation's images and seed,
``VERSION``, and ``artifacts.full_key``'s code and libraries); the references (baseline, mask-prompt,
untrained) and the maps' correlations have one entry each. The pool and the bank are built only when
something is missing, so a cached rerun reads files only.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

from .arms import Arm, plan
from .pool import ArmRecipe, TrainingPool

VERSION = 1  # part of every cache key: bump when the code changes what an arm produces
STATES = ("trained", "selected")


@dataclass
class OpenQuestionsRun:
    results: pd.DataFrame  # per mask: image_id, mask_id, dataset, method, IoU, BIoU_2, seed, state
    training: pd.DataFrame  # per arm and validated epoch
    correlation: pd.DataFrame  # per mask and map: Pearson r with the Laplace first pass's soft error
    arms: list[Arm]
    cpu: dict = field(default_factory=dict)  # CPU seconds by part (this call only: cached parts cost 0)


class _Lazy:
    """The pool and the evaluation bank, built on first use (a fully cached run builds neither)."""

    def __init__(self, session, recipe, posterior, datasets, max_images, eval_seed, log):
        self.session, self.recipe, self.posterior = session, recipe, posterior
        self.datasets, self.max_images, self.eval_seed, self.log = datasets, max_images, eval_seed, log
        self._pool = self._bank = None
        self.cpu = {"pool": 0.0, "bank": 0.0, "prompt maps": 0.0}

    @property
    def pool(self) -> TrainingPool:
        if self._pool is None:
            tic = time.process_time()
            self._pool = TrainingPool.build(self.session.root, self.session.loaded, self.datasets, self.recipe,
                                            posterior=self.posterior, log=self.log)
            self.cpu["pool"] += time.process_time() - tic
        return self._pool

    @property
    def bank(self):
        if self._bank is None:
            from ..evaluation.bank import EvaluationBank

            self._bank = EvaluationBank.build(self.session.predictor, self.session.root, self.datasets,
                                              posterior=self.posterior, max_images=self.max_images,
                                              seed=self.eval_seed, progress=False)
            self.cpu["bank"] += self._bank.build_seconds
            self.log(f"evaluation bank: {len(self._bank.images)} test images in {self._bank.build_seconds:.0f} CPU s")
        return self._bank

    def prompt_maps(self):
        """The test images' prompt-perturbation maps (the combined maps' second component), once."""
        from .maps import prompt_entropy

        bank = self.bank
        tic = time.process_time()
        K = self.recipe.prompt_K
        bank.add_maps("prompt", lambda im: prompt_entropy(self.session.predictor, im.encoding, im.boxes,
                                                           im.generator(bank.seed), K))
        self.cpu["prompt maps"] += time.process_time() - tic
        return bank


def cache_key(session, recipe: ArmRecipe, posterior_file, datasets, max_images, eval_seed) -> dict:
    """What every cached result of the run depends on (``artifacts.full_key`` adds the code and libraries):
    the model, the content of fit/train, fit/val and the domains' val and test splits, the recipe, the
    posterior file, the test images and the evaluation seed."""
    from ..artifacts import model_key
    from ..cache.fingerprints import data_fingerprint
    from ..model.checkpoints import sha256_of

    parts = ["fit/train", "fit/val", *(f"{d}/{split}" for d in datasets for split in ("val", "test"))]
    return {"version": VERSION, "model": model_key(session.loaded),
            "data": data_fingerprint(session.root, parts), "recipe": dataclasses.asdict(recipe),
            "posterior": sha256_of(Path(posterior_file)), "datasets": list(datasets), "max_images": max_images,
            "eval_seed": int(eval_seed)}


def _entry(name: str, key: dict, log) -> tuple[Path, bool]:
    """The cache folder of one result (``<results cache>/openq/<name>-<digest>``) and whether it holds a
    verified entry (a broken one is said and removed, ``cache.reuse_entry``)."""
    from ..artifacts import cache_digest
    from ..cache.entries import reuse_entry
    from ..paths import results_cache_dir

    folder = results_cache_dir() / "openq" / f"{name}-{cache_digest(key)}"
    return folder, reuse_entry(folder, log)


def _record(folder: Path, key: dict) -> None:
    from ..artifacts import full_key
    from ..cache.entries import record_entry

    record_entry(folder, "openq", full_key(key))


def run_open_questions(session, questions: Sequence[str], seeds: Sequence[int], recipe: ArmRecipe, *,
                       posterior_file, max_images: int | None = None, eval_seed: int = 42, progress: bool = True,
                       log: Callable[[str], None] = print) -> OpenQuestionsRun:
    """Train and score (or read) every arm of ``questions`` (keys of ``arms.QUESTION_METHODS``) for ``seeds``."""
    from ..uq.laplace import LastLayerPosterior

    datasets = list(session.datasets)
    posterior = LastLayerPosterior.load(posterior_file, session.loaded)
    key = cache_key(session, recipe, posterior_file, datasets, max_images, eval_seed)
    lazy = _Lazy(session, recipe, posterior, datasets, max_images, eval_seed, log)
    arms = sorted(plan(questions, seeds, datasets), key=lambda a: (a.seed, a.kind, a.method, a.hold_out or ""))
    references = _references(lazy, key, log)
    frames, histories, cpu = [references], [], {"train": 0.0, "evaluate": 0.0}
    untrained = references[references["method"] == "untrained"]
    for arm in arms:
        scores, record = _arm(lazy, arm, key, untrained, cpu, progress, log)
        frames.append(scores)
        histories += [{"method": arm.method, "hold_out": arm.hold_out, "seed": arm.seed, "selected_epoch":
                       record["best_epoch"], "cpu_seconds": record["cpu_seconds"], **row} for row in record["history"]]
    wants_maps = "combined_input" in questions
    correlation = _correlation(lazy, key, log) if wants_maps else pd.DataFrame()
    cpu.update(lazy.cpu)
    return OpenQuestionsRun(pd.concat(frames, ignore_index=True), pd.DataFrame(histories), correlation, arms, cpu)


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=["nan", ""])


def _write_csv(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Write ``frame`` and return it as read back: a fresh run then reports the values a cached run reads
    (6 significant digits), so both write byte-identical tables."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, float_format="%.6g")
    tmp.replace(path)
    return _read_csv(path)


def _references(lazy: _Lazy, key: dict, log) -> pd.DataFrame:
    """baseline, mask-prompt and untrained (mask-prompt of the Laplace first pass) on every test image."""
    from ..refine.passes import second_pass

    folder, cached = _entry("references", {**key, "part": "references"}, log)
    if cached:
        return _read_csv(folder / "scores.csv")
    bank, predictor = lazy.bank, lazy.session.predictor

    def refined(kind):
        def run(image):
            points, labels = image.prompt
            first = image.passes[kind]
            return second_pass(predictor, image.encoding, None, first.logits, None, points=points, labels=labels).logits
        return run

    frame = pd.concat([bank.score("baseline", lambda image: image.passes["sam"].logits),
                       bank.score("mask-prompt", refined("sam")), bank.score("untrained", refined("laplace"))],
                      ignore_index=True).assign(state="reference")
    frame = _write_csv(frame, folder / "scores.csv")
    _record(folder, {**key, "part": "references"})
    return frame


def _arm(lazy: _Lazy, arm: Arm, key: dict, untrained: pd.DataFrame, cpu: dict, progress: bool, log):
    """(scores, record) of one arm: from the cache, or trained and scored now."""
    from ..artifacts import read_payload, save_atomic
    from .train import load_state, refiner, train_arm

    arm_key = {**key, "arm": arm.key()}
    folder, cached = _entry(f"{arm.method}{'-' + arm.hold_out if arm.hold_out else ''}-s{arm.seed}", arm_key, log)
    record_path, scores_path = folder / "record.pt", folder / "scores.csv"
    if cached:
        record = read_payload(record_path, kind="open-question arm", file_format="uncertsam-openq-arm", version=VERSION)
        return _read_csv(scores_path), record
    pool = lazy.pool
    if arm.map in ("combined-product", "combined-rank"):
        lazy.prompt_maps()
    result = train_arm(pool, arm, progress=progress, log=log)
    cpu["train"] += result.cpu_seconds
    tic = time.process_time()
    bank, datasets = lazy.bank, [arm.hold_out] if arm.hold_out else None
    frames = []
    for state, saved in (("trained", result.last), ("selected", result.selected)):
        if state == "selected" and arm.data == "lodo":
            continue
        if saved is None:  # the selected module is the untrained one: mask-prompt of the Laplace first pass
            rows = untrained.assign(method=arm.method)
        else:
            module = load_state(pool, arm, saved, pool.inputs.posterior)
            rows = bank.score(arm.method, refiner(module, arm, lazy.session.predictor), datasets=datasets)
        frames.append(rows.assign(seed=arm.seed, state=state))
    scores = pd.concat(frames, ignore_index=True)
    cpu["evaluate"] += time.process_time() - tic
    record = {"format": "uncertsam-openq-arm", "version": VERSION, "arm": arm.key(), "history": result.history,
              "best_epoch": result.best_epoch, "cpu_seconds": round(result.cpu_seconds, 2),
              "eval_cpu_seconds": round(time.process_time() - tic, 2),
              "last_state": result.last, "selected_state": result.selected}
    save_atomic(record, record_path)
    scores = _write_csv(scores, scores_path)
    _record(folder, arm_key)
    return scores, record


def _correlation(lazy: _Lazy, key: dict, log) -> pd.DataFrame:
    """Per mask: Pearson r of the Laplace entropy, prompt perturbation's entropy and their combinations with
    the soft error of the Laplace first pass (the prediction the fusion module refines)."""
    from ..metrics.accuracy import error_pearson
    from .maps import COMBINATIONS, combined

    folder, cached = _entry("correlation", {**key, "part": "correlation"}, log)
    if cached:
        return _read_csv(folder / "pearson.csv")
    bank = lazy.prompt_maps()
    rows = []
    for image in bank.images:
        first = image.passes["laplace"]
        maps = {"laplace": first.entropy, "prompt": image.maps["prompt"]}
        with torch.no_grad():
            maps.update({name: combined(name, first.entropy, image.maps["prompt"]) for name in COMBINATIONS})
        values = error_pearson(image.targets, first.logits, maps, image.orig_hw)
        for name, r in values.items():
            rows.append(pd.DataFrame({"image_id": image.image_id, "mask_id": image.mask_ids, "dataset": image.dataset,
                                      "method": name, "pearson": r}))
    frame = pd.concat(rows, ignore_index=True)
    frame = _write_csv(frame, folder / "pearson.csv")
    _record(folder, {**key, "part": "correlation"})
    return frame
