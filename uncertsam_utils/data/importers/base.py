"""What every importer shares: deterministic splits, image ids, instance extraction, writing, manifest.

An importer only lists its source images (:class:`SourceImage`, each with a lazy ``load``) and says
how its native splits map to ours (a *split plan*); :func:`run_import` does the rest:

* **Splits.** Images are grouped (a scene, a CT volume, or the image itself) so that a group never
  straddles two splits. Within each source pool (a native split, or ``"all"``) the sorted group names
  are shuffled by ``np.random.default_rng(seed).permutation`` and cut at the plan's cumulative
  fractions (rounded). Same sources + same seed -> same splits.
* **Image ids.** All source images of the dataset are sorted by key and numbered 1, 2, ...; ids are
  therefore unique across the dataset's splits and stable for a given source folder.
* **Instances.** Each loaded region is either one object (kept whole) or a class map that is split into
  8-connected components (``scipy.ndimage.label``). Instances under ``min_area`` pixels (at the source
  resolution, default :data:`DEFAULT_MIN_AREA`) are dropped, and so are instances that would vanish in
  the paper's resize to 1024x1024 (they would have no box prompt). Images left without instances are
  not written. Every drop is counted in ``<out>/<Dataset>/import_manifest.json``.
* **All or nothing.** Existing splits are only replaced with ``overwrite=True``; if the import fails
  (say, a mask file is unreadable), the splits it had already written are removed again.
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


@dataclass
class ImportResult:
    dataset: str
    out: Path
    splits: dict[str, tuple[int, int]] = field(default_factory=dict)   # split -> (images, masks)
    dropped: dict[str, int] = field(default_factory=dict)               # reason -> count
    manifest: Path | None = None

    def summary(self) -> str:
        parts = [f"{split}: {n_img} images, {n_mask} masks" for split, (n_img, n_mask) in self.splits.items()]
        dropped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(self.dropped.items()))
        return (f"{self.dataset} -> {self.out / self.dataset}: " + "; ".join(parts)
                + (f" (dropped: {dropped})" if dropped else "") + f"\nmanifest: {self.manifest}")


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


def run_import(dataset: str, sources: Sequence[SourceImage], out, *, plan: dict[str, dict[str, float]],
               seed: int, min_area: int, overwrite: bool, options: dict | None = None) -> ImportResult:
    out = Path(out)
    if not sources:
        raise DataError(f"{dataset}: no source images found")
    keys = [s.key for s in sources]
    if len(set(keys)) != len(keys):
        duplicated = sorted(k for k, n in Counter(keys).items() if n > 1)
        raise DataError(f"{dataset}: source keys are not unique: {duplicated[:5]}")
    split_of = assign_splits(sources, plan, seed)
    used_splits = [s for s in SPLITS if s in split_of.values()] + sorted(set(split_of.values()) - set(SPLITS))
    for split in used_splits:
        if split_dir(out, dataset, split).exists() and not overwrite:
            raise DataError(f"{split_dir(out, dataset, split)} already exists; remove it or pass overwrite=True")
    ordered = sorted(sources, key=lambda s: s.key)
    image_id = {s.key: number for number, s in enumerate(ordered, start=1)}
    survival = ResizeSurvival(RESIZE_CHECK_SIZE)
    result = ImportResult(dataset, out)
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
            written = write_split(out, dataset, split, items_of(split), overwrite=overwrite)
            written_dirs.append(written.split_dir)
            result.splits[split] = (written.num_images, written.num_masks)
    except BaseException:
        for path in written_dirs:     # all or nothing: no dataset with some splits from this run
            shutil.rmtree(path, ignore_errors=True)
        raise
    result.dropped = {k: v for k, v in dropped.items() if v}
    result.manifest = out / dataset / MANIFEST
    manifest = {"dataset": dataset, "seed": seed, "min_area": min_area, "resize_check_size": RESIZE_CHECK_SIZE,
                "plan": plan, "options": options or {}, "splits": {k: list(v) for k, v in result.splits.items()},
                "dropped": result.dropped, "images": sorted(entries, key=lambda e: e["image_id"])}
    result.manifest.write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    return result


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
