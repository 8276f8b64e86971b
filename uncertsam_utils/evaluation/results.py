"""The result files of an evaluation: the CSV format, atomic writes, the manifest, assembling and loading.

Output, under ``out_dir``::

    evaluation.json                  settings and methods of the run (a rerun must match them)
    <dataset>/<method>.csv           the result: one row per mask, sorted by (image_id, mask_id)
    <dataset>/.parts/<method>/<image_id:08d>.csv   rows of one image while the dataset is running

Columns: ``image_id, mask_id, dataset, method``, the paper's 28 (the reference code's names), then
ours (``metrics.EXTRA_COLUMNS`` and ``CURVE_COLUMNS``: Spearman, AUROC, AUPR, AUSE, ρ against the
shared error target, with their ROI versions ``*_``; the reliability bins and risk–coverage points). Floats are written with
``FLOAT_FORMAT`` (6 significant digits; NaN as ``nan``). Every file is written to a temporary
sibling, fsync'ed and renamed into place (``atomic_write``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..metrics import METRIC_COLUMNS
from ..uq.base import UQMethod

ID_COLUMNS = ("image_id", "mask_id", "dataset", "method")
CSV_COLUMNS = ID_COLUMNS + METRIC_COLUMNS
FLOAT_FORMAT = "{:.6g}"
MANIFEST = "evaluation.json"
FORMAT_VERSION = 2  # 2: logits-based soft error, the shared-target, reliability and risk-coverage columns
PARTS = ".parts"


class EvaluationMismatch(RuntimeError):
    """The output folder holds results of a different configuration."""


def csv_path(out_dir, dataset: str, method: str) -> Path:
    return Path(out_dir) / dataset / f"{method}.csv"


def part_path(out_dir, dataset: str, method: str, image_id: int) -> Path:
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


def remove_stale_temporaries(folder: Path) -> None:
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


def check_name(kind: str, name: str) -> str:
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


def _method_identity(method: UQMethod) -> dict:
    return {"class": f"{type(method).__module__}.{type(method).__qualname__}", "repr": repr(method)}


def run_settings(split: str, seed: int, max_images: int | None, identity: Mapping | None, rank_max_pixels) -> dict:
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


def assemble(out_dir: Path, dataset: str, method: str, image_ids: Iterable[int]) -> None:
    parts_dir = part_path(out_dir, dataset, method, 0).parent
    chunks = [header()]
    for image_id in sorted(image_ids):
        chunks.append(part_path(out_dir, dataset, method, image_id).read_text(encoding="utf-8"))
    atomic_write(csv_path(out_dir, dataset, method), "".join(chunks))
    for part in parts_dir.glob("*.csv"):
        part.unlink()
    parts_dir.rmdir()
    try:
        parts_dir.parent.rmdir()  # .parts, once every method is assembled
    except OSError:
        pass


def load_results(out_dir, datasets: Sequence[str] | None = None, methods: Sequence[str] | None = None):
    """The final CSVs under ``out_dir`` as one pandas DataFrame (datasets and methods sorted)."""
    import pandas as pd

    out_dir = Path(out_dir)
    frames = []
    for path in sorted(out_dir.glob("*/*.csv")):
        dataset, method = path.parent.name, path.stem
        if (datasets is not None and dataset not in datasets) or (methods is not None and method not in methods):
            continue
        frames.append(pd.read_csv(path, keep_default_na=False, na_values=["nan"],
                                  dtype={c: "float64" for c in METRIC_COLUMNS}))  # a column of zeros stays float
    if not frames:
        raise FileNotFoundError(f"no evaluation CSVs under {out_dir}")
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(["dataset", "method", "image_id", "mask_id"], kind="stable").reset_index(drop=True)
