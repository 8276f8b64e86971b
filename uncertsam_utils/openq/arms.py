"""What notebook 09 trains and compares: one ``Arm`` per module and seed, grouped into methods and questions.

Every arm is a refinement module of the two-pass scheme (``refine/passes.py``) trained with one recipe
(``pool.ArmRecipe``: the box regime of Table 1, the same images, epochs and seeds) and differing from
its neighbours in one factor only:

| method | what changes (against ``post-hoc-laplace``: the paper's 1×1 fusion, SAM-2 frozen, fit/train) |
|---|---|
| ``post-hoc-ones`` | the all-ones map instead of the Laplace entropy (the paper's ablation) |
| ``e2e-laplace`` / ``e2e-ones`` | the mask decoder and a learned last-layer variance trained with the fusion module |
| ``exposure-laplace`` / ``exposure-ones`` | the training images include the eight domains' ``val`` splits |
| ``lodo-laplace`` | ... all domains' ``val`` but the held-out one, scored on that domain only |
| ``dilated-laplace`` / ``dilated-ones`` | a fusion module with a 15×15 receptive field (``refine/spatial.py``) |
| ``combined-product`` / ``combined-rank`` | a combined map (Laplace entropy with prompt perturbation's) |

Each question needs the methods of ``QUESTION_METHODS``; what it compares and claims is in
``analysis.open_questions.QUESTIONS`` (reporting only: editing a sentence there does not invalidate a cached arm).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

KINDS = ("post-hoc", "end-to-end")
DATA = ("fit", "exposure", "lodo")
ARM_MAPS = ("laplace", "ones", "combined-product", "combined-rank")


@dataclass(frozen=True)
class Arm:
    method: str  # the row it belongs to, e.g. "e2e-laplace"
    kind: str = "post-hoc"
    architecture: str = "1x1"  # refine.spatial.ARCHITECTURES
    map: str = "laplace"  # ARM_MAPS: the map fed to the fusion module (the first pass is always Laplace)
    data: str = "fit"  # DATA
    hold_out: str | None = None  # lodo: the domain left out of training (and the only one scored)
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS or self.data not in DATA or self.map not in ARM_MAPS:
            raise ValueError(f"bad arm {self}")
        if (self.data == "lodo") != (self.hold_out is not None):
            raise ValueError(f"a lodo arm needs a held-out domain, other arms none: {self}")
        if self.kind == "end-to-end" and (self.architecture != "1x1" or self.map not in ("laplace", "ones")):
            raise ValueError(f"end-to-end arms train the 1x1 module with the laplace or ones map: {self}")

    @property
    def label(self) -> str:
        return f"{self.method}{'/' + self.hold_out if self.hold_out else ''} seed {self.seed}"

    def key(self) -> dict:
        return asdict(self)


METHODS: dict[str, dict] = {
    "post-hoc-laplace": {},
    "post-hoc-ones": {"map": "ones"},
    "e2e-laplace": {"kind": "end-to-end"},
    "e2e-ones": {"kind": "end-to-end", "map": "ones"},
    "exposure-laplace": {"data": "exposure"},
    "exposure-ones": {"data": "exposure", "map": "ones"},
    "lodo-laplace": {"data": "lodo"},
    "dilated-laplace": {"architecture": "dilated"},
    "dilated-ones": {"architecture": "dilated", "map": "ones"},
    "combined-product": {"map": "combined-product"},
    "combined-rank": {"map": "combined-rank"},
}
REFERENCES = ("baseline", "mask-prompt", "untrained")  # untrained: every exact-init module (mask-prompt of the Laplace pass)


# The methods each question needs (its treatment, ones-map control, the post-hoc baseline and its
# control, and any further arm); what each question compares and claims is ``analysis.open_questions.QUESTIONS``'.
QUESTION_METHODS: dict[str, tuple[str, ...]] = {
    "end_to_end": ("e2e-laplace", "e2e-ones", "post-hoc-laplace", "post-hoc-ones"),
    "cross_domain": ("exposure-laplace", "exposure-ones", "post-hoc-laplace", "post-hoc-ones", "lodo-laplace"),
    "spatial_context": ("dilated-laplace", "dilated-ones", "post-hoc-laplace", "post-hoc-ones"),
    "combined_input": ("combined-product", "combined-rank", "post-hoc-laplace", "post-hoc-ones"),
}


def plan(questions: Iterable[str], seeds: Sequence[int], domains: Sequence[str]) -> list[Arm]:
    """Every arm the questions need, each once (the post-hoc arms serve every question), LODO arms one per
    domain and seed."""
    arms: dict[Arm, None] = {}
    for slug in questions:
        if slug not in QUESTION_METHODS:
            raise KeyError(f"unknown question {slug!r}; choose from {list(QUESTION_METHODS)}")
        for method in QUESTION_METHODS[slug]:
            spec = METHODS[method]
            for seed in seeds:
                holds = list(domains) if spec.get("data") == "lodo" else [None]
                for hold_out in holds:
                    arms[Arm(method, seed=int(seed), hold_out=hold_out, **spec)] = None
    return list(arms)
