"""Names of a method trained with several seeds: ``<method>.s<seed>`` (``fusion-laplace.s1``, ``varnet.s2``).

A method trained once keeps its plain name (the reference seed: the paper's claims and the
per-dataset tables read it); its other seeds are evaluated beside it under seeded names, so one
evaluation holds every seed and the spread over seeds is computed from its rows.
"""

from __future__ import annotations

import re
from typing import Sequence

_SEEDED = re.compile(r"^(?P<method>.+)\.s(?P<seed>\d+)$")


def seeded_name(method: str, seed: int) -> str:
    return f"{method}.s{int(seed)}"


def split_seeded(name: str) -> tuple[str, int | None]:
    """(method, seed) of a seeded name; (name, None) for a plain one."""
    match = _SEEDED.match(name)
    return (match["method"], int(match["seed"])) if match else (name, None)


def seed_names(method: str, seeds: Sequence[int], *, plain_seed: int | None = None) -> dict[int, str]:
    """{seed: evaluated name}: ``plain_seed``'s under the plain name, the others seeded."""
    return {int(s): method if plain_seed is not None and int(s) == int(plain_seed) else seeded_name(method, s)
            for s in seeds}


__all__ = ["seed_names", "seeded_name", "split_seeded"]
