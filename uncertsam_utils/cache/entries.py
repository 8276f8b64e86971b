"""Cache entries that prove their bytes: each entry records the SHA-256 of its files, checked on read.

An entry is a folder (a notebook's evaluation CSVs) or a file (a posterior, a variance head, a fusion
module) under ``results_cache_dir()/<kind>/``. Once complete it gets a record, ``cache-entry.json``
inside a folder or ``<file>.entry.json`` beside a file: its kind, when it was made, the key it was
made from and ``{file: SHA-256}``. ``reuse_entry`` reads the record and hashes the files again
before anything is read: a changed, missing or extra file (one edited byte, a truncated CSV) and a
file without a record are said on the console, removed and computed again. A folder without a
record is an evaluation that did not finish: it is kept, and the driver resumes it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

FOLDER_RECORD = "cache-entry.json"
FILE_RECORD_SUFFIX = ".entry.json"
# kind: (folder under the results cache, entries are folders (True) or files (False), what they are)
KINDS = {
    "evaluations": ("evaluations", True, "per-mask CSVs of a notebook's evaluation"),
    "laplace": ("laplace", False, "fitted Laplace posteriors"),
    "varnet": ("varnet", False, "trained variance heads"),
    "fusion": ("fusion", False, "trained fusion modules"),
    "openq": ("openq", True, "notebook 09's arms (training record and test scores), references and correlations"),
}


def record_path(path) -> Path:
    path = Path(path)
    return path / FOLDER_RECORD if path.is_dir() else path.with_name(path.name + FILE_RECORD_SUFFIX)


def _sums(path: Path) -> dict[str, str]:
    from .fingerprints import file_sha256

    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != FOLDER_RECORD)
        return {p.relative_to(path).as_posix(): file_sha256(p) for p in files}
    return {path.name: file_sha256(path)}


def record_entry(path, kind: str, key: Mapping | None = None) -> Path:
    """Record the complete entry ``path`` (a folder or a file): its files' SHA-256 and ``key``."""
    path = Path(path)
    record = {"kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "key": dict(key or {}),
              "files": _sums(path)}
    target = record_path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, target)
    return target


def read_record(path) -> dict | None:
    try:
        record = json.loads(record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), dict) else None


def verify_entry(path) -> list[str]:
    """What is wrong with the entry ``path`` (empty: every file is as recorded)."""
    path = Path(path)
    if not path.exists():
        return [f"{path} does not exist"]
    record = read_record(path)
    if record is None:
        return [f"{record_path(path).name} is missing or unreadable (unfinished, or written by an older version)"]
    recorded, found = record["files"], _sums(path)
    problems = [f"{name}: SHA-256 {found[name][:12]}… differs from the recorded {sha[:12]}…"
                for name, sha in recorded.items() if name in found and found[name] != sha]
    problems += [f"{name}: recorded but missing" for name in recorded if name not in found]
    problems += [f"{name}: not in the record (added later)" for name in found if name not in recorded]
    return problems


def remove_entry(path) -> None:
    path = Path(path)
    record = record_path(path)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
        record.unlink(missing_ok=True)


def reuse_entry(path, log: Callable[[str], None] = print) -> bool:
    """True when the entry ``path`` exists and every file is as recorded. Otherwise False, and a
    broken entry is said and removed so that the caller computes it again; an unfinished folder
    (no record yet) is kept for the caller to resume."""
    path = Path(path)
    if not path.exists():
        return False
    if path.is_dir() and read_record(path) is None:
        return False
    problems = verify_entry(path)
    if not problems:
        return True
    log(f"cache entry {path.name} failed verification, recomputing it: " + "; ".join(problems[:5])
        + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""))
    remove_entry(path)
    return False


@dataclass
class Entry:
    kind: str
    path: Path
    bytes: int
    files: int
    recorded: bool
    created: str | None


def _size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return sum(p.stat().st_size for p in files), len(files)


def list_entries(root: Path, kinds: Iterable[str] | None = None) -> list[Entry]:
    """Every entry under the results cache ``root`` of the given kinds (default: all), recorded or not."""
    out = []
    for kind in kinds or KINDS:
        folder, is_dir, _ = KINDS[kind]
        base = Path(root) / folder
        if not base.is_dir():
            continue
        for path in sorted(base.iterdir()):
            if path.name.startswith(".") or path.is_dir() != is_dir or (not is_dir and path.suffix != ".pt"):
                continue  # temporaries, records, resume states
            record = read_record(path)
            size, count = _size(path)
            out.append(Entry(kind, path, size, count, record is not None, (record or {}).get("created")))
    return out


def clear_kinds(root: Path, kinds: Iterable[str] | None = None) -> tuple[int, int]:
    """Remove every entry of ``kinds`` (default: all) under the results cache ``root``, with their
    records, resume states and temporaries; returns (entries removed, bytes freed)."""
    removed = freed = 0
    for kind in kinds or KINDS:
        base = Path(root) / KINDS[kind][0]
        if not base.is_dir():
            continue
        removed += len(list_entries(root, [kind]))
        freed += _size(base)[0]
        shutil.rmtree(base)
    return removed, freed
