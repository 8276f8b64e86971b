"""Notebook outputs that ``make test`` checks: the cells marked ``# NBVAL_CHECK_OUTPUT``.

The marked cells print key results (per-method means, verdicts, table heads). Their expected
outputs are the smoke profile's, kept in ``tests/expected/NN_*.ipynb`` (the executed notebooks with
the outputs of the marked cells only) and written by one command, never by hand::

    make expected    # uncertsam reproduce --profile smoke --record-expected tests/expected

``make test`` prepares the notebooks from their sources and copies into each marked cell the
expected outputs of the cell with the same source (``apply_expected``); nbval (``--nbval-lax``)
then runs every cell and compares the marked ones, after ``params/nbval_sanitize.cfg`` (times,
paths, floats to 4 decimals). A marked cell without an expected output, an expected cell whose
source is no longer in the notebook and a notebook without its expected file are errors that say to
run ``make expected``: a check is never dropped silently.
"""

from __future__ import annotations

import copy
from pathlib import Path

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
REGENERATE = "run `make expected` (uncertsam reproduce --profile smoke --record-expected tests/expected)"


class ExpectedOutputsError(RuntimeError):
    """The expected outputs do not match the notebooks' checked cells."""


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and any(line.strip() == CHECK_MARK for line in cell.source.splitlines())


def _strip_metadata(notebook) -> None:
    """Drop what changes between two runs with the same results (timings, papermill's run record,
    the progress bars' widget states)."""
    notebook.metadata.pop("papermill", None)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)


def record_expected(executed: Path, target: Path) -> Path | None:
    """``executed`` (a notebook run by papermill) written to ``target`` with the outputs of its checked
    cells only (the others emptied, figures included, so the files stay small and readable). A
    notebook without checked cells has no expected file (an old one is removed); returns None."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    if not any(is_checked(cell) for cell in notebook.cells):
        Path(target).unlink(missing_ok=True)
        return None
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if not is_checked(cell):
            cell.outputs, cell.execution_count = [], None
        elif cell.execution_count is None:
            raise ExpectedOutputsError(f"{executed}: a checked cell was not run")
    _strip_metadata(notebook)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return target


def expected_cells(expected: Path) -> dict[str, object]:
    """The checked cells of an expected notebook by source."""
    import nbformat

    return {cell.source: cell for cell in nbformat.read(expected, as_version=4).cells if is_checked(cell)}


def check_against(prepared: Path, expected_dir: Path) -> list[str]:
    """What is wrong between the checked cells of ``prepared`` and ``expected_dir/<same name>``."""
    import nbformat

    expected = Path(expected_dir) / prepared.name
    checked = [c for c in nbformat.read(prepared, as_version=4).cells if is_checked(c)]
    if not expected.is_file():
        return [f"{prepared.name}: no expected outputs ({expected})"] if checked else []
    known = expected_cells(expected)
    problems = [f"{prepared.name}: checked cell {_first_line(c.source)!r} has no expected output (its source changed?)"
                for c in checked if c.source not in known]
    sources = {c.source for c in checked}
    problems += [f"{prepared.name}: the expected cell {_first_line(s)!r} is no longer in the notebook"
                 for s in known if s not in sources]
    return problems


def apply_expected(prepared: Path, expected_dir: Path) -> int:
    """Copy the expected outputs into the checked cells of ``prepared`` (in place); returns how many
    cells are checked. Raises ``ExpectedOutputsError`` naming every mismatch."""
    import nbformat

    problems = check_against(prepared, expected_dir)
    if problems:
        raise ExpectedOutputsError("the expected outputs are out of date:\n  " + "\n  ".join(problems) + f"\n{REGENERATE}")
    expected = Path(expected_dir) / prepared.name
    if not expected.is_file():
        return 0
    known = expected_cells(expected)
    notebook = nbformat.read(prepared, as_version=4)
    count = 0
    for cell in notebook.cells:
        if is_checked(cell):
            cell.outputs = copy.deepcopy(known[cell.source].outputs)
            cell.execution_count = known[cell.source].execution_count  # nbval skips cells never run
            count += 1
    nbformat.write(notebook, prepared)
    return count


def _first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip() and line.strip() != CHECK_MARK]
    return (lines[0] if lines else "")[:60]
