"""Starting a group from Python: ``torchrun`` as a subprocess, for a notebook's evaluation."""

from __future__ import annotations

import sys


def torchrun_command(nproc: int, arguments: list[str]) -> list[str]:
    """``torchrun --standalone --nproc-per-node N`` running ``uncertsam ARGUMENTS`` with this Python
    (``python -m torch.distributed.run`` is torchrun; no PATH lookup, the same environment)."""
    if int(nproc) < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(nproc)}",
            "-m", "uncertsam_utils.cli", *arguments]
