"""The book's builder (uncertsam_utils.book): pages from executed notebooks, the landing page's
scorecard or tables, the figure gallery, error outputs made visible, offline HTML, and the nbval
plugin that writes the executed notebooks of `make test`."""

from __future__ import annotations

import base64
import io
import re

import nbformat
import pytest

from uncertsam_utils.book.nbval_capture import executed_notebook
from uncertsam_utils.book.pages import shift_headings, table_files


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _notebook(path, title, outputs):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("x = 1", execution_count=1)
    code.outputs = outputs
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nSome text."), code]
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Executed notebooks 00 (a figure), 01 (an error output) and 02, and a run's figures and tables."""
    root = tmp_path_factory.mktemp("run")
    executed, figures, tables = root / "executed", root / "figures", root / "tables"
    for folder in (executed, figures, tables):
        folder.mkdir()
    image = {"image/png": base64.b64encode(_png()).decode(), "text/plain": "<Figure>"}
    _notebook(executed / "00_first.ipynb", "00 · First", [nbformat.v4.new_output("display_data", data=image)])
    _notebook(executed / "01_second.ipynb", "01 · Second", [nbformat.v4.new_output(
        "error", ename="ValueError", evalue="boom", traceback=["Traceback (most recent call last):", "ValueError: boom"])])
    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
              "text/plain": "VBox(children=(Dropdown()))"}
    _notebook(executed / "02_third.ipynb", "02 · Third", [nbformat.v4.new_output("stream", name="stdout", text="hello\n"),
                                                          nbformat.v4.new_output("display_data", data=widget)])
    (figures / "00_first_figure.png").write_bytes(_png())
    (figures / "02_third_figure.png").write_bytes(_png())
    (tables / "06_winners.md").write_text("# Best method per dataset\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (tables / "01_statistics.md").write_text("| images | masks |\n|---|---|\n| 48 | 77 |\n")
    (tables / "manifest.md").write_text("# Manifest of regenerated outputs\n\n| output |\n|---|\n| x |\n")
    return executed, figures, tables


def test_shift_headings_keeps_levels_consecutive_and_code_alone():
    text = "## A\n\ntext\n\n### B\n\n```\n# not a heading\n```\n"
    assert shift_headings(text, 3) == "### A\n\ntext\n\n#### B\n\n```\n# not a heading\n```\n"
    assert shift_headings("no heading\n", 2) == "no heading\n"


def test_the_run_log_is_not_a_landing_table(run):
    assert [p.name for p in table_files(run[2])] == ["01_statistics.md", "06_winners.md"]


def _build(run, tmp_path, with_claims: bool):
    from uncertsam_utils.book.site import build_site

    executed, figures, tables = run
    claims = tables / "claims.md"
    if with_claims:
        claims.write_text("# Claims\n\n| claim | verdict |\n|---|---|\n| Laplace correlates best | holds |\n")
    try:
        return build_site(executed, tmp_path / "site", figures=figures, tables=tables)
    finally:
        claims.unlink(missing_ok=True)


def test_site_without_claims_shows_the_tables_then_the_gallery(run, tmp_path):
    built = _build(run, tmp_path, with_claims=False)
    index = (built.out / "index.html").read_text()
    assert [p.name for p in built.pages] == ["00_first.html", "01_second.html", "02_third.html"]
    assert all(p.is_file() for p in built.pages) and (built.out / "tables.html").is_file()
    # Navigation in numbered order, then the tables page.
    order = list(dict.fromkeys(re.findall(r'href="(notebooks/\d\d_\w+\.html|tables\.html)"', index)))
    assert order == ["notebooks/00_first.html", "notebooks/01_second.html", "notebooks/02_third.html", "tables.html"]
    assert index.index("Best method per dataset") < index.index('id="figures"') and "Manifest" not in index
    assert "claims.md" in index  # it says there is no scorecard
    # The gallery: every figure of the run, linked to its notebook; the images are copied.
    assert index.count('class="uncertsam-gallery') == 1 and "00_first_figure.png" in index
    assert 'href="notebooks/02_third.html"' in index and "02_third_figure.png" in index
    assert len(list((built.out / "_images").glob("*_figure.png"))) == 2
    assert "Manifest of regenerated outputs" in (built.out / "tables.html").read_text()


def test_site_with_claims_shows_the_scorecard_first(run, tmp_path):
    built = _build(run, tmp_path, with_claims=True)
    index = (built.out / "index.html").read_text()
    assert "The claims scorecard" in index and "Laplace correlates best" in index
    assert index.index("Laplace correlates best") < index.index('id="figures"')
    assert "Best method per dataset" not in index  # the tables stay on their page


def test_error_outputs_are_counted_and_shown_and_nothing_comes_from_the_network(run, tmp_path):
    built = _build(run, tmp_path, with_claims=False)
    assert built.errors == {"01_second.ipynb": 1}
    second = (built.out / "notebooks" / "01_second.html").read_text()
    assert re.search(r'class="[^"]*\boutput traceback\b', second)  # what the browser test looks for
    assert "boom" in second
    first = (built.out / "notebooks" / "00_first.html").read_text()
    third = (built.out / "notebooks" / "02_third.html").read_text()
    assert "<img" in first and "hello" in third and "VBox" not in third  # a widget's stale text is left out
    remote = re.compile(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(?:https?:)?//', re.I)
    assert not [p for p in built.out.rglob("*.html") if remote.search(p.read_text())]


def test_missing_notebooks_are_named(tmp_path):
    from uncertsam_utils.book.__main__ import missing_notebooks
    from uncertsam_utils.reproduce import numbered_notebooks

    sources = numbered_notebooks()
    (tmp_path / f"{sources[0].stem}.ipynb").write_text("{}")
    assert missing_notebooks(tmp_path) == [p.name[:2] for p in sources[1:]]


def test_nbval_capture_writes_the_outputs_it_received(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("print(1)"),
                nbformat.v4.new_code_cell("1 + 1"), nbformat.v4.new_code_cell("skipped")]
    path = tmp_path / "05_x.ipynb"
    nbformat.write(nb, str(path))
    recorded = {0: [{"output_type": "stream", "name": "stdout", "text": "1\n"}],
                1: [{"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {}, "execution_count": 7}]}
    written = executed_notebook(path, recorded)
    nbformat.validate(written)
    code = [c for c in written.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, None]
    assert code[0].outputs[0].text == "1\n" and code[1].outputs[0].data["text/plain"] == "2"
    assert code[1].outputs[0].execution_count == 2 and code[2].outputs == []
    assert written.metadata["uncertsam"]["executed_by"] == "nbval"
