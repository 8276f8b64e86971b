"""A pytest plugin that keeps what nbval executed: each tested notebook, written with its outputs.

nbval runs every code cell of a notebook in a kernel and compares (or, with ``--nbval-lax``, mostly
ignores) the outputs; it never writes them. With ``-p uncertsam_utils.book.nbval_capture
--nbval-executed DIR``, the outputs nbval received for each cell (``IPyNbCell.test_outputs``) are
kept and, at the end of the session, each notebook is written to ``DIR/<name>.ipynb`` with them, so
that ``make test`` builds the book from the notebooks it has just run instead of running them twice.
A cell that was not run (skipped, or after the kernel died) is written without outputs.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

_RECORDED: dict[Path, dict[int, list]] = defaultdict(dict)


def pytest_addoption(parser) -> None:
    parser.addoption("--nbval-executed", metavar="DIR", default=None,
                     help="write each notebook tested by nbval, with the outputs of this run, to DIR")


def pytest_runtest_makereport(item, call) -> None:
    outputs = getattr(item, "test_outputs", None)
    if call.when == "call" and outputs is not None and hasattr(item, "cell_num"):
        _RECORDED[Path(str(item.fspath))][item.cell_num] = outputs


def executed_notebook(path: Path, outputs_by_cell: dict[int, list]):
    """The notebook at ``path`` with the recorded outputs of its code cells (numbered as nbval does)."""
    import nbformat

    notebook = nbformat.read(str(path), as_version=4)
    notebook.metadata["uncertsam"] = {"executed_by": "nbval"}  # the book says which run it shows
    count = 0
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    for number, cell in enumerate(code_cells):
        outputs = outputs_by_cell.get(number)
        if outputs is None:
            cell.outputs, cell.execution_count = [], None
            continue
        count += 1
        cell.execution_count = count
        cell.outputs = [_output(o, count) for o in outputs]
    return notebook


def _output(output, count: int):
    import nbformat

    kind = output.get("output_type")
    if kind == "execute_result":
        return nbformat.v4.new_output(kind, data=output.get("data", {}), metadata=output.get("metadata", {}),
                                      execution_count=count)
    if kind == "display_data":
        return nbformat.v4.new_output(kind, data=output.get("data", {}), metadata=output.get("metadata", {}))
    if kind == "stream":
        return nbformat.v4.new_output(kind, name=output.get("name", "stdout"), text=output.get("text", ""))
    return nbformat.v4.new_output("error", ename=output.get("ename", ""), evalue=output.get("evalue", ""),
                                  traceback=list(output.get("traceback", [])))


def pytest_sessionfinish(session, exitstatus) -> None:
    import nbformat

    target = session.config.getoption("--nbval-executed")
    if not target or not _RECORDED:
        return
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for path, outputs in sorted(_RECORDED.items()):
        nbformat.write(executed_notebook(path, outputs), str(target / path.name))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    target = config.getoption("--nbval-executed")
    if target and _RECORDED:
        terminalreporter.write_line(f"nbval_capture: {len(_RECORDED)} executed notebook(s) written to {target}")
