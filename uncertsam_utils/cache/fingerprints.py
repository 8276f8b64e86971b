"""What a cached result depends on besides its parameters: the code, the libraries and the data's bytes.

* ``source_fingerprint()``: SHA-256 over the package's ``.py`` and ``.yaml`` files (path and bytes),
  except the modules that only read cached results (``NOT_COMPUTING``: the command line, tables,
  figures, the run log). Any change to a metric, a method, the reader or the model code changes it.
* ``library_versions()``: the installed versions of the libraries whose numerics the results carry.
* ``folder_fingerprint(folder)``: SHA-256 over every file under a folder (relative path and the
  file's own SHA-256). Each file is read once: its sum is remembered by (name, size, modification
  time) in ``<cache>/fingerprints/``, one memo per folder, so a later run only lists and stats the
  files (UncertSAM-mini, 184 MB in 2,932 files: 0.85 s to hash, 0.12 s to stat).
* ``data_fingerprint(root, parts)``: the folders ``root/part`` (``BIG/test``, ``fit/train``...),
  each by ``folder_fingerprint``, plus UncertSAM-mini's marker when the root has one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Iterable

# Package paths (relative to uncertsam_utils/, prefixes) that never compute a cached number: they
# read the cached CSVs and fitted files, draw, write tables, parse command lines or time things.
NOT_COMPUTING = ("cli/", "analysis", "plots", "scorecard/", "reproduce.py", "checked_outputs.py", "book/", "explore/",
                 "bench.py", "_moved.py")
# Libraries whose numerics are in the cached results (the image decoder included).
LIBRARIES = ("torch", "torchvision", "sam2", "laplace-torch", "numpy", "scipy", "pillow", "pycocotools")
MEMO_FOLDER = "fingerprints"


def _package_dir() -> Path:
    from ..paths import PACKAGE_DIR

    return PACKAGE_DIR


def source_files(package_dir: Path | None = None) -> list[Path]:
    """The package files whose code can change a cached number, sorted."""
    package_dir = Path(package_dir or _package_dir())
    files = [p for p in package_dir.rglob("*") if p.suffix in (".py", ".yaml") and p.is_file()
             and "__pycache__" not in p.parts]
    keep = [p for p in files if not p.relative_to(package_dir).as_posix().startswith(NOT_COMPUTING)]
    return sorted(keep, key=lambda p: p.relative_to(package_dir).as_posix())


@functools.lru_cache(maxsize=4)
def _source_fingerprint(package_dir: Path, stamps: tuple) -> str:
    digest = hashlib.sha256()
    for path in source_files(package_dir):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def source_fingerprint(package_dir: Path | None = None) -> str:
    """SHA-256 of the package's computing code (see ``NOT_COMPUTING``); recomputed when any file's
    size or modification time changed since the last call of this process."""
    package_dir = Path(package_dir or _package_dir())
    stamps = tuple((p.as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in source_files(package_dir))
    return _source_fingerprint(package_dir, stamps)


def library_versions() -> dict[str, str | None]:
    """``{distribution: version}`` of ``LIBRARIES`` (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes, read in chunks (the one implementation: checkpoints, cache entries, data)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def memo_path(folder: Path) -> Path:
    """Where the file sums of ``folder`` are remembered (named by a hash of its resolved path)."""
    from ..paths import cache_dir

    name = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:24]
    return cache_dir() / MEMO_FOLDER / f"{name}.json"


def _read_memo(path: Path, folder: Path) -> dict:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):  # missing or unreadable: only a memo, every sum can be computed again
        return {}
    if not isinstance(memo, dict) or memo.get("folder") != str(folder) or not isinstance(memo.get("files"), dict):
        return {}
    return memo["files"]


def _write_memo(path: Path, folder: Path, files: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # a private temporary file renamed into place: a concurrent reader never sees half a memo
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as out:
        json.dump({"folder": str(folder), "files": files}, out, sort_keys=True, separators=(",", ":"))
    os.replace(out.name, path)


def file_sums(folder) -> dict[str, str]:
    """``{relative path: SHA-256}`` of every file under ``folder`` (sorted). Sums of files whose size
    and modification time are those remembered are not computed again."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot fingerprint {folder}: not a folder")
    memo_file = memo_path(folder)
    memo = _read_memo(memo_file, folder)
    files, changed = {}, False
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(folder).as_posix()
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        known = memo.get(name)
        if isinstance(known, list) and known[:2] == stamp:
            files[name] = known
            continue
        digest = file_sha256(path)
        after = path.stat()
        if [after.st_size, after.st_mtime_ns] != stamp:
            raise RuntimeError(f"{path} changed while it was read; fingerprint the data when nothing writes to it")
        files[name] = stamp + [digest]
        changed = True
    if changed or set(files) != set(memo):
        _write_memo(memo_file, folder, files)
    return {name: entry[2] for name, entry in files.items()}


def folder_fingerprint(folder) -> str:
    """SHA-256 over the relative paths and SHA-256 sums of every file under ``folder``."""
    digest = hashlib.sha256()
    for name, sha in file_sums(folder).items():
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()


def data_fingerprint(root, parts: Iterable[str]) -> dict:
    """``{"marker": UncertSAM-mini's marker or None, "content": {part: folder_fingerprint(root/part)}}``.
    A part that is not there is an error naming it (a cache key must not describe missing data)."""
    from ..data.mini import read_marker

    root = Path(root)
    content = {}
    for part in parts:
        folder = root / part
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist: nothing to fingerprint")
        content[part] = folder_fingerprint(folder)
    return {"marker": read_marker(root), "content": content}
