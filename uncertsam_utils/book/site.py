"""Build the static site of the executed notebooks: Sphinx with myst-nb and the book theme, offline.

``build_site(notebooks, out)`` takes the executed ``NN_*.ipynb`` of a run (``make reproduce`` writes
them to ``build/mini/``; ``make test`` captures the smoke run's through ``nbval_capture``) and the
figures and tables that run wrote, lays out the sources in a work folder (the notebooks, copies of
the figures and tables, the landing and tables pages of ``pages``, ``conf.py``) and runs Sphinx's
HTML builder into ``out``. Notebooks are never executed here (``nb_execution_mode = "off"``): the
page shows what the run printed. Nothing is fetched: the theme ships its assets, and no page loads
a script from the network (no MathJax: the notebooks write no TeX; no widget manager: a static page
cannot run widgets).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .pages import landing_page, tables_page

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
TITLE = "UncertSAM companion: the executed notebooks"
INTRO = """\
A notebook-first companion to *Towards Integrating Uncertainty for Domain-Agnostic Segmentation*
(Brouwers, Xing, Timans; arXiv 2512.23427). Every page below is a notebook of the repository as
executed by {how}; every number, table and figure on these pages comes from that run.
"""

CONF = '''\
# Written by uncertsam_utils.book.site: the book's Sphinx configuration (regenerated on every build).
project = {title!r}
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = {title!r}
html_static_path = ["_static"]
html_css_files = ["uncertsam.css"]
html_theme_options = {{"show_navbar_depth": 1, "home_page_in_toc": True, "use_download_button": True,
                      "show_toc_level": 2}}
html_context = {{"default_mode": "light"}}  # an explicit mode: the theme logs an error without one
html_favicon = "_static/favicon.png"  # else browsers ask for /favicon.ico, which a static host lacks
html_last_updated_fmt = None
html_copy_source = False
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {{}}  # no widget manager from a CDN: a static page cannot run the widgets
myst_enable_extensions = []  # no dollarmath: the notebooks write no TeX, and MathJax would come from a CDN
exclude_patterns = ["**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
'''

CSS = """\
.uncertsam-gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); gap: 1rem; }
.uncertsam-gallery figure { margin: 0; }
.uncertsam-gallery figcaption { font-size: 0.8rem; }
table.docutils, .cell_output table { font-size: 0.8rem; }
"""


@dataclass
class SiteBuild:
    out: Path
    pages: list[Path]  # the notebook pages, in order
    seconds: float
    errors: dict[str, int]  # notebook → number of error outputs it carries


def executed_notebooks(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def error_outputs(notebook: Path) -> int:
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return sum(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))


def describe_run(notebooks: list[Path]) -> str:
    """How the notebooks were executed, from their metadata (papermill records its parameters)."""
    if not notebooks:
        return "no run"
    meta = json.loads(notebooks[0].read_text(encoding="utf-8")).get("metadata", {})
    if meta.get("uncertsam", {}).get("executed_by") == "nbval":
        return "the notebook tests of `make test` (nbval, smoke profile)"
    return "`uncertsam reproduce` (papermill; each page shows the parameters it was given)"


def _favicon(path: Path) -> None:
    """A 32-px icon in the gallery's magma colours (the uncertainty colour map of every figure)."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    ramp = np.linspace(0, 1, 32)
    values = np.sqrt(ramp[None, :] * ramp[:, None])
    Image.fromarray((colormaps["magma"](values)[..., :3] * 255).astype(np.uint8)).save(path)


def static_copy(notebook: Path, target: Path) -> int:
    """Copy ``notebook`` without its widget outputs (a static page cannot run a widget, and the text
    fallback of one, such as a progress bar's, is a stale snapshot); returns how many were left out."""
    content = json.loads(notebook.read_text(encoding="utf-8"))
    dropped = 0
    for cell in content.get("cells", []):
        kept = [o for o in cell.get("outputs", []) if WIDGET_VIEW not in o.get("data", {})]
        dropped += len(cell.get("outputs", [])) - len(kept)
        if "outputs" in cell:
            cell["outputs"] = kept
    content.get("metadata", {}).pop("widgets", None)
    target.write_text(json.dumps(content, ensure_ascii=False, indent=1), encoding="utf-8")
    return dropped


def write_sources(notebooks: list[Path], src: Path, *, figures: Path | None, tables: Path | None) -> None:
    """Lay out the Sphinx sources in ``src`` (emptied first)."""
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    (src / "_static").mkdir()
    for notebook in notebooks:
        static_copy(notebook, src / "notebooks" / notebook.name)
    shown_figures = sorted(figures.glob("*.png")) if figures is not None and figures.is_dir() else []
    if shown_figures:
        (src / "figures").mkdir()
        for figure in shown_figures:
            shutil.copy2(figure, src / "figures" / figure.name)
    (src / "conf.py").write_text(CONF.format(title=TITLE))
    (src / "_static" / "uncertsam.css").write_text(CSS)
    _favicon(src / "_static" / "favicon.png")
    intro = INTRO.format(how=describe_run(notebooks))
    (src / "index.md").write_text(landing_page(title=TITLE, intro=intro, tables=tables, figures=shown_figures,
                                               notebooks=notebooks), encoding="utf-8")
    (src / "tables.md").write_text(tables_page(tables), encoding="utf-8")


def build_site(notebooks_dir, out, *, figures=None, tables=None, work=None, quiet: bool = True) -> SiteBuild:
    """Build the site of the executed notebooks in ``notebooks_dir`` into ``out`` (HTML).

    ``figures``, ``tables``: the run's output folders; ``work``: where the Sphinx sources and doctrees
    go (default: ``<out>.src`` beside ``out``). Raises FileNotFoundError when there is no notebook and
    RuntimeError when Sphinx fails (its log names the page)."""
    from sphinx.cmd.build import build_main

    started = time.perf_counter()
    notebooks = executed_notebooks(Path(notebooks_dir))
    if not notebooks:
        raise FileNotFoundError(f"no executed notebooks NN_*.ipynb in {notebooks_dir}: run `make reproduce` first")
    out = Path(out)
    work = Path(work) if work is not None else out.with_name(out.name + ".src")
    write_sources(notebooks, work / "src", figures=Path(figures) if figures else None,
                  tables=Path(tables) if tables else None)
    # Sphinx writes into the work folder (myst-nb puts its image files beside the output folder, in
    # jupyter_execute/), and the finished site is renamed into place.
    html = work / "html"
    for stale in (html, out):
        if stale.exists():
            shutil.rmtree(stale)
    args = ["-b", "html", "-d", str(work / "doctrees"), "-E", str(work / "src"), str(html)]
    status = build_main((["-q"] if quiet else []) + args)
    if status != 0:
        raise RuntimeError(f"Sphinx failed ({status}) building {out} from {work / 'src'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    html.rename(out)
    errors = {nb.name: n for nb in notebooks if (n := error_outputs(nb))}
    pages = [out / "notebooks" / f"{nb.stem}.html" for nb in notebooks]
    return SiteBuild(out, pages, time.perf_counter() - started, errors)
