"""Evaluations and Laplace fits in two processes (torchrun, gloo) against one process: the CSVs and
counts byte for byte, the posterior up to float summation order."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from uncertsam_utils.data.layout import write_split

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*arguments: str, nproc: int = 1, timeout: int = 900) -> subprocess.CompletedProcess:
    """``uncertsam ARGUMENTS`` in one process, or under ``torchrun --nproc-per-node NPROC``."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    command = (launcher if nproc > 1 else [sys.executable]) + ["-m", "uncertsam_utils.cli", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def same_tree(one: Path, two: Path) -> list[str]:
    """Every file of both folders, compared byte for byte; returns the relative paths compared."""
    files = sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(two)) for p in two.rglob("*") if p.is_file())
    # The cache's entry record says when it was written; its file sums and key must agree.
    entries = [f for f in files if Path(f).name == "cache-entry.json"]
    for name in entries:
        first, second = (json.loads((root / name).read_text()) for root in (one, two))
        assert {k: v for k, v in first.items() if k != "created"} == {k: v for k, v in second.items() if k != "created"}
    compared = [f for f in files if f not in entries]
    _, mismatch, errors = filecmp.cmpfiles(one, two, compared, shallow=False)
    assert not mismatch and not errors, f"differ: {mismatch + errors}"
    return files


def test_two_process_evaluation_of_the_embedded_default_is_byte_identical(tmp_path):
    """UncertSAM-mini (the default data), 3 images of 2 domains, methods with random draws (prompt
    jitter, TTA) and a combination, the nano model; --threads 1 in both runs."""
    arguments = ["eval", "--datasets", "COIFT", "BIG", "--max-images", "3", "--method", "baseline", "prompt", "tta",
                 "combined-rank", "--components", "prompt", "tta", "--K", "3", "--T", "2", "--threads", "1", "--quiet"]
    run(*arguments, "--out", str(tmp_path / "one"))
    done = run(*arguments, "--out", str(tmp_path / "two"), nproc=2)
    assert "2 processes (gloo)" in done.stdout
    files = same_tree(tmp_path / "one", tmp_path / "two")
    assert "BIG/counts.json" in files and "COIFT/tta.csv" in files and "evaluation.json" in files
    assert not any(".parts" in f for f in files)


def _max_relative_difference(a, b) -> float:
    if isinstance(a, torch.Tensor) and a.is_floating_point():
        scale = max(float(a.double().abs().max()), 1e-30)
        return float((a.double() - b.double()).abs().max()) / scale
    if isinstance(a, (list, tuple)):
        return max([_max_relative_difference(x, y) for x, y in zip(a, b)] or [0.0])
    assert a == b if not isinstance(a, torch.Tensor) else torch.equal(a, b)
    return 0.0


FITS = """
import sys
from uncertsam_utils import distributed
from uncertsam_utils.cli import main
# --selection-images: the tempered recipe's temperature on 3 fit/val images, not all 400 (4x the time)
with distributed.session("cpu"):  # one group for the three commands (each would otherwise join and leave)
    for structure, prior in (("diag", "marglik"), ("kron", "gridsearch"), ("full", "marglik")):
        code = main(["fit", "laplace", "--max-images", "6", "--objects", "all", "--structure", structure, "--prior",
                     prior, "--val-images", "3", "--selection-images", "3", "--threads", "1", "--quiet", "--out", f"{sys.argv[1]}-{structure}.pt"])
        assert code == 0, structure
"""


def test_two_process_laplace_fits_equal_one_process_up_to_summation_order(tmp_path):
    """`uncertsam fit laplace` of the three structures (the exact recipe; kron with the grid search, whose
    validation NLL is summed over the ranks' validation images) in one and in two processes: the
    curvature and the loss summed over the ranks. Measured relative differences (max over entries):
    H 7e-8 (diag, full) and 1.5e-7 (kron), the loss 1e-7, the marglik prior precision 7e-7 (diag) and
    3e-6 (full); the grid search's is equal."""
    script = tmp_path / "fits.py"
    script.write_text(FITS)
    for nproc, name in ((1, "one"), (2, "two")):
        launcher = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
                                       if nproc > 1 else [])
        done = subprocess.run(launcher + [str(script), str(tmp_path / name)], capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for structure in ("diag", "kron", "full"):
        one = torch.load(tmp_path / f"one-{structure}.pt", weights_only=True)["laplace_state_dict"]
        two = torch.load(tmp_path / f"two-{structure}.pt", weights_only=True)["laplace_state_dict"]
        assert one["n_data"] == two["n_data"] == 23  # every prompt once: 23 objects in the first 6 fit images
        assert torch.equal(one["mean"], two["mean"])
        assert _max_relative_difference(one["H"], two["H"]) < 1e-5, structure
        assert _max_relative_difference(one["loss"], two["loss"]) < 1e-5, structure
        assert _max_relative_difference(one["prior_precision"], two["prior_precision"]) < 1e-3, structure


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(5)
    for dataset in ("BIG", "COIFT"):
        items = []
        for i in range(3):
            image = (ndimage.gaussian_filter(rng.random((44, 52, 3)), (3, 3, 0)) * 255).astype(np.uint8)
            masks = [ndimage.gaussian_filter(rng.random((44, 52)), 4) for _ in range(2)]
            items.append((i, image, [m > np.quantile(m, 0.8) for m in masks]))
        write_split(root, dataset, "test", items)
    return root


def test_a_notebook_evaluation_in_two_processes_is_the_one_process_evaluation(bench, nano_random, tmp_path,
                                                                              monkeypatch):
    """evaluate_cached with nproc=2 (what `reproduce --eval-nproc 2` asks of the notebooks): the method
    instances, an in-memory Laplace posterior included, travel in a job file to two torchrun ranks."""
    from uncertsam_utils.evaluation import build_methods, evaluate_cached
    from uncertsam_utils.evaluation.jobs import JOB_FILE
    from uncertsam_utils.uq.laplace import fit_posterior
    from uncertsam_utils.uq.laplace.features import synthetic_images

    posterior = fit_posterior(nano_random, synthetic_images(3, 256, seed=1), progress=False)
    methods = build_methods(["baseline", "prompt", "laplace", "combined-product"], nano_random, K=2,
                            posterior=posterior, components=["prompt", "laplace"])
    folders = {}
    for nproc in (1, 2):
        monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path / f"cache{nproc}"))
        from uncertsam_utils.model import Predictor

        folders[nproc] = evaluate_cached("t", Predictor(nano_random.model), nano_random, methods, bench,
                                         ["BIG", "COIFT"], {"posterior": posterior}, nproc=nproc)
    assert folders[1].name == folders[2].name
    files = same_tree(folders[1], folders[2])
    assert "COIFT/laplace.csv" in files and JOB_FILE not in files
