"""The paper profile end to end on CPU: `make test` runs this file (`pytest tests/paper_smoke.py`; its
name keeps it out of a plain `pytest tests`, it takes minutes).

1. Generated benchmarks in the published layout, by UncertSAM-mini's renderers (``generate_fit``,
   ``generate_domains``): for the notebooks, ``fit/{train,val,test}`` of 3/2/1 images and one test
   domain (COIFT, 1 validation and 1 test image; each domain more costs about a quarter more time);
   for the two-process evaluation, COIFT and BIG (scored at half resolution) of 2 test images each.
2. The benchmark evaluated by one and by two processes (torchrun, gloo) with Hiera-T: the CSVs,
   counts and manifest byte for byte.
3. ``uncertsam reproduce --profile paper-smoke --data-root DIR --set model=sam2.1_hiera_tiny
   --set checkpoint=random --set device=cpu --set models=[sam2.1_hiera_tiny]``: every notebook
   through papermill with the paper profile's values but the sample counts (params/paper-smoke.yaml),
   official Hiera-T at 1024² with seeded random weights, fresh caches (the Laplace fits, the variance
   head and fusion training and the evaluations all run) and outputs outside figures/ and tables/.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from uncertsam_utils.data.mini import generate_domains, generate_fit
from uncertsam_utils.data.mini.domains import DOMAINS

EVALUATED = ("COIFT", "BIG")
MODEL = ["--set", "model=sam2.1_hiera_tiny", "--set", "checkpoint=random", "--set", "device=cpu",
         "--set", "models=[sam2.1_hiera_tiny]"]


def _domains(names):
    return {name: DOMAINS[name] for name in names}


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> Path:
    """What the notebooks run on: the fit set and one test domain."""
    root = tmp_path_factory.mktemp("paper-benchmark")
    generate_fit(root, seed=0, sizes=(3, 2, 1), progress=False, workers=1)
    generate_domains(root, seed=0, sizes=(1, 1), domains=_domains(["COIFT"]), progress=False, workers=1)
    return root


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory) -> Path:
    """What the processes share out: two domains of two test images."""
    root = tmp_path_factory.mktemp("two-domains")
    generate_domains(root, seed=0, sizes=(1, 2), domains=_domains(EVALUATED), progress=False, workers=1)
    return root


def _run(command: list[str], env: dict, timeout: int = 3600) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return done


def _same_tree(one: Path, two: Path) -> list[str]:
    files = sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(two)) for p in two.rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(one, two, files, shallow=False)
    assert not mismatch and not errors, f"differ between 1 and 2 processes: {mismatch + errors}"
    return files


def test_two_processes_evaluate_the_benchmark_byte_for_byte(two_domains, tmp_path):
    """Hiera-T (random weights) at 1024², 2 images of each domain, the baseline and prompt perturbation
    (jittered boxes drawn per image): one process, then torchrun with two gloo processes."""
    arguments = ["eval", "--data", str(two_domains), "--model", "sam2.1_hiera_tiny", "--checkpoint", "random",
                 "--method", "baseline", "prompt", "--K", "2", "--threads", "1", "--quiet"]
    env = {**os.environ, "UNCERTSAM_CACHE": str(tmp_path / "cache")}
    _run([sys.executable, "-m", "uncertsam_utils.cli", *arguments, "--out", str(tmp_path / "one")], env)
    done = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
                 "uncertsam_utils.cli", *arguments, "--out", str(tmp_path / "two")], env)
    assert "2 processes (gloo)" in done.stdout
    files = _same_tree(tmp_path / "one", tmp_path / "two")
    assert {f"{d}/{name}" for d in EVALUATED for name in ("baseline.csv", "prompt.csv", "counts.json")} <= set(files)


def test_the_paper_profile_runs_every_notebook(benchmark, tmp_path):
    from uncertsam_utils.reproduce import numbered_notebooks

    env = {**os.environ, "UNCERTSAM_CACHE": str(tmp_path / "cache"), "UNCERTSAM_OUTPUTS": str(tmp_path / "outputs"),
           "MPLBACKEND": "Agg"}
    build = tmp_path / "build"
    done = _run([sys.executable, "-m", "uncertsam_utils.cli", "reproduce", "--profile", "paper-smoke", "--data-root",
                 str(benchmark), "--build-dir", str(build), *MODEL], env)
    executed = sorted(p.name for p in build.glob("[0-9][0-9]_*.ipynb"))
    assert executed == sorted(f"{p.stem}.ipynb" for p in numbered_notebooks()), done.stdout[-3000:]
    outputs = {p.name for p in (tmp_path / "outputs").rglob("*") if p.is_file()}
    assert "performance.csv" in outputs and any(name.startswith("06_") for name in outputs), sorted(outputs)
    evaluations = list((tmp_path / "cache" / "evaluations").glob("*/COIFT/counts.json"))
    assert evaluations, "no notebook evaluation wrote its counts"
