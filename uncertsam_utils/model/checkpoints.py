"""The table of known SAM-2 checkpoints, and downloading them with verification.

Official files are Meta's SAM 2.0 (release 072824) and SAM 2.1 (release 092824) checkpoints.
Their SHA-256 sums are the Git-LFS object ids that Hugging Face shows for the same file names:
on Meta's own ``facebook/sam2*-hiera-*`` repositories where marked ``"hf:facebook"``, otherwise on
mirrors that agree with each other (``"hf:mirrors"``). A download whose hash differs is rejected,
and so is loading a file under an official name whose hash differs (``registry.load_model``).
Hashing a 900 MB file takes seconds, so ``cached_sha256`` remembers each file's sum in the cache
folder by its path, size and modification time: an unchanged file is read once.

The nano model is this project's own (see ``uncertsam train nano``) and ships inside the package.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..cache.fingerprints import file_sha256 as sha256_of
from ..paths import PACKAGE_DIR, cache_dir

URL_SAM2_0 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
URL_SAM2_1 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
NANO_CONFIG = PACKAGE_DIR / "model" / "configs" / "nano_sam2_256.yaml"
NANO_WEIGHTS = PACKAGE_DIR / "model" / "weights" / "nano_sam2_256.pt"


@dataclass(frozen=True)
class CheckpointInfo:
    name: str  # registry name, also the file stem
    family: str  # "2.0", "2.1" or "nano"
    size: str  # tiny | small | base_plus | large | nano
    config: str  # config name inside the sam2 package, or an absolute path to a YAML file
    filename: str
    url: str | None  # None: not downloadable (shipped with the package)
    sha256: str | None
    num_bytes: int | None
    hash_source: str

    @property
    def is_official(self) -> bool:
        return self.family in ("2.0", "2.1")


def _official(family: str, size: str, short: str, sha256: str, num_bytes: int | None, source: str) -> CheckpointInfo:
    stem = "sam2" if family == "2.0" else "sam2.1"
    folder = "sam2" if family == "2.0" else "sam2.1"
    name = f"{stem}_hiera_{size}"
    return CheckpointInfo(
        name=name,
        family=family,
        size=size,
        config=f"configs/{folder}/{stem}_hiera_{short}.yaml",
        filename=f"{name}.pt",
        url=(URL_SAM2_0 if family == "2.0" else URL_SAM2_1) + f"{name}.pt",
        sha256=sha256,
        num_bytes=num_bytes,
        hash_source=source,
    )


_TABLE = [
    _official("2.0", "tiny", "t", "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125", 155906050, "hf:facebook"),
    _official("2.0", "small", "s", "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3", None, "hf:facebook"),
    _official("2.0", "base_plus", "b+", "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071", 323493298, "hf:facebook"),
    _official("2.0", "large", "l", "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b", 897952466, "hf:mirrors"),
    _official("2.1", "tiny", "t", "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69", 156008466, "hf:facebook"),
    _official("2.1", "small", "s", "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38", 184416285, "hf:facebook"),
    _official("2.1", "base_plus", "b+", "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5", 323606802, "hf:mirrors"),
    _official("2.1", "large", "l", "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318", 898083611, "hf:mirrors"),
    CheckpointInfo(
        name="nano_sam2_256",
        family="nano",
        size="nano",
        config=str(NANO_CONFIG),
        filename=NANO_WEIGHTS.name,
        url=None,
        sha256=None,  # recorded next to the weights (weights/nano_sam2_256.json), checked on load
        num_bytes=None,
        hash_source="this project",
    ),
]
CHECKPOINTS: dict[str, CheckpointInfo] = {info.name: info for info in _TABLE}
ALIASES = {"nano": "nano_sam2_256", "tiny": "sam2.1_hiera_tiny", "large": "sam2_hiera_large"}


def resolve_name(name: str) -> CheckpointInfo:
    key = ALIASES.get(name, name)
    if key.endswith(".pt"):
        key = key[:-3]
    if key not in CHECKPOINTS:
        known = ", ".join(sorted(CHECKPOINTS) + sorted(ALIASES))
        raise KeyError(f"unknown model {name!r}; known names: {known}")
    return CHECKPOINTS[key]


def checkpoint_dir() -> Path:
    """Where official checkpoints are looked for and downloaded to (``UNCERTSAM_CHECKPOINTS``)."""
    env = os.environ.get("UNCERTSAM_CHECKPOINTS")
    return Path(env).expanduser().resolve() if env else cache_dir() / "checkpoints"




HASHES_FILE = "checkpoint-sha256.json"  # in cache_dir(): {resolved path: {size, mtime_ns, sha256}}


def cached_sha256(path: Path, *, refresh: bool = False) -> str:
    """``sha256_of(path)``, remembered in ``cache_dir()/checkpoint-sha256.json`` by the file's resolved
    path, size and modification time (ns): a file unchanged since is not read again. ``refresh``
    reads it anyway (``uncertsam checkpoints verify``)."""
    path = Path(path)
    key, stamp = str(path.resolve()), _stamp(path)
    entry = _read_hashes().get(key)
    if not refresh and isinstance(entry, dict) and (entry.get("size"), entry.get("mtime_ns")) == stamp:
        return str(entry["sha256"])
    digest = sha256_of(path)
    if _stamp(path) == stamp:  # not rewritten while it was read
        remember_sha256(path, digest, stamp)
    return digest


def remember_sha256(path: Path, digest: str, stamp: tuple[int, int] | None = None) -> None:
    """Record ``digest`` as the SHA-256 of ``path`` as it is now (or as it was at ``stamp``)."""
    size, mtime_ns = stamp or _stamp(Path(path))
    hashes = _read_hashes()
    hashes[str(Path(path).resolve())] = {"size": size, "mtime_ns": mtime_ns, "sha256": digest}
    target = cache_dir() / HASHES_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    # a private temporary file renamed into place: concurrent loads (torchrun ranks) never see half a file
    with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{HASHES_FILE}.", delete=False) as out:
        json.dump(hashes, out, sort_keys=True, indent=1)
    os.replace(out.name, target)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _read_hashes() -> dict:
    path = cache_dir() / HASHES_FILE
    if not path.is_file():
        return {}
    try:
        hashes = json.loads(path.read_text())
        if not isinstance(hashes, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError) as err:  # only a memo: every sum in it can be computed again
        warnings.warn(f"{path} is unreadable ({err}); checkpoints are hashed again and the file rewritten")
        return {}
    return hashes


class DownloadError(RuntimeError):
    pass


def manual_placement_hint(info: CheckpointInfo, target: Path) -> str:
    return (
        f"Download {info.url} on a machine with internet access and place it at {target} "
        f"(expected SHA-256 {info.sha256}); or pass --checkpoint PATH to any command."
    )


def download_checkpoint(
    name: str,
    directory: Path | None = None,
    *,
    base_url: str | None = None,
    timeout: float = 10.0,
    progress: bool = True,
) -> Path:
    """Download an official checkpoint into ``directory``, resuming a partial ``.part`` file,
    and verify its SHA-256. Offline, fails within ``timeout`` seconds with placement advice."""
    info = resolve_name(name)
    if info.url is None:
        raise DownloadError(f"{info.name} is not downloadable: it ships with the package at {NANO_WEIGHTS}")
    directory = Path(directory) if directory is not None else checkpoint_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / info.filename
    if target.is_file() and cached_sha256(target) == info.sha256:
        return target
    url = (base_url.rstrip("/") + "/" + info.filename) if base_url else info.url
    partial = target.with_name(target.name + ".part")
    offset = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, socket.timeout, OSError) as err:
        raise DownloadError(f"cannot reach {url}: {getattr(err, 'reason', err)}. " + manual_placement_hint(info, target)) from err
    from tqdm.auto import tqdm

    with response:
        resumed = response.status == 206
        mode = "ab" if resumed else "wb"
        total = response.length + (offset if resumed else 0) if response.length else info.num_bytes
        with open(partial, mode) as out, tqdm(
            total=total, initial=offset if resumed else 0, unit="B", unit_scale=True, desc=info.filename, disable=not progress
        ) as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))
    digest = sha256_of(partial)
    if digest != info.sha256:
        partial.unlink()
        raise DownloadError(f"{url}: SHA-256 {digest} does not match the expected {info.sha256}; the file was removed.")
    partial.replace(target)
    remember_sha256(target, digest)  # verified: its first load need not read it again
    return target
