"""Files the project writes for its trained and fitted parts (variance heads, fusion modules, posteriors):
cache names, the model identity they are bound to, atomic writes, and reads that name the file and
say what is wrong with it (resume states: ``training/resume.py``).

Every read uses ``torch.load(..., weights_only=True)``: these files hold tensors and plain data only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch


def cache_digest(key: Mapping) -> str:
    """16 hex digits naming a cached result (evaluation CSVs, posterior, head, fusion module) by
    ``key``, everything that changes its numbers, plus the mask decoder's numerics tag: every cached
    result is computed through the decoder, so a change there recomputes it instead of mixing."""
    from .model.mask_decoding import IMPLEMENTATION

    text = json.dumps({**key, "decoder": IMPLEMENTATION}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def fit_data_key(data_root) -> dict:
    """The fit data's part of a cache key: UncertSAM-mini's marker (generator version, seed, sizes)
    when there is one, else the fit annotations' sizes and modification times."""
    from .data.mini import read_marker

    root = Path(data_root)
    marker = read_marker(root)
    if marker is not None:
        return marker
    files = sorted((root / "fit").glob("*/annotations/dataset.json"))
    return {str(f.relative_to(root)): [f.stat().st_size, f.stat().st_mtime_ns] for f in files}


def model_identity(loaded_model) -> dict:
    """What a trained part (variance head, fusion module) records about its model:
    ``LoadedModel.identity()``, plus the init seed for random weights (which have no file hash, so
    the seed is what tells two of them apart)."""
    identity = dict(loaded_model.identity())
    if getattr(loaded_model, "random_weights", False):
        identity["random_seed"] = loaded_model.seed
    return identity


def save_atomic(payload, path) -> Path:
    """``torch.save`` through a temporary sibling renamed into place: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_payload(path, *, kind: str, file_format: str, version: int) -> dict:
    """The dict stored at ``path``, checked to be a ``kind`` file of ``file_format`` / ``version``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise ValueError(f"cannot read {kind} file {path}: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != file_format:
        raise ValueError(f"{path} is not a {kind} file (format {file_format!r})")
    if payload.get("version") != version:
        raise ValueError(f"{path} has {kind} format version {payload.get('version')}, this code reads {version}")
    return payload
