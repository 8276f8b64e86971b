"""Several processes on PyTorch's own engine: ``torch.distributed``, launched by ``torchrun``.

The evaluation (``uncertsam eval``) and the Laplace fit (``uncertsam fit laplace``) run unchanged in
one process, or in N processes started by torchrun (one per GPU, or CPU workers)::

    torchrun --standalone --nproc-per-node 4 --no-python uncertsam eval --device cuda ...
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        --no-python uncertsam eval --device cuda ...

* ``context.py``: joining the group torchrun describes in the environment (``gloo`` on CPU,
  ``nccl`` on CUDA, the device ``cuda:LOCAL_RANK``), the ranks, the shard of each rank;
* ``collectives.py``: barrier, sums, broadcasts and ``on_main`` (rank 0 does a step, every rank
  gets its result or its exception);
* ``launch.py``: starting such a group from Python (``torchrun`` as a subprocess), for the
  notebooks' evaluations.

Outside a launched group every function is the single-process identity (rank 0 of 1), so callers
need no branches.
"""

from __future__ import annotations

from .collectives import all_gather_objects, all_reduce_sum, barrier, broadcast_object, on_main
from .context import Ranks, backend_for, check_device, init, launched, rank_device, ranks, session, shard, shutdown
from .launch import torchrun_command

__all__ = ["Ranks", "all_gather_objects", "all_reduce_sum", "backend_for", "barrier", "broadcast_object", "check_device", "init",
           "launched", "on_main", "rank_device", "ranks", "session", "shard", "shutdown", "torchrun_command"]
