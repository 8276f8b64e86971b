"""What every importer shares: deterministic splits, image ids, instance extraction, writing, manifest.

An importer only lists its source images (:class:`SourceImage`, each with a lazy ``load``) and says
how its native splits map to ours (a *split plan*); :func:`run_import` does the rest:

* **Splits.** Images are grouped (a scene, a CT volume, or the image itself) so that a group never
  straddles two splits. Within each source pool (a native split, or ``"all"``) the sorted group names
  are shuffled by ``np.random.default_rng(seed).permutation`` and cut at the plan's cumulative
  fractions (rounded). Same sources + same seed -> same splits.
* **Image ids.** All source images of the dataset are sorted by key and numbered 1, 2, ...; ids are
  therefore unique across the dataset's splits and stable for a given source folder (a source with
  ids of its own, SA-1B, passes them in :attr:`SourceImage.image_id` instead).
* **Instances.** Each loaded region is either one object (kept whole) or a class map that is split into
  8-connected components (``scipy.ndimage.label``). Instances under ``min_area`` pixels (at the source
  resolution, default :data:`DEFAULT_MIN_AREA`) are dropped, and so are instances that would vanish in
  the paper's resize to 1024x1024 (they would have no box prompt). Images left without instances are
  not written. Every drop is counted in ``<out>/<Dataset>/import_manifest.json``.
* **What is there.** An importer looks for each native part (a native split, a kind) and records in
  :class:`Found` the parts that are not there; the others are imported. The result and the manifest
  say what each missing part means for the splits written (no native train: no train, and no val cut
  from it). Only when no source image is found at all is the import an error, naming what was looked
  for. A part with some of its folders but not all is a broken download: an error naming the folder.
  Image ids, and the cut of a pool shared out by fractions, are derived from what is there: they can
  differ from a full import's (the pools draw from one generator in sorted order).
* **All or nothing.** Existing splits are only replaced with ``overwrite=True``; if the import fails
  (say, a mask file is unreadable), the splits it had already written are removed again. A split of
  the plan that this import does not write (its part is missing) but that exists from an earlier
  import would mix two numberings of image ids: it is an error, or removed with ``overwrite=True``.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.importers.readers import connected_components
from uncertsam_utils.data.layout import SPLITS, split_dir, write_split
from uncertsam_utils.data.resize import ResizeSurvival

DEFAULT_MIN_AREA = 32            # pixels at the source resolution
RESIZE_CHECK_SIZE = 1024         # the paper's model input
POOLED = {"train": 0.7, "val": 0.1, "test": 0.2}          # for sources without a usable native split
CARVE_VAL = {"train": 0.9, "val": 0.1}                   # native train -> our train + val
MANIFEST = "import_manifest.json"


@dataclass
class Loaded:
    image: np.ndarray                  # (H, W, 3) uint8 RGB
    regions: list[np.ndarray]          # (H, W) bool each
    split_components: bool             # True: each region is a class map, split into connected components


@dataclass(frozen=True)
class SourceImage:
    key: str                           # unique and stable (relative source path); orders images and ids
    group: str                         # images of one group always land in the same split
    pool: str                          # the native split it comes from, or "all"
    load: Callable[[], Loaded]
    image_id: int | None = None        # the source's own id (all sources or none); None: numbered by key


@dataclass
class Found:
    """What an importer found in a native folder: the source images of the parts that are there, and
    per native part (a pool of the plan) the folders looked for and whether it is missing."""

    dataset: str
    src: Path
    sources: list[SourceImage] = field(default_factory=list)
    looked_for: dict[str, str] = field(default_factory=dict)     # pool -> "folder (what) + ..."
    missing: set[str] = field(default_factory=set)

    def part(self, pool: str, *folders: tuple[Path, str]) -> bool:
        """Whether native part ``pool`` is there: True when all its ``(folder, what)`` are, False (recorded
        as missing) when none is; a DataError naming the first absent folder when only some are."""
        self.looked_for[pool] = " + ".join(f"{_relative(path, self.src)} ({what})" for path, what in folders)
        there = [path.is_dir() for path, _ in folders]
        if all(there):
            return True
        if any(there):
            path, what = folders[there.index(False)]
            raise DataError(f"{path}: folder not found ({what}), though the other folders of {self.dataset}'s "
                            f"native part {pool!r} are there")
        self.missing.add(pool)
        return False


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass
class ImportResult:
    dataset: str
    out: Path
    splits: dict[str, tuple[int, int]] = field(default_factory=dict)   # split -> (images, masks)
    dropped: dict[str, int] = field(default_factory=dict)               # reason -> count
    manifest: Path | None = None
    missing: dict[str, str] = field(default_factory=dict)               # native part -> what its absence means
    removed: list[str] = field(default_factory=list)                    # splits of an earlier import removed

    def summary(self) -> str:
        parts = [f"{split}: {n_img} images, {n_mask} masks" for split, (n_img, n_mask) in self.splits.items()]
        dropped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(self.dropped.items()))
        notes = [f"missing: {note}" for note in self.missing.values()]
        notes += [f"removed {self.out / self.dataset / split} (an earlier import's)" for split in self.removed]
        return "\n".join([f"{self.dataset} -> {self.out / self.dataset}: " + "; ".join(parts)
                          + (f" (dropped: {dropped})" if dropped else ""), *notes, f"manifest: {self.manifest}"])


def assign_splits(sources: Sequence[SourceImage], plan: dict[str, dict[str, float]], seed: int) -> dict[str, str]:
    """source key -> split, per the module docstring."""
    rng = np.random.default_rng(seed)
    unknown = sorted({s.pool for s in sources} - set(plan))
    if unknown:
        raise DataError(f"source pool(s) {unknown} have no split plan")
    split_of_group: dict[tuple[str, str], str] = {}
    for pool in sorted(plan):
        groups = sorted({s.group for s in sources if s.pool == pool})
        names = [n for n in SPLITS if n in plan[pool]] + sorted(set(plan[pool]) - set(SPLITS))
        bounds = np.round(np.cumsum([plan[pool][n] for n in names]) / sum(plan[pool].values()) * len(groups))
        order = rng.permutation(len(groups))
        start = 0
        for name, stop in zip(names, bounds.astype(int)):
            for index in order[start:stop]:
                split_of_group[(pool, groups[index])] = name
            start = stop
    return {s.key: split_of_group[(s.pool, s.group)] for s in sources}


def run_import(found: Found, out, *, plan: dict[str, dict[str, float]], seed: int, min_area: int, overwrite: bool,
               options: dict | None = None) -> ImportResult:
    """Split, number, extract, write and record the sources ``found`` under ``<out>/<dataset>``."""
    dataset, sources, out = found.dataset, found.sources, Path(out)
    if not sources:
        raise DataError(_nothing_found(found))
    keys = [s.key for s in sources]
    if len(set(keys)) != len(keys):
        duplicated = sorted(k for k, n in Counter(keys).items() if n > 1)
        raise DataError(f"{dataset}: source keys are not unique: {duplicated[:5]}")
    split_of = assign_splits(sources, plan, seed)
    used_splits = [s for s in SPLITS if s in split_of.values()] + sorted(set(split_of.values()) - set(SPLITS))
    for split in used_splits:
        if split_dir(out, dataset, split).exists() and not overwrite:
            raise DataError(f"{split_dir(out, dataset, split)} already exists; remove it or pass overwrite=True")
    stale = [split for split in dict.fromkeys(n for targets in plan.values() for n in targets)
             if split not in used_splits and split_dir(out, dataset, split).exists()]
    if stale and not overwrite:
        raise DataError(f"{split_dir(out, dataset, stale[0])} is from an earlier import and this one does not write it "
                        "(its image ids would clash with the new ones); remove it or pass overwrite=True")
    result = ImportResult(dataset, out, missing=missing_effects(found, plan))
    entries = _write_splits(result, sources, split_of, used_splits, min_area, overwrite)
    for split in stale:
        shutil.rmtree(split_dir(out, dataset, split))
    result.removed = stale
    result.manifest = out / dataset / MANIFEST
    manifest = {"dataset": dataset, "seed": seed, "min_area": min_area, "resize_check_size": RESIZE_CHECK_SIZE,
                "plan": plan, "options": options or {}, "splits": {k: list(v) for k, v in result.splits.items()},
                "dropped": result.dropped, "images": sorted(entries, key=lambda e: e["image_id"])}
    if result.missing:      # only then: a full import's manifest stays as it was
        manifest["missing"] = result.missing
    result.manifest.write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    return result


def _write_splits(result: ImportResult, sources: Sequence[SourceImage], split_of: dict[str, str],
                  used_splits: list[str], min_area: int, overwrite: bool) -> list[dict]:
    """Write every used split (all or nothing); fills ``result.splits`` and ``result.dropped`` and returns
    the manifest's per-image entries."""
    image_id = _image_ids(result.dataset, sources)
    ordered = sorted(sources, key=lambda s: (image_id[s.key], s.key))
    survival = ResizeSurvival(RESIZE_CHECK_SIZE)
    entries = []
    dropped: Counter = Counter()

    def items_of(split):
        for source in ordered:
            if split_of[source.key] != split:
                continue
            image, instances, stats = _instances(source, min_area, survival)
            dropped.update(stats)
            entries.append({"source": source.key, "group": source.group, "split": split,
                            "image_id": image_id[source.key], "instances": len(instances), **stats})
            if instances:
                yield image_id[source.key], image, instances
            else:
                dropped["images_without_instances"] += 1

    written_dirs = []
    try:
        for split in used_splits:
            written = write_split(result.out, result.dataset, split, items_of(split), overwrite=overwrite)
            written_dirs.append(written.split_dir)
            result.splits[split] = (written.num_images, written.num_masks)
    except BaseException:
        for path in written_dirs:     # all or nothing: no dataset with some splits from this run
            shutil.rmtree(path, ignore_errors=True)
        raise
    result.dropped = {k: v for k, v in dropped.items() if v}
    return entries


