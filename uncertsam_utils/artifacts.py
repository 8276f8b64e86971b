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


def full_key(key: Mapping) -> dict:
    """``key`` (everything about a cached result that a caller chooses: parameters, seeds, model, data)
    plus what every cached result depends on: the mask decoder's numerics tag, the package's
    computing code (``cache.source_fingerprint``), the libraries' versions and the CPU's float
    arithmetic (``cpu_numerics``). A change to any of them gives a new key, so the result is
    computed again instead of read stale."""
    from .cache.fingerprints import library_versions, source_fingerprint
    from .model.mask_decoding import IMPLEMENTATION

    return {**key, "decoder": IMPLEMENTATION, "code": source_fingerprint(), "libraries": library_versions(),
            "cpu": cpu_numerics()}


def cpu_numerics() -> dict:
    """What changes the last bits of a CPU computation besides its inputs: torch's intra-op thread
    count (a convolution split over 1 or 2 threads sums in another order: the image encoder's
    features, hence a Laplace posterior, differ by ~1e-6 relative) and the vector instruction set
    torch dispatches to (AVX2, AVX512...)."""
    return {"torch_threads": torch.get_num_threads(), "capability": torch.backends.cpu.get_cpu_capability()}


def model_key(loaded_model) -> dict:
    """A model's part of a cache key: its identity (``model_identity``) and the device it runs on
    (the GPU's name on CUDA): the same weights give other bits on another device."""
    parameter = next(loaded_model.model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {**model_identity(loaded_model), "device": name}


def cache_digest(key: Mapping) -> str:
    """16 hex digits naming a cached result (evaluation CSVs, posterior, head, fusion module) by
    ``full_key(key)``."""
    text = json.dumps(full_key(key), sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def fit_data_key(data_root) -> dict:
    """The fit data's part of a cache key: the content of ``fit/train`` and ``fit/val`` (every
    annotation and image file's SHA-256, remembered by size and modification time) and
    UncertSAM-mini's marker when there is one (``cache.data_fingerprint``)."""
    from .cache.fingerprints import data_fingerprint

    root = Path(data_root)
    # only the parts that are there: without fit/train nothing can be fitted, so nothing is found
    # under such a key either (the lookup says "missing", the fit names the folder)
    return data_fingerprint(root, [p for p in ("fit/train", "fit/val") if (root / p).is_dir()])


def model_identity(loaded_model) -> dict:
    """What a trained part (variance head, fusion module) records about its model:
    ``LoadedModel.identity()`` (name, config, weights' SHA-256, and the init seed of random weights)."""
    return dict(loaded_model.identity())


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
