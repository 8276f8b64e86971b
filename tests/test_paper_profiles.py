"""The paper-smoke profile (paper's values, tiny counts, any subset of the test domains) and how
`uncertsam reproduce` meets torchrun (it refuses to run under it; --eval-nproc is for the notebooks'
evaluations). Nothing here executes a notebook: tests/paper_smoke.py does, in `make test`."""

import os

import numpy as np
import pytest

from uncertsam_utils import reproduce
from uncertsam_utils.cli import main
from uncertsam_utils.data import DATASETS, write_split
from uncertsam_utils.evaluation.jobs import NPROC_VARIABLE, default_nproc
from uncertsam_utils.reproduce import check_profile, load_profile


def _split(root, dataset, split):
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    write_split(root, dataset, split, [(1, np.full((16, 16, 3), 128, np.uint8), [mask])])


def test_paper_smoke_is_the_paper_profile_with_small_counts():
    paper, smoke = load_profile("paper"), load_profile("paper-smoke")
    assert set(reproduce.PROFILES) >= {"paper", "paper-smoke"}
    for key in ("model", "device", "checkpoint", "data_root"):
        assert smoke["defaults"][key] == paper["defaults"][key]
    assert smoke["defaults"]["max_images"] == 1 and smoke["defaults"]["fit_images"] == 2
    assert smoke["notebooks"]["07"]["fusion_epochs"] == 1 and smoke["notebooks"]["07"]["fusion_seeds"] == [0]
    # per-notebook values merge: the smoke's methods, the paper's clock
    assert smoke["notebooks"]["08"]["methods"] == ["prompt"] and smoke["notebooks"]["08"]["clock"] == "wall"


def test_paper_smoke_takes_a_subset_of_the_domains_but_not_less_than_one_and_the_fit_set(tmp_path):
    profile = {"defaults": {"data_root": str(tmp_path), "model": "sam2.1_hiera_tiny", "checkpoint": "random"}}
    _split(tmp_path, "fit", "train")
    with pytest.raises(FileNotFoundError) as err:
        check_profile("paper-smoke", profile)
    assert "fit/val" in str(err.value) and "test splits missing" in str(err.value)  # no test domain at all
    _split(tmp_path, "fit", "val")
    _split(tmp_path, "COIFT", "test")
    check_profile("paper-smoke", profile)
    with pytest.raises(FileNotFoundError, match="BIG/test"):
        check_profile("paper", profile)  # the paper profile wants all eight


def test_reproduce_refuses_to_run_under_torchrun(monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "run_profile", lambda *a, **k: pytest.fail("the notebooks ran"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["reproduce", "--profile", "smoke"]) == 2
    assert "not under torchrun" in capsys.readouterr().err


def test_eval_nproc_reaches_the_notebooks_through_the_environment(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(reproduce, "run_profile", lambda *a, **k: seen.setdefault("nproc", os.environ[NPROC_VARIABLE])
                        and [])
    monkeypatch.delenv(NPROC_VARIABLE, raising=False)
    assert default_nproc() == 1
    assert main(["reproduce", "--profile", "smoke", "--eval-nproc", "3"]) == 0
    assert seen["nproc"] == "3" and default_nproc() == 3
    assert main(["reproduce", "--profile", "smoke", "--eval-nproc", "0"]) == 2
    monkeypatch.setenv(NPROC_VARIABLE, "two")
    with pytest.raises(ValueError, match="not a number"):
        default_nproc()


def test_a_notebook_evaluation_under_torchrun_without_a_group_is_refused(monkeypatch):
    """A notebook kernel started under torchrun would evaluate the same images once per process."""
    from uncertsam_utils.evaluation import evaluate_cached

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="once per process"):
        evaluate_cached("06", None, None, {}, "/nowhere", ["COIFT"], {})
