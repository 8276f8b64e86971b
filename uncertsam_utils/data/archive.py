"""Safe extraction of one benchmark tarball (``<split>.tar.gz`` holding ``<split>/images/...`` and
``<split>/annotations/dataset.json``).

Two independent layers, because a tarball from the network is untrusted input:

1. Our own check of every member before it is written: no absolute paths or drive letters, no ``..``,
   everything under the one top-level folder ``<split>/``, only regular files and directories, and
   links only when their target stays inside ``<split>/``. Devices, FIFOs and anything else are refused.
2. The standard library's ``data`` extraction filter (Python >= 3.11.4 / 3.12), which additionally
   strips permission bits such as setuid and re-checks paths and links.

Members are extracted into a hidden staging folder next to the destination and moved into place only
when the whole archive passed, so a refused archive leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from uncertsam_utils.data.errors import DataError

_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
_FILTER_ERRORS = getattr(tarfile, "FilterError", ())


def member_path(member: tarfile.TarInfo, top: str) -> PurePosixPath:
    """The member's normalised path, or DataError if it may not be extracted under ``top/``."""
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"absolute path {name!r}")
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"path with '..' {name!r}")
    if not parts or parts[0] != top:
        raise DataError(f"member {name!r} outside the top-level folder {top + '/'!r}")
    if member.isdir() or member.isreg():
        return PurePosixPath(*parts)
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
            raise DataError(f"link {name!r} points to the absolute path {member.linkname!r}")
        # Symlink targets are relative to the link's folder, hard-link targets to the archive root.
        base = list(parts[:-1]) if member.issym() else []
        resolved: list[str] = []
        for part in base + [p for p in target.split("/") if p not in ("", ".")]:
            if part == "..":
                if not resolved:
                    raise DataError(f"link {name!r} points outside the archive ({member.linkname!r})")
                resolved.pop()
            else:
                resolved.append(part)
        if not resolved or resolved[0] != top or len(resolved) == 1:
            raise DataError(f"link {name!r} points outside {top + '/'!r} ({member.linkname!r})")
        return PurePosixPath(*parts)
    kind = ("device" if member.isdev() and not member.isfifo() else
            "FIFO" if member.isfifo() else f"type {member.type!r}")
    raise DataError(f"{kind} member {name!r} (only files, folders and internal links are allowed)")


def extract_split(archive: Path, dest_dir: Path, split: str) -> Path:
    """Extract ``archive`` (a ``<split>/...`` tarball) into ``dest_dir/<split>``; returns that folder.

    DataError (naming the archive) for an unsafe or corrupt archive, or one without ``<split>/``; an
    existing ``dest_dir/<split>`` is never overwritten.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    target = dest_dir / split
    if target.exists():
        raise DataError(f"{target} already exists; not extracting {archive} over it")
    staging = dest_dir / f".extract-{split}"
    if staging.exists():
        shutil.rmtree(staging)          # our own leftover from an interrupted extraction
    staging.mkdir(parents=True)
    try:
        _extract_checked(archive, staging, split)
        if not (staging / split).is_dir():
            raise DataError(f"{archive}: contains no {split}/ folder")
        (staging / split).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_checked(archive: Path, staging: Path, split: str) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            # Stream: each member is checked and written in turn (one pass over the gzip stream);
            # on any refusal the caller deletes the staging folder.
            for member in tqdm(tar, desc=f"extract {archive.name}", unit="file", disable=None, leave=False):
                try:
                    member_path(member, split)
                except DataError as err:
                    raise DataError(f"{archive}: unsafe archive, {err}") from None
                if _HAS_DATA_FILTER:
                    tar.extract(member, staging, filter="data")
                else:  # older Pythons: our check above is the only guard
                    tar.extract(member, staging)
    except _FILTER_ERRORS as err:
        raise DataError(f"{archive}: unsafe archive, refused by tarfile's data filter ({err})") from err
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive}: extraction failed; the file may be incomplete or corrupt, or the disk "
                        f"full ({err})") from err
