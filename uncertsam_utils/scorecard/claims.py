"""The claims scorecard: one row per claim (the paper's and ours), with its computed verdict.

Each notebook that tests a claim builds ``Claim`` rows from its own tables (never typed verdicts)
and calls ``update_claims``: rows with the same ``id`` are replaced, the others kept, and
``tables/claims.csv`` and ``tables/claims.md`` are rewritten in the fixed order of ``ORDER`` (then
by id). ``readme.py`` renders the README's results section from the same file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

VERDICTS = ("holds", "does not hold", "inconclusive", "not tested")
SOURCES = ("paper", "ours")
# Claims in reading order: the paper's six, then ours; ids not listed here follow, sorted.
ORDER = (
    "paper-laplace-correlates-best",
    "paper-varnet-worst",
    "paper-refinement-modest-gains",
    "paper-ones-map-like-laplace",
    "paper-gt-mask-bounds-refinement",
    "paper-sam-degrades-on-shifted-domains",
)


@dataclass(frozen=True)
class Claim:
    id: str  # stable key, e.g. "paper-varnet-worst"
    source: str  # "paper" or "ours"
    statement: str  # the claim, as a sentence
    paper_verdict: str  # what the paper reports ("holds" for its own claims; "not tested" for ours)
    verdict: str  # ours, computed: one of VERDICTS
    evidence: str  # the deciding numbers with their intervals
    test: str  # how it was decided (statistic, interval, correction)
    rests_on: str  # images, masks, datasets, seeds
    notebook: str  # the notebook that computed it

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.id!r}: verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.paper_verdict not in VERDICTS:
            raise ValueError(f"claim {self.id!r}: paper_verdict must be one of {VERDICTS}, got {self.paper_verdict!r}")
        if self.source not in SOURCES:
            raise ValueError(f"claim {self.id!r}: source must be one of {SOURCES}, got {self.source!r}")
        for name in ("id", "statement", "evidence", "test", "rests_on", "notebook"):
            value = getattr(self, name)
            if not value or "\n" in value:
                raise ValueError(f"claim {self.id!r}: {name} must be one non-empty line")


COLUMNS = tuple(f.name for f in fields(Claim))


def _sort_key(claim: Claim):
    return (ORDER.index(claim.id) if claim.id in ORDER else len(ORDER), claim.source != "paper", claim.id)


def read_claims(stem) -> list[Claim]:
    """The claims of ``<stem>.csv`` (empty when the file does not exist)."""
    path = Path(stem).with_suffix(".csv")
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and set(rows[0]) != set(COLUMNS):
        raise ValueError(f"{path}: columns {sorted(rows[0])} are not the scorecard's {list(COLUMNS)}")
    return [Claim(**row) for row in rows]


def to_markdown(claims: Iterable[Claim]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| claim | source | paper | ours | evidence | test | rests on | notebook |",
             "|---|---|---|---|---|---|---|---|"]
    for c in claims:
        lines.append("| " + " | ".join(cell(v) for v in (c.statement, c.source, c.paper_verdict, f"**{c.verdict}**",
                                                          c.evidence, c.test, c.rests_on, c.notebook)) + " |")
    return "\n".join(lines) + "\n"


def write_claims(claims: Iterable[Claim], stem) -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` holding exactly ``claims``, in scorecard order."""
    ordered = sorted(claims, key=_sort_key)
    ids = [c.id for c in ordered]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate claim ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(c) for c in ordered)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    csv_path.write_text(buffer.getvalue(), encoding="utf-8")
    counts = {v: sum(c.verdict == v for c in ordered) for v in VERDICTS}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    md_path.write_text("# Claims scorecard\n\n" + f"{len(ordered)} claims: {summary}. Every verdict is computed by "
                       "the notebook named in its row from the tables it writes.\n\n" + to_markdown(ordered),
                       encoding="utf-8")
    return [csv_path, md_path]


def update_claims(claims: Iterable[Claim], stem=None) -> list[Path]:
    """Replace the rows of these claims' ids in the scorecard (default ``tables/claims``), keep the others."""
    if stem is None:
        from ..paths import tables_dir

        stem = tables_dir() / "claims"
    new = {c.id: c for c in claims}
    kept = [c for c in read_claims(stem) if c.id not in new]
    return write_claims(kept + list(new.values()), stem)
