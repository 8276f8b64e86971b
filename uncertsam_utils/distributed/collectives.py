"""What the ranks of a group exchange: a barrier, sums, broadcasts, and steps done by rank 0 alone.

Each function is the identity in a single process. Sums are taken in float64 and broadcast from
rank 0 afterwards, so that every rank holds the same bits whatever order the backend reduced in.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, TypeVar

from .context import ranks

T = TypeVar("T")


def _comm_device():
    """Where collectives run: nccl takes CUDA tensors only, gloo CPU tensors."""
    import torch
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    if ranks().distributed:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(tensor):
    """The sum of ``tensor`` over the ranks (a new tensor, same dtype and device; floats summed in float64)."""
    if not ranks().distributed:
        return tensor
    import torch
    import torch.distributed as dist

    dtype = torch.float64 if tensor.is_floating_point() else tensor.dtype
    work = tensor.detach().to(_comm_device(), dtype).contiguous()
    dist.all_reduce(work)
    dist.broadcast(work, 0)
    return work.to(tensor.device, tensor.dtype)


def broadcast_object(value: T, src: int = 0) -> T:
    """Rank ``src``'s ``value`` (any picklable object) on every rank."""
    if not ranks().distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=src, device=_comm_device())
    return box[0]


def all_gather_objects(value: Any) -> list:
    """Every rank's ``value``, in rank order."""
    where = ranks()
    if not where.distributed:
        return [value]
    import torch.distributed as dist

    out: list = [None] * where.world_size
    dist.all_gather_object(out, value)
    return out


def _portable(err: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # an exception that does not pickle still reaches the other ranks as text
        return RuntimeError(f"{type(err).__name__} on rank 0: {err}")


def on_main(step: Callable[..., T], *args, **kwargs) -> T:
    """Run ``step`` on rank 0 alone (e.g. checking or writing a shared file); every rank returns its
    result, or raises its exception, once it is done. The other ranks wait for it."""
    where = ranks()
    if not where.distributed:
        return step(*args, **kwargs)
    outcome: tuple[bool, Any] | None = None
    error: BaseException | None = None
    if where.main:
        try:
            outcome = (True, step(*args, **kwargs))
        except BaseException as err:  # re-raised on every rank below
            error = err
            outcome = (False, _portable(err))
    ok, value = broadcast_object(outcome)
    if ok:
        return value
    if error is not None:
        raise error
    raise value
