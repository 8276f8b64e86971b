"""The book's own pages, as MyST Markdown: the landing page (scorecard, figure gallery, contents)
and the tables page. The notebooks are pages as they are (myst-nb renders their outputs).

The landing page shows first the claims scorecard, ``tables/claims.md``, when the run wrote it;
otherwise every table the run wrote (the manifest, a run log, only on the tables page). Then a
gallery of every figure, each linked to the notebook that drew it (by its number prefix).
"""

from __future__ import annotations

import re
from pathlib import Path

CLAIMS = "claims.md"
RUN_LOG = "manifest.md"
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def shift_headings(text: str, top: int) -> str:
    """The Markdown ``text`` with its headings shifted so that the highest becomes level ``top``
    (levels stay consecutive, as Sphinx wants); fenced code is left alone."""
    lines, fenced = text.splitlines(), False
    levels = []
    for line in lines:
        fenced ^= line.lstrip().startswith("```")
        match = None if fenced else _HEADING.match(line)
        if match:
            levels.append(len(match.group(1)))
    if not levels:
        return text
    shift, out, fenced = top - min(levels), [], False
    for line in lines:
        fenced ^= line.lstrip().startswith("```")
        match = None if fenced else _HEADING.match(line)
        out.append(f"{'#' * min(6, len(match.group(1)) + shift)} {match.group(2)}" if match else line)
    return "\n".join(out) + "\n"


def table_section(path: Path, level: int) -> str:
    """One table file as a section: its own first heading, or its file name, at ``level``."""
    text = path.read_text(encoding="utf-8")
    has_heading = any(_HEADING.match(line) for line in text.splitlines())
    if has_heading:
        return shift_headings(text, level)
    return f"{'#' * level} {path.stem}\n\n{text}\n"


def table_files(tables: Path | None) -> list[Path]:
    if tables is None or not tables.is_dir():
        return []
    return sorted(p for p in tables.glob("*.md") if p.name not in (RUN_LOG,))


def _notebook_for(figure: Path, notebooks: list[Path]) -> Path | None:
    prefix = figure.name[:2]
    return next((nb for nb in notebooks if nb.name[:2] == prefix), None)


def gallery(figures: list[Path], notebooks: list[Path]) -> str:
    """A grid of every figure (``figures/NAME`` in the book's sources), captioned and linked to its notebook."""
    if not figures:
        return "No figures were written by this run.\n"
    items = []
    for figure in figures:
        notebook = _notebook_for(figure, notebooks)
        source = f" ([notebook {notebook.name[:2]}](notebooks/{notebook.name}))" if notebook else ""
        items.append(f"```{{figure}} figures/{figure.name}\n:width: 100%\n:alt: {figure.stem}\n\n"
                     f"`{figure.name}`{source}\n```\n")
    return "````{container} uncertsam-gallery\n" + "\n".join(items) + "````\n"


def landing_page(*, title: str, intro: str, tables: Path | None, figures: list[Path], notebooks: list[Path]) -> str:
    claims = tables / CLAIMS if tables is not None else None
    parts = [f"# {title}\n", intro.strip() + "\n"]
    if claims is not None and claims.is_file():
        parts += ["## The claims scorecard\n", f"From `tables/{CLAIMS}` of this run.\n",
                  shift_headings(claims.read_text(encoding="utf-8"), 3)]
    else:
        found = table_files(tables)
        parts += ["## The tables\n", f"This run wrote no `tables/{CLAIMS}` (the claims scorecard); here are the "
                  f"{len(found)} tables it wrote.\n" if found else "This run wrote no tables.\n"]
        parts += [table_section(p, 3) for p in found]
    parts += ["## Figures\n", gallery(figures, notebooks)]
    contents = [f"notebooks/{nb.stem}" for nb in notebooks] + ["tables"]
    parts += ["```{toctree}\n:caption: Notebooks\n:maxdepth: 1\n:hidden:\n\n" + "\n".join(contents) + "\n```\n"]
    return "\n".join(parts)


def tables_page(tables: Path | None) -> str:
    parts = ["# Tables\n", "Every table of this run, as written to `tables/` (the CSV files hold the same numbers).\n"]
    found = table_files(tables)
    if tables is not None and (tables / RUN_LOG).is_file():
        found.append(tables / RUN_LOG)
    parts += [table_section(p, 2) for p in found] or ["This run wrote no tables.\n"]
    return "\n".join(parts)
