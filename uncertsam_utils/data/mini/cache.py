"""UncertSAM-mini in the cache: generated once, found again by its marker, shared between processes."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from uncertsam_utils.data.mini.domains import DOMAINS, DomainSpec
from uncertsam_utils.data.mini.generate import (DOMAIN_SIZES, FIT_SIZES, MARKER_NAME, MINI_VERSION, SMALL_DOMAIN_SIZES,
                                                SMALL_FIT_SIZES, benchmark_marker, generate_mini)


def read_marker(root: Path) -> dict | None:
    """The marker of a complete benchmark under ``root``, or None."""
    try:
        return json.loads((Path(root) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def default_root(seed: int = 0) -> Path:
    from uncertsam_utils.paths import cache_dir

    return cache_dir() / f"UncertSAM-mini-v{MINI_VERSION}-seed{seed}"


def ensure_mini(root: Path | None = None, seed: int = 0, *, fit_sizes: Sequence[int] = FIT_SIZES,
                domain_sizes: Sequence[int] = DOMAIN_SIZES, progress: bool = True,
                workers: int | None = None, domains: dict[str, DomainSpec] | None = None) -> Path:
    """The benchmark under ``root`` (default: the cache), generating it first if it is not complete.

    Complete means: the marker is there and matches version, seed, sizes and knobs (so tuned
    ``domains`` regenerate). Generation goes to a temporary sibling folder that is renamed into
    place, so an interrupted run never leaves a half-written benchmark that looks complete.
    """
    root = Path(root) if root is not None else default_root(seed)
    domains = dict(DOMAINS if domains is None else domains)
    wanted = benchmark_marker(seed, fit_sizes, domain_sizes, domains)
    if read_marker(root) == wanted:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with _generation_lock(root.parent / f".{root.name}.lock"):
        if read_marker(root) == wanted:  # another process generated it while we waited
            return root
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            generate_mini(tmp, seed, fit_sizes=fit_sizes, domain_sizes=domain_sizes, progress=progress,
                          workers=workers, domains=domains)
            if root.exists():  # stale or incomplete: replace it
                shutil.rmtree(root)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


@contextmanager
def _generation_lock(path: Path):
    """An exclusive lock across processes: on a shared machine a second caller waits for the first
    generation instead of running its own. Without ``fcntl`` (Windows) there is no lock; the
    temporary-folder rename still keeps the result consistent."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_mini(out: Path | None = None, seed: int = 0, *, small: bool = False, workers: int | None = None) -> Path:
    """What ``uncertsam data mini`` does: with ``out``, generate the benchmark there (always anew);
    without, the cache folder of ``seed`` (``-small`` appended for the smoke-test sizes), generated
    only when it is not complete."""
    fit_sizes = SMALL_FIT_SIZES if small else FIT_SIZES
    domain_sizes = SMALL_DOMAIN_SIZES if small else DOMAIN_SIZES
    if out is None:
        root = default_root(seed)
        root = root.with_name(root.name + "-small") if small else root
        return ensure_mini(root, seed, fit_sizes=fit_sizes, domain_sizes=domain_sizes, workers=workers)
    return generate_mini(out, seed, fit_sizes=fit_sizes, domain_sizes=domain_sizes, workers=workers)
