"""``uncertsam reproduce``: command-line overrides of notebook parameters and the paper profile's
check of the data root and the checkpoint (nothing here executes a notebook)."""

import json
from pathlib import Path

import numpy as np
import pytest

from uncertsam_utils import reproduce
from uncertsam_utils.cli import main
from uncertsam_utils.data import DATASETS, write_split
from uncertsam_utils.reproduce import OverrideError, check_overrides, check_profile, parameters_for, parse_overrides


def _split(root, dataset, split):
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    write_split(root, dataset, split, [(1, np.full((16, 16, 3), 128, np.uint8), [mask])])


def _paper(**defaults):
    return {"defaults": {"model": "sam2_hiera_large", "checkpoint": None, **defaults}, "notebooks": {}}


@pytest.fixture
def no_checkpoints(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    monkeypatch.setenv("UNCERTSAM_CHECKPOINTS", str(folder))
    return folder


# --------------------------------------------------------------------------------------- overrides
def test_values_are_read_as_yaml_like_the_profiles():
    parsed = parse_overrides(["max_images=1", "checkpoint=random", "model=sam2.1_hiera_tiny", "posterior=null",
                              "T=0.5", "fit_missing=false", "models=[nano, sam2.1_hiera_tiny]", "data_root=/a b/c=d"])
    assert parsed == {"max_images": 1, "checkpoint": "random", "model": "sam2.1_hiera_tiny", "posterior": None,
                      "T": 0.5, "fit_missing": False, "models": ["nano", "sam2.1_hiera_tiny"], "data_root": "/a b/c=d"}
    assert type(parsed["max_images"]) is int and parse_overrides(None) == {}


@pytest.mark.parametrize("pair, message", [
    ("max_images", "NAME=VALUE"), ("=1", "NAME=VALUE"), ("max-images=1", "NAME=VALUE"),
    ("max_images=", "no value"), ("models=[a, b", "not a plain YAML value"), ("day=2024-01-01", "not a plain YAML value"),
])
def test_malformed_overrides_are_named(pair, message):
    with pytest.raises(OverrideError, match=message) as err:
        parse_overrides([pair])
    assert pair in str(err.value)


def test_an_override_given_twice_is_refused():
    with pytest.raises(OverrideError, match="max_images is given twice"):
        parse_overrides(["max_images=1", "max_images=2"])


def test_overrides_win_over_defaults_and_per_notebook_values_and_reach_only_declaring_notebooks():
    profile = {"defaults": {"model": "nano", "seed": 0}, "notebooks": {"08": {"clock": "wall", "seed": 3}},
               "overrides": {"clock": "cpu", "model": "sam2.1_hiera_tiny"}}
    assert parameters_for(profile, Path("08_performance.py"), {"clock", "seed", "models"}) == {"clock": "cpu", "seed": 3}
    assert parameters_for(profile, Path("02_tta.py"), {"model", "seed"}) == {"model": "sam2.1_hiera_tiny", "seed": 0}
    del profile["overrides"]  # a profile without any: its own values
    assert parameters_for(profile, Path("08_performance.py"), {"clock"}) == {"clock": "wall"}


def test_a_name_no_notebook_declares_is_refused():
    declared = {"01_data.py": {"data_root", "max_images"}, "08_performance.py": {"clock"}}
    check_overrides({"max_images": 1, "clock": "cpu"}, declared)
    with pytest.raises(OverrideError, match="no notebook declares max_image; the notebooks' parameters: clock, "):
        check_overrides({"max_image": 1}, declared)


# ------------------------------------------------------------------------------ the paper profile
def test_paper_check_names_every_missing_split_and_the_checkpoint(tmp_path, no_checkpoints):
    present = DATASETS[:3]
    for dataset in present:
        _split(tmp_path, dataset, "test")
    _split(tmp_path, DATASETS[3], "val")  # another split does not stand in for test
    _split(tmp_path, "fit", "train")
    with pytest.raises(FileNotFoundError) as err:
        check_profile("paper", _paper(data_root=str(tmp_path)))
    message = str(err.value)
    missing = [f"{d}/test" for d in DATASETS[3:]]
    assert f"test splits missing under {tmp_path}: {', '.join(missing)} " in message
    assert all(f"{d}/test" not in message for d in present)
    assert f"fit splits missing under {tmp_path}: fit/val (" in message and "fit/train" not in message
    assert f"no sam2_hiera_large checkpoint at {no_checkpoints / 'sam2_hiera_large.pt'}" in message


def test_paper_check_passes_on_a_complete_root_with_random_weights_or_a_placed_checkpoint(tmp_path, no_checkpoints):
    for dataset in DATASETS:
        _split(tmp_path, dataset, "test")
    _split(tmp_path, "fit", "train")
    _split(tmp_path, "fit", "val")
    profile = _paper(data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="checkpoint") as err:
        check_profile("paper", profile)
    assert "splits missing" not in str(err.value)
    check_profile("paper", {**profile, "overrides": {"checkpoint": "random"}})
    no_checkpoints.mkdir()
    (no_checkpoints / "sam2_hiera_large.pt").write_bytes(b"x")
    check_profile("paper", profile)
    with pytest.raises(FileNotFoundError, match=f"checkpoint file {tmp_path / 'mine.pt'} not found"):
        check_profile("paper", {**profile, "overrides": {"checkpoint": str(tmp_path / "mine.pt")}})
    with pytest.raises(FileNotFoundError, match="unknown model 'hiera_xl'"):
        check_profile("paper", {**profile, "overrides": {"model": "hiera_xl"}})


def test_paper_check_without_a_data_root_says_how_to_pass_one(tmp_path, no_checkpoints):
    with pytest.raises(FileNotFoundError, match="data_root is not set: pass --data-root DIR"):
        check_profile("paper", _paper(data_root=None, checkpoint="random"))
    with pytest.raises(FileNotFoundError, match=f"data_root {tmp_path / 'nope'} is not a folder"):
        check_profile("paper", _paper(data_root=str(tmp_path / "nope"), checkpoint="random"))
    check_profile("mini", _paper(data_root=None))  # only the paper profile is checked


# ---------------------------------------------------------------------------------- the command
def test_reproduce_paper_refuses_before_anything_runs(tmp_path, no_checkpoints, capsys, monkeypatch):
    monkeypatch.setattr(reproduce, "prepare_notebooks", lambda *a: pytest.fail("a notebook was prepared"))
    _split(tmp_path, "fit", "train")
    argv = ["reproduce", "--profile", "paper", "--data-root", str(tmp_path), "--build-dir", str(tmp_path / "build")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("uncertsam: error: the paper profile cannot run:") and "fit/val" in err and "BIG/test" in err
    assert main([*argv, "--set", "data_root=/x"]) == 2
    assert "data_root is given twice" in capsys.readouterr().err
    assert main([*argv[:4], str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main([*argv, "--set", "max_images"]) == 2
    assert "--set takes NAME=VALUE" in capsys.readouterr().err


def test_reproduce_paper_passes_overrides_to_every_declaring_notebook(tmp_path, no_checkpoints, capsys):
    nbformat = pytest.importorskip("nbformat")
    for dataset in DATASETS:
        _split(tmp_path, dataset, "test")
    _split(tmp_path, "fit", "train")
    _split(tmp_path, "fit", "val")
    build = tmp_path / "build"
    argv = ["reproduce", "--profile", "paper", "--data-root", str(tmp_path), "--build-dir", str(build), "--prepare-only",
            "--only", "02", "08", "--set", "checkpoint=random", "--set", "model=sam2.1_hiera_tiny", "--set", "clock=cpu"]
    assert main(argv) == 0

    def injected(stem):
        cells = nbformat.read(build / f"{stem}.ipynb", as_version=4).cells
        return next(c.source for c in cells if "injected-parameters" in c.metadata.get("tags", []))

    tta = injected("02_test_time_augmentation")
    assert f'data_root = "{tmp_path}"' in tta and 'checkpoint = "random"' in tta and 'model = "sam2.1_hiera_tiny"' in tta
    assert 'device = "cuda"' in tta  # the profile's own values stay where not overridden
    performance = injected("08_performance")
    assert 'clock = "cpu"' in performance and "data_root" not in performance  # 08 declares no data_root
    assert not (build / "03_prompt_perturbation.ipynb").exists()
    assert main([*argv, "--set", "max_image=1"]) == 2
    assert "no notebook declares max_image" in capsys.readouterr().err


def test_the_manifest_records_the_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("UNCERTSAM_OUTPUTS", str(tmp_path))
    output = tmp_path / "tables" / "t.csv"
    output.parent.mkdir(parents=True)
    output.write_text("a\n")
    run = reproduce.NotebookRun("02_x.py", {"checkpoint": "random", "max_images": 1}, 1.0, [output])
    path = reproduce.write_manifest("paper", [run], {"max_images": 1, "checkpoint": "random"})
    row = path.read_text().splitlines()[-1]
    assert '| 02_x.py | paper `--set {"checkpoint": "random", "max_images": 1}` |' in row
    reproduce.write_manifest("smoke", [run])
    assert "| 02_x.py | smoke |" in path.read_text().splitlines()[-1]
    assert json.dumps({"checkpoint": "random", "max_images": 1}, sort_keys=True) in path.read_text()


def test_the_manifest_names_no_folder_of_the_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("UNCERTSAM_OUTPUTS", str(tmp_path))
    output = tmp_path / "tables" / "t.csv"
    output.parent.mkdir(parents=True)
    output.write_text("a\n")
    parameters = {"data_root": "/data/users/me/UncertSAM", "checkpoint": "/home/me/ckpt/sam2_hiera_large.pt",
                  "model": "sam2_hiera_large", "max_images": 2}
    run = reproduce.NotebookRun("06_x.py", parameters, 1.0, [output])
    text = reproduce.write_manifest("paper", [run], {"data_root": parameters["data_root"]}).read_text()
    assert "/data/users" not in text and "/home/me" not in text
    row = text.splitlines()[-1]
    assert '"data_root": ".../UncertSAM"' in row and '"checkpoint": ".../sam2_hiera_large.pt"' in row
    assert "| .../UncertSAM |" in row and '`--set {"data_root": ".../UncertSAM"}`' in row
    assert reproduce.portable({"a": "rel/path", "b": 1, "c": None}) == {"a": "rel/path", "b": 1, "c": None}
