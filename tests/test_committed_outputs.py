"""The committed outputs and the expected notebook outputs agree with the sources (issue 21):
every file under figures/ and tables/ is one `make reproduce` writes and lists in the manifest, none
names a folder of the machine that wrote it, and every checked notebook cell has its expected output."""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from PIL import Image

from uncertsam_utils.checked_outputs import (CHECK_MARK, ExpectedOutputsError, apply_expected, check_against,
                                             is_checked, record_expected)
from uncertsam_utils.data.names import DATASETS

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = sorted(p for d in ("figures", "tables") for p in (ROOT / d).iterdir() if p.is_file())
# a path from the root of a machine: /work/..., /home/u/..., ~/..., C:\... (not "fit/train", not "|y − p|")
ABSOLUTE = re.compile(r"(?:(?<![\w.\-/])/[\w.\-]+/[\w.\-]+)|(?:(?<![\w])~/)|(?:\b[A-Za-z]:\\[\w])")


def _texts(path: Path) -> str:
    if path.suffix == ".png":
        with Image.open(path) as image:  # tEXt / iTXt chunks (matplotlib's Software, ...)
            return "\n".join(f"{k}: {v}" for k, v in image.text.items())
    return path.read_text(encoding="utf-8")


def test_the_absolute_path_pattern_finds_machine_paths_only():
    assert ABSOLUTE.search("evaluated on `/work/main/.cache/UncertSAM-mini-v1-seed0`")
    assert ABSOLUTE.search("root ~/data") and ABSOLUTE.search(r"C:\Users\me")
    for fine in ("fit/train", "|y − p|", "BIG/test", ".../UncertSAM", "0.5/1", "a / b", "https://x.org/a/b"[8:]):
        assert not ABSOLUTE.search(fine), fine


@pytest.mark.parametrize("path", OUTPUTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_committed_output_names_a_folder_of_the_machine_that_wrote_it(path):
    found = ABSOLUTE.findall(_texts(path))
    assert not found, f"{path.relative_to(ROOT)} holds absolute paths: {found[:3]}"


def test_every_committed_output_is_in_the_manifest():
    """`make reproduce` rewrites every file under figures/ and tables/ and lists it (a file no notebook
    writes any more would stay behind, stale, and unlisted)."""
    manifest = (ROOT / "tables" / "manifest.md").read_text()
    listed = set(re.findall(r"^\| ((?:figures|tables)/[^ |]+) \|", manifest, flags=re.M))
    present = {f"{p.parent.name}/{p.name}" for p in OUTPUTS} - {"tables/manifest.md"}
    assert present - listed == set(), f"outputs no notebook run lists: {sorted(present - listed)}"
    assert listed - present == set(), f"listed outputs that are not there: {sorted(listed - present)}"


# ------------------------------------------------------------------------------ checked cells

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_every_checked_cell_has_its_expected_output(source):
    """The checked cells of each notebook source and of tests/expected/ are the same cells; a source
    edited without `make expected` fails here, before the notebooks run."""
    expected = ROOT / "tests" / "expected" / f"{source.stem}.ipynb"
    checked = {c.source for c in jupytext.read(source).cells if is_checked(c)}
    if not checked:
        assert not expected.exists(), f"{expected.name}: no checked cell in {source.name} any more"
        return
    assert expected.is_file(), f"{expected.relative_to(ROOT)} missing: run `make expected`"
    cells = [c for c in nbformat.read(expected, as_version=4).cells if is_checked(c)]
    assert {c.source for c in cells} == checked, f"{expected.name} is out of date: run `make expected`"
    assert all(c.execution_count is not None for c in cells), "nbval does not compare a cell that never ran"
    unchecked = [c for c in nbformat.read(expected, as_version=4).cells if c.cell_type == "code" and not is_checked(c)]
    assert all(not c.outputs for c in unchecked), "only the checked cells keep outputs"


def test_at_least_the_key_results_are_checked():
    marked = {s.name[:2] for s in NOTEBOOKS if CHECK_MARK in s.read_text()}
    assert {"00", "02", "03", "06", "07"} <= marked


def _notebook(path, sources, outputs=None):
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for cell, out in zip(cells, outputs or []):
        if out is not None:
            cell.outputs, cell.execution_count = [nbformat.v4.new_output("stream", name="stdout", text=out)], 1
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_expected_outputs_are_recorded_for_checked_cells_and_copied_back_by_source(tmp_path):
    checked = f"{CHECK_MARK}\nprint(0.4682)"
    executed = _notebook(tmp_path / "run.ipynb", ["x = 1", checked], ["noise\n", "0.4682\n"])
    record_expected(executed, tmp_path / "expected" / "06_x.ipynb")
    kept = nbformat.read(tmp_path / "expected" / "06_x.ipynb", as_version=4).cells
    assert kept[0].outputs == [] and kept[1].outputs[0]["text"] == "0.4682\n"
    prepared = _notebook(tmp_path / "06_x.ipynb", ["y = 2", "x = 1", checked])
    assert apply_expected(prepared, tmp_path / "expected") == 1
    cells = nbformat.read(prepared, as_version=4).cells
    assert cells[2].outputs[0]["text"] == "0.4682\n" and cells[2].execution_count == 1 and cells[0].outputs == []


def test_a_checked_cell_without_expected_output_is_an_error_not_a_skip(tmp_path):
    _notebook(tmp_path / "expected.ipynb", [f"{CHECK_MARK}\nprint(1)"], ["1\n"])
    (tmp_path / "expected").mkdir()
    record_expected(tmp_path / "expected.ipynb", tmp_path / "expected" / "07_y.ipynb")
    edited = _notebook(tmp_path / "07_y.ipynb", [f"{CHECK_MARK}\nprint(2)"])
    problems = check_against(edited, tmp_path / "expected")
    assert any("has no expected output" in p for p in problems)
    assert any("no longer in the notebook" in p for p in problems)
    with pytest.raises(ExpectedOutputsError, match="make expected"):
        apply_expected(edited, tmp_path / "expected")
    lonely = _notebook(tmp_path / "08_z.ipynb", [f"{CHECK_MARK}\nprint(3)"])
    assert check_against(lonely, tmp_path / "expected") == [f"08_z.ipynb: no expected outputs ({tmp_path / 'expected' / '08_z.ipynb'})"]


EVALUATION_TABLES = sorted(p for p in (ROOT / "tables").glob("0[67]_*.md"))


@pytest.mark.parametrize("path", EVALUATION_TABLES, ids=lambda p: p.name)
def test_every_table_of_notebooks_06_and_07_says_what_it_scored_and_skipped(path):
    """Issue 21: each table of an evaluation states, per dataset, the images and masks scored and skipped."""
    text = path.read_text(encoding="utf-8")
    assert "Scored per dataset: " in text, f"{path.name} does not say what it scored"
    for dataset in DATASETS:
        assert re.search(rf"{re.escape(dataset)} \d+ of \d+ images \(\d+ skipped\), \d+ of \d+ masks \(\d+ skipped\)",
                         text), f"{path.name}: no counts for {dataset}"
