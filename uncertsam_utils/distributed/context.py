"""Joining the process group that ``torchrun`` describes in the environment, and each rank's share.

torchrun starts N copies of a command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT`` set (multi-node: the same on every node, through its rendezvous options).
``init(device)`` joins that group: ``gloo`` when the device is the CPU, ``nccl`` on CUDA, where
each rank takes the GPU ``cuda:LOCAL_RANK``. Without torchrun (or with one process) it joins
nothing and ``ranks()`` is rank 0 of 1.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")

# Rank 0 waits at the final barrier of an evaluation while the others finish their images; a
# resumed run can leave the ranks' shares unequal, so the group waits for hours, not minutes.
# A rank that dies does not leave the others waiting: torchrun then stops the whole group.
TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes what the group produces."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched() -> bool:
    """torchrun (or a launcher with its environment variables) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def ranks() -> Ranks:
    if not _initialized():
        return Ranks()
    import torch.distributed as dist

    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def backend_for(device: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for everything else (the CPU)."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def rank_device(device: str, local_rank: int, world_size: int) -> str:
    """The device of one rank: ``cuda`` becomes ``cuda:LOCAL_RANK``; the CPU stays the CPU. A fixed
    ``cuda:K`` in a group of several processes would put every rank on one GPU: an error."""
    device = str(device)
    if device == "cuda":
        return f"cuda:{int(local_rank)}"
    if device.startswith("cuda:") and world_size > 1:
        raise ValueError(f"device {device!r} under torchrun would put every rank on the same GPU: pass 'cuda' "
                         "(each rank then takes cuda:LOCAL_RANK)")
    return device


def check_device(device: str) -> str:
    """The device ``init`` would give this process (a ValueError for a fixed GPU under torchrun)."""
    return rank_device(device, int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def init(device: str = "cpu") -> tuple[Ranks, str]:
    """Join torchrun's group if this process is one of several; returns the ranks and the device this
    rank computes on. Idempotent; a single process joins nothing and keeps ``device``."""
    if not launched():
        return Ranks(), device
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    mine = rank_device(device, local_rank, world_size)
    if not _initialized():
        import torch
        import torch.distributed as dist

        if backend_for(mine) == "nccl":  # bound to its GPU, so that barriers and object collectives use it
            torch.cuda.set_device(mine)
            dist.init_process_group("nccl", timeout=TIMEOUT, device_id=torch.device(mine))
        else:
            dist.init_process_group("gloo", timeout=TIMEOUT)
    return ranks(), mine


@contextmanager
def session(device: str = "cpu") -> Iterator[tuple[Ranks, str]]:
    """``init(device)`` for the length of a command: the group is left at the end if this call joined
    it (a caller that joined it before, e.g. a script running several commands, keeps it)."""
    joined = launched() and not _initialized()
    where, mine = init(device)
    try:
        yield where, mine
    finally:
        if joined:
            shutdown()


def shutdown() -> None:
    """Leave the group (at the end of a command), so that the processes exit cleanly."""
    if _initialized():
        import torch.distributed as dist

        dist.destroy_process_group()


def shard(items: Sequence[T], where: Ranks | None = None) -> list[T]:
    """This rank's items: item i goes to rank i mod N (no padding, no duplicates; rank 0 of 1: all)."""
    where = ranks() if where is None else where
    return list(items)[where.rank :: where.world_size]
