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

Each question (``QUESTIONS``) names its treatment, its ones-map control and the post-hoc baseline, and
the comparisons that answer it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
class Question:
    number: int
    claim_id: str
    slug: str  # file names: tables/09_q<number>_<slug>.*
    title: str
    statement: str  # the scorecard claim
    treatment: str
    control: str  # its ones-map control
    post_hoc: str  # the post-hoc baseline (the paper's fusion on the frozen model)
    extra: tuple[str, ...] = ()  # further methods of its table
    comparisons: tuple[tuple[str, str], ...] = field(default=())  # (a, b): a − b is reported

    @property
    def methods(self) -> list[str]:
        names = [self.treatment, self.control, self.post_hoc, "post-hoc-ones", *self.extra]
        return list(dict.fromkeys(names))


QUESTIONS: dict[str, Question] = {q.slug: q for q in (
    Question(1, "ours-q1-end-to-end", "end_to_end", "End-to-end uncertainty-aware training",
             "Training the mask decoder, a Laplace-style last layer and the fusion module together uses the "
             "uncertainty map better than post-hoc fusion on the frozen model (same data and budget)",
             "e2e-laplace", "e2e-ones", "post-hoc-laplace",
             comparisons=(("e2e-laplace", "e2e-ones"), ("e2e-laplace", "post-hoc-laplace"),
                          ("e2e-ones", "post-hoc-ones"), ("e2e-laplace", "baseline"))),
    Question(2, "ours-q2-cross-domain", "cross_domain", "Cross-domain exposure",
             "Training the fusion module on fit/train plus the eight domains' val splits improves it on the test "
             "domains over training on fit/train alone (same number of training images)",
             "exposure-laplace", "exposure-ones", "post-hoc-laplace", extra=("lodo-laplace",),
             comparisons=(("exposure-laplace", "exposure-ones"), ("exposure-laplace", "post-hoc-laplace"),
                          ("lodo-laplace", "post-hoc-laplace"), ("exposure-laplace", "lodo-laplace"))),
    Question(3, "ours-q3-spatial-context", "spatial_context", "Spatial context in the fusion module",
             "A fusion module with a receptive field (three dilated 3x3 convolutions) lets the uncertainty map "
             "contribute beyond the ones map, unlike the paper's 1x1 fusion",
             "dilated-laplace", "dilated-ones", "post-hoc-laplace",
             comparisons=(("dilated-laplace", "dilated-ones"), ("dilated-laplace", "post-hoc-laplace"),
                          ("post-hoc-laplace", "post-hoc-ones"))),
    Question(4, "ours-q4-combined-input", "combined_input", "Combined uncertainty as refinement input",
             "A combined uncertainty map (Laplace entropy with prompt perturbation's) fed to the fusion module "
             "refines better than the Laplace map alone and than the ones map",
             "combined-product", "post-hoc-ones", "post-hoc-laplace", extra=("combined-rank",),
             comparisons=(("combined-product", "post-hoc-ones"), ("combined-product", "post-hoc-laplace"),
                          ("combined-rank", "post-hoc-ones"), ("combined-rank", "post-hoc-laplace"))),
)}


def plan(questions: Iterable[str], seeds: Sequence[int], domains: Sequence[str]) -> list[Arm]:
    """Every arm the questions need, each once (the post-hoc arms serve every question), LODO arms one per
    domain and seed."""
    arms: dict[Arm, None] = {}
    for slug in questions:
        if slug not in QUESTIONS:
            raise KeyError(f"unknown question {slug!r}; choose from {list(QUESTIONS)}")
        for method in QUESTIONS[slug].methods:
            spec = METHODS[method]
            for seed in seeds:
                holds = list(domains) if spec.get("data") == "lodo" else [None]
                for hold_out in holds:
                    arms[Arm(method, seed=int(seed), hold_out=hold_out, **spec)] = None
    return list(arms)