def _image_ids(dataset: str, sources: Sequence[SourceImage]) -> dict[str, int]:
    """Source key -> image id: the sources' own, or 1, 2, ... in key order."""
    given = [s.image_id for s in sources]
    if all(i is None for i in given):
        return {s.key: number for number, s in enumerate(sorted(sources, key=lambda s: s.key), start=1)}
    if any(i is None for i in given):
        raise ValueError(f"{dataset}: either every source image brings its id or none does")
    repeated = sorted(i for i, n in Counter(given).items() if n > 1)
    if repeated:
        raise DataError(f"{dataset}: image id(s) {repeated[:5]} given to more than one source image")
    return {s.key: int(s.image_id) for s in sources}


def _nothing_found(found: Found) -> str:
    looked = "; ".join(f"native {pool!r}: {folders}, " + ("not there" if pool in found.missing else "no images")
                       for pool, folders in found.looked_for.items())
    return f"{found.dataset}: no source images in {found.src}" + (f"; looked for {looked}" if looked else "")


def missing_effects(found: Found, plan: dict[str, dict[str, float]]) -> dict[str, str]:
    """Native part -> what its absence means for the splits written: a split fed by it alone is not
    written; one fed by other parts too holds only theirs."""
    notes = {}
    for pool in [p for p in plan if p in found.missing]:
        lost, partial = [], {}
        for split in plan[pool]:
            others = tuple(p for p in plan if p != pool and p not in found.missing and split in plan[p])
            if others:
                partial.setdefault(others, []).append(split)
            else:
                lost.append(split)
        effects = [" and ".join(f"no {split} split" for split in lost)] if lost else []
        if lost and len(plan[pool]) > 1:
            effects[0] += f" ({_and(plan[pool])} are cut from it)"
        effects += [f"{_and(splits)} {'hold' if len(splits) > 1 else 'holds'} only native {_and(map(repr, others))}"
                    for others, splits in partial.items()]
        notes[pool] = (f"{found.dataset}'s native part {pool!r} is not there ({found.looked_for[pool]}): "
                       + "; ".join(effects))
    return notes


def _and(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _instances(source: SourceImage, min_area: int, survival: ResizeSurvival):
    loaded = source.load()
    image = loaded.image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{source.key}: image must load as (H, W, 3) uint8, got {image.dtype} {image.shape}")
    instances, stats = [], Counter({"dropped_small": 0, "dropped_vanishing": 0})
    for region in loaded.regions:
        if region.shape != image.shape[:2]:
            raise DataError(f"{source.key}: mask size {region.shape} differs from image size {image.shape[:2]}")
        if loaded.split_components:
            parts, small = connected_components(region, min_area)
            stats["dropped_small"] += small
        elif region.sum() >= min_area:
            parts = [region]
        else:
            parts = []
            stats["dropped_small"] += int(region.any())
        for part in parts:
            if survival.survives_mask(part):
                instances.append(part)
            else:
                stats["dropped_vanishing"] += 1
    return image, instances, dict(stats)
