"""A notebook's evaluation in several processes: saved as a job file, run by ``torchrun``.

``evaluate_cached`` (cache.py) with ``nproc`` > 1 writes everything the evaluation needs into
``<out>/.job.pt`` (the method instances themselves, with their fitted parts, and what rebuilds the
model) and starts ``torchrun --standalone --nproc-per-node N ... uncertsam eval-job FILE``; each
rank rebuilds the model on its device (``cuda:LOCAL_RANK``, or the CPU), loads the methods there
and runs its share of ``evaluate_datasets`` with the notebook's torch thread count. The CSVs are those of a single process, byte for byte
(driver.py); the notebook then reads them as usual. One machine only (``--standalone``): several
nodes run ``uncertsam eval`` under torchrun directly.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from .. import distributed

JOB_FILE = ".job.pt"
NPROC_VARIABLE = "UNCERTSAM_EVAL_NPROC"  # set by `uncertsam reproduce --eval-nproc N` for the notebooks


def default_nproc() -> int:
    """Processes for a notebook's evaluation: ``$UNCERTSAM_EVAL_NPROC``, else 1."""
    text = os.environ.get(NPROC_VARIABLE, "").strip()
    try:
        value = int(text) if text else 1
    except ValueError:
        raise ValueError(f"{NPROC_VARIABLE}={text!r} is not a number of processes") from None
    if value < 1:
        raise ValueError(f"{NPROC_VARIABLE}={value}: at least 1 process")
    return value


def _device_of(model) -> str:
    return str(next(model.parameters()).device)


def save_job(path: Path, loaded_model, methods: Mapping, data_root, datasets: Sequence[str], out_dir, *,
             split: str, seed: int, max_images: int | None, identity: Mapping, threads: int) -> Path:
    """Write the job file: the methods (on the CPU) and what rebuilds the model and the run."""
    import torch

    device = _device_of(loaded_model.model)
    job = {
        "model": {"name": loaded_model.info.name, "seed": loaded_model.seed,
                  "checkpoint": None if loaded_model.checkpoint is None else str(loaded_model.checkpoint),
                  "identity": loaded_model.identity()},
        "device": "cuda" if device.startswith("cuda") else device,
        "methods": dict(methods), "data_root": str(data_root), "datasets": list(datasets), "out_dir": str(out_dir),
        "split": split, "seed": int(seed), "max_images": max_images, "identity": dict(identity),
        "threads": int(threads),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(job, tmp)
    except Exception as err:  # a method holding something that cannot be pickled
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"the methods cannot be sent to other processes ({type(err).__name__}: {err}); "
                           f"evaluate in one process ({NPROC_VARIABLE}=1)") from err
    os.replace(tmp, path)
    return path


def run_job(path, *, progress: bool = True) -> dict:
    """One rank's part of a saved job (the handler of ``uncertsam eval-job``)."""
    import torch

    from ..model import Predictor, load_model
    from ..model.registry import RANDOM
    from .driver import evaluate_datasets

    # a GPU tensor of the notebook goes to this rank's GPU (the device init() gives it, known from the env)
    job = torch.load(path, map_location=_mapper(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"), weights_only=False)
    with distributed.session(job["device"]) as (where, device):
        torch.set_num_threads(max(1, job["threads"]))
        spec = job["model"]
        loaded = load_model(spec["name"], spec["checkpoint"] or RANDOM, device=device, seed=spec["seed"] or 0)
        if loaded.identity() != spec["identity"]:
            raise ValueError(f"{path}: the model rebuilt here ({loaded.identity()}) is not the job's "
                             f"({spec['identity']})")
        return evaluate_datasets(Predictor(loaded.model), job["methods"], job["data_root"], job["datasets"],
                                 job["out_dir"], split=job["split"], seed=job["seed"], max_images=job["max_images"],
                                 progress=progress and where.main, identity=job["identity"])


def _mapper(device: str):
    """Tensors the notebook kept on a GPU (fusion modules, variance heads) go to this rank's GPU; those
    on the CPU (the Laplace posterior) stay there."""
    def place(storage, location: str):
        return storage.to(device) if location.startswith("cuda") else storage

    return place


def evaluate_in_processes(nproc: int, loaded_model, methods: Mapping, data_root, datasets: Sequence[str], out_dir, *,
                          split: str, seed: int, max_images: int | None, identity: Mapping) -> None:
    """``evaluate_datasets`` by ``nproc`` processes under torchrun (this process waits for them)."""
    import torch

    out_dir = Path(out_dir)
    # each process keeps this one's torch thread count: matrix kernels may sum in another order with
    # another count, and the CSVs are to be those of a one-process run, byte for byte
    threads = torch.get_num_threads()
    job = save_job(out_dir / JOB_FILE, loaded_model, methods, data_root, datasets, out_dir, split=split, seed=seed,
                   max_images=max_images, identity=identity, threads=threads)
    command = distributed.torchrun_command(nproc, ["eval-job", str(job)])
    print(f"evaluating with {nproc} processes: {' '.join(command[2:])}", flush=True)
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {nproc}-process evaluation into {out_dir} failed (exit status {done.returncode}); "
                           f"rerun to resume it, or set {NPROC_VARIABLE}=1")
    job.unlink(missing_ok=True)
