"""Several processes (uncertsam_utils.distributed): the group, the shards, the collectives in a real
two-process gloo group, and the CUDA branches with fakes (no GPU on the test machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from uncertsam_utils import distributed
from uncertsam_utils.distributed import Ranks


def test_shard_is_round_robin_without_padding_or_duplicates():
    items = list(range(11))
    for world in (1, 2, 3, 4, 11, 13):
        shares = [distributed.shard(items, Ranks(r, world)) for r in range(world)]
        assert sorted(i for share in shares for i in share) == items
        assert all(share == items[r::world] for r, share in enumerate(shares))
    assert distributed.shard(items) == items  # outside a group: everything


def test_devices_and_backends():
    assert distributed.backend_for("cpu") == "gloo" and distributed.backend_for("cuda:3") == "nccl"
    assert distributed.rank_device("cuda", 3, 4) == "cuda:3"
    assert distributed.rank_device("cpu", 3, 4) == "cpu"
    assert distributed.rank_device("cuda:1", 0, 1) == "cuda:1"  # one process may name its GPU
    with pytest.raises(ValueError, match="same GPU"):
        distributed.rank_device("cuda:0", 1, 2)


def test_outside_torchrun_nothing_is_joined(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init("cuda") == (Ranks(), "cuda")
    assert distributed.ranks() == Ranks() and distributed.ranks().main
    assert distributed.on_main(lambda x: x + 1, 1) == 2
    assert distributed.broadcast_object({"a": 1}) == {"a": 1} and distributed.all_gather_objects(3) == [3]
    value = torch.ones(3)
    assert distributed.all_reduce_sum(value) is value


def test_cuda_rank_joins_nccl_on_its_local_gpu(monkeypatch):
    """The CUDA branch, with fakes: rank 1 of 2 takes cuda:1 and joins the group with nccl."""
    import torch.distributed as dist

    calls = {}
    state = {"initialized": False}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.setdefault("set_device", device))

    def fake_init(backend, timeout=None, device_id=None):
        calls["backend"] = backend
        calls["device_id"] = device_id
        state["initialized"] = True

    monkeypatch.setattr(dist, "init_process_group", fake_init)
    monkeypatch.setattr(dist, "is_initialized", lambda: state["initialized"])
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    where, device = distributed.init("cuda")
    assert (where, device) == (Ranks(1, 2, 1), "cuda:1")
    assert calls == {"set_device": "cuda:1", "backend": "nccl", "device_id": torch.device("cuda", 1)}
    assert not where.main and where.distributed
    monkeypatch.setattr(dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    from uncertsam_utils.distributed.collectives import _comm_device

    assert _comm_device() == torch.device("cuda", 1)  # nccl collectives go through this rank's GPU


COLLECTIVES = """
import json, sys, torch
from uncertsam_utils import distributed
where, device = distributed.init("cpu")
out = {"ranks": [where.rank, where.world_size, where.local_rank], "device": device}
out["sum"] = distributed.all_reduce_sum(torch.tensor([1.5, 2.0]) * (where.rank + 1)).tolist()
out["int_sum"] = distributed.all_reduce_sum(torch.tensor([where.rank + 1])).tolist()
out["broadcast"] = distributed.broadcast_object({"from": where.rank})
out["gathered"] = distributed.all_gather_objects(where.rank * 10)
out["on_main"] = distributed.on_main(lambda: distributed.ranks().rank + 100)
def fails():
    raise KeyError("only rank 0 ran this")
try:
    distributed.on_main(fails)
except KeyError as err:
    out["error"] = [type(err).__name__, str(err)]
distributed.barrier()
distributed.shutdown()
open(sys.argv[1] + f".{where.rank}", "w").write(json.dumps(out))
"""


def torchrun(nproc: int, *arguments: str, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_collectives_in_a_two_process_gloo_group(tmp_path):
    script = tmp_path / "collectives.py"
    script.write_text(textwrap.dedent(COLLECTIVES))
    torchrun(2, str(script), str(tmp_path / "out"))
    results = [json.loads((tmp_path / f"out.{rank}").read_text()) for rank in (0, 1)]
    for rank, out in enumerate(results):
        assert out["ranks"] == [rank, 2, rank] and out["device"] == "cpu"
        assert out["sum"] == [4.5, 6.0] and out["int_sum"] == [3]
        assert out["broadcast"] == {"from": 0} and out["gathered"] == [0, 10]
        assert out["on_main"] == 100  # rank 0's result on every rank
        assert out["error"] == ["KeyError", "'only rank 0 ran this'"]  # rank 0's exception on every rank
