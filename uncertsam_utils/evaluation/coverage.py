"""What a summary covers: every requested dataset scored by every method, or an error.

``check_coverage`` runs before a notebook summarises its evaluation. A dataset mean over fewer
datasets than requested (the benchmark's eight, by default) is an error naming each (dataset,
method) without a scored mask, unless ``allow_missing_datasets``; then ``Coverage.note`` says over
which datasets the means are and what is missing, and the notebook adds it to its tables' notes.
The methods ``build_available`` left out (``allow_missing_methods``) are named in the same note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np


class CoverageError(ValueError):
    """A summary would average over fewer datasets (or methods) than requested."""


@dataclass
class Coverage:
    requested: list[str]  # datasets the means should be over
    missing: dict[str, list[str]]  # dataset -> methods without a scored mask there (all methods: no rows)
    methods: list[str]
    left_out: dict[str, str] = field(default_factory=dict)  # method -> why it was not built

    @property
    def complete(self) -> list[str]:
        """The requested datasets every method scored."""
        return [d for d in self.requested if d not in self.missing]

    @property
    def note(self) -> str:
        """A sentence for the tables' notes ("" when nothing is missing and no method was left out)."""
        parts = []
        if self.missing:
            what = "; ".join(f"{d}: no scored mask for {', '.join(m) if len(m) < len(self.methods) else 'any method'}"
                             for d, m in self.missing.items())
            parts.append(f"Dataset means over {len(self.requested) - len(self.missing)} of the {len(self.requested)} "
                         f"requested datasets ({what}; allowed by allow_missing_datasets).")
        if self.left_out:
            parts.append("Left out, allowed by allow_missing_methods: "
                         + "; ".join(f"{m} ({why})" for m, why in self.left_out.items()) + ".")
        return "".join(" " + p for p in parts)


def check_coverage(results, methods: Sequence[str], *, requested: Sequence[str] | None = None, metric: str = "IoU",
                   allow_missing_datasets: bool = False, left_out: Mapping[str, str] | None = None) -> Coverage:
    """Check that each of ``methods`` has at least one finite ``metric`` value (a scored mask) on each
    ``requested`` dataset (default: the benchmark's eight) in ``results`` (``load_results``).

    Raises ``CoverageError`` naming every gap unless ``allow_missing_datasets``; returns the
    ``Coverage`` whose ``note`` the tables carry."""
    from ..data.names import DATASETS

    requested = list(DATASETS if requested is None else requested)
    methods = list(methods)
    finite = results[np.isfinite(results[metric].to_numpy(dtype=np.float64))]
    scored = set(zip(finite["dataset"], finite["method"]))
    missing = {d: [m for m in methods if (d, m) not in scored] for d in requested}
    missing = {d: ms for d, ms in missing.items() if ms}
    coverage = Coverage(requested, missing, methods, dict(left_out or {}))
    if missing and not allow_missing_datasets:
        gaps = "\n".join(f"  {d}: no scored mask for {', '.join(ms)}" for d, ms in missing.items())
        raise CoverageError(f"the dataset means would be over {len(coverage.complete)} of the {len(requested)} "
                            f"requested datasets:\n{gaps}\nevaluate the missing data, or pass "
                            "allow_missing_datasets=True to summarise without it (the tables then say so)")
    return coverage
