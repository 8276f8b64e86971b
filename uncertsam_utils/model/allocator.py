"""Keep freed CPU memory for reuse (glibc only).

glibc serves every allocation over 32 MB with fresh ``mmap`` pages and unmaps them on free, so
each decoder call on a batch of prompts at 1024 px (activations of 10 × 4096 × 256 floats, 42 MB)
pays the kernel for zeroing new pages. Measured on the 2-core development machine with hiera-tiny:
decoding 10 boxes took 1.17 s with glibc's defaults and 0.61 s with this setting, against 0.08 s
for one box. Peak memory is unchanged; the process simply keeps its peak heap instead of returning
it to the system between calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Turn off mmap for large blocks and heap trimming; idempotent. Returns whether it applied
    (False on non-glibc systems, where the allocator's defaults are left alone)."""
    global _applied
    if _applied is None:
        _applied = False
        name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
        if name:
            libc = ctypes.CDLL(name)
            mallopt = getattr(libc, "mallopt", None)
            if mallopt is not None:
                _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
