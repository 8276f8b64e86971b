"""The README's results section, generated from the claims scorecard (never typed by hand).

The section lies between ``BEGIN`` and ``END`` markers in README.md; ``render_section`` makes its
text from ``tables/claims.csv`` and ``update_readme`` rewrites it in place (``uncertsam reproduce``
does after a run; a test checks that README and scorecard agree).
"""

from __future__ import annotations

from pathlib import Path

from .claims import VERDICTS, read_claims

BEGIN = "<!-- BEGIN results: generated from tables/claims.csv by uncertsam_utils.scorecard.readme; do not edit -->"
END = "<!-- END results -->"


def render_section(claims_stem) -> str:
    claims = read_claims(claims_stem)
    if not claims:
        return "No claims have been tested yet: run `make reproduce`.\n"
    counts = ", ".join(f"{n} {v}" for v in VERDICTS if (n := sum(c.verdict == v for c in claims)))
    lines = [f"{len(claims)} claims tested on the embedded default ({counts}); the full table, with the tests and "
             "what each verdict rests on, is `tables/claims.md`.", ""]
    lines += ["| claim | paper | here | evidence |", "|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {c.statement} | {c.paper_verdict} | **{c.verdict}** | {c.evidence} |")
    return "\n".join(lines) + "\n"


def section_of(readme_text: str) -> str:
    """The text between the markers (without them); ValueError when they are missing or out of order."""
    start, end = readme_text.find(BEGIN), readme_text.find(END)
    if start < 0 or end < start:
        raise ValueError("README.md has no generated results section (its BEGIN/END markers are missing)")
    return readme_text[start + len(BEGIN):end].strip("\n") + "\n"


def update_readme(readme: Path, claims_stem) -> bool:
    """Rewrite the generated section of ``readme``; True when its text changed."""
    text = readme.read_text(encoding="utf-8")
    section_of(text)  # the markers must exist
    start, end = text.find(BEGIN) + len(BEGIN), text.find(END)
    new = text[:start] + "\n" + render_section(claims_stem) + text[end:]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text
