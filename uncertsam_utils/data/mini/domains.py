"""The registry of UncertSAM-mini: the fit set and the eight test domains, with their knobs.

Each :class:`DomainSpec` names a renderer, its difficulty knobs (a frozen dataclass whose fields
are commented in the renderer's module) and the image sizes, chosen to resemble the real
dataset's resolutions (the model squashes every image to its square input anyway). Tuning a
domain means replacing knobs: ``DOMAINS["ISTD"].with_knobs(shadow_gain=(0.6, 0.8))``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from uncertsam_utils.data.mini.camouflage import COD_KNOBS, render_camouflage_scene
from uncertsam_utils.data.mini.common import image_rng, survives_squash, to_uint8
from uncertsam_utils.data.mini.ct import MSD_KNOBS, render_ct_slice
from uncertsam_utils.data.mini.fit import FIT_SIZE, FitKnobs, render_fit_scene
from uncertsam_utils.data.mini.flare import FLARE_KNOBS, render_flare_scene
from uncertsam_utils.data.mini.glass import TRANS10K_KNOBS, render_glass_scene
from uncertsam_utils.data.mini.shadows import ISTD_KNOBS, SBU_KNOBS, render_shadow_scene
from uncertsam_utils.data.mini.thin import BIG_KNOBS, COIFT_KNOBS, render_thin_scene

Renderer = Callable[[np.random.Generator, int, int, Any], "tuple[np.ndarray, list[np.ndarray]]"]

FIT_NAME = "fit"


@dataclass(frozen=True)
class DomainSpec:
    name: str                            # folder name in the published layout
    render: Renderer                     # (rng, height, width, knobs) -> (float image, masks)
    knobs: Any                           # frozen dataclass of difficulty knobs
    sizes: tuple[tuple[int, int], ...]   # (height, width) choices
    hard_because: str                    # one line: what makes the real dataset hard for SAM

    def with_knobs(self, **changes) -> "DomainSpec":
        return dataclasses.replace(self, knobs=dataclasses.replace(self.knobs, **changes))


FIT_SPEC = DomainSpec(FIT_NAME, render_fit_scene, FitKnobs(), ((FIT_SIZE, FIT_SIZE),),
                      "the training domain: ordinary opaque objects with clear colour/texture edges (SA-1B analogue)")

# In the order of layout.DATASETS.
DOMAINS: dict[str, DomainSpec] = {spec.name: spec for spec in (
    DomainSpec("BIG", render_thin_scene, BIG_KNOBS, ((768, 1024), (1024, 768), (683, 1024), (720, 960)),
               "thin structures (spokes, branches, lattices) at high resolution, lost in the squash"),
    DomainSpec("COIFT", render_thin_scene, COIFT_KNOBS, ((480, 640), (640, 480), (427, 640), (480, 480)),
               "fine, intricate boundaries: legs, stems, antennae, hair-like fringes"),
    DomainSpec("COD10K-v3", render_camouflage_scene, COD_KNOBS, ((384, 512), (512, 384), (360, 480), (448, 448)),
               "camouflage: the target wears the background's texture and colours"),
    DomainSpec("MSD_Spleen", render_ct_slice, MSD_KNOBS, ((512, 512), (448, 448), (384, 384)),
               "grey CT: low soft-tissue contrast, noise, organs of equal density touching"),
    DomainSpec("ISTD", render_shadow_scene, ISTD_KNOBS, ((480, 640),),
               "the target is a shadow: no texture of its own, soft penumbra, caster excluded"),
    DomainSpec("SBU-shadow", render_shadow_scene, SBU_KNOBS, ((400, 560), (448, 600), (512, 512), (384, 512)),
               "shadows of unseen casters on varied ground, dark distractor patches"),
    DomainSpec("Flare7K", render_flare_scene, FLARE_KNOBS, ((512, 512),),
               "glare, streaks and sources: edgeless light whose extent is a threshold convention"),
    DomainSpec("Trans10K", render_glass_scene, TRANS10K_KNOBS, ((384, 512), (512, 384), (360, 480), (480, 480)),
               "transparent objects: the background shows through, only rims and highlights remain"),
)}


def spec_for(name: str) -> DomainSpec:
    if name == FIT_NAME:
        return FIT_SPEC
    try:
        return DOMAINS[name]
    except KeyError:
        raise KeyError(f"unknown UncertSAM-mini dataset {name!r}; expected {FIT_NAME!r} or one of {list(DOMAINS)}") from None


def render_item(spec: DomainSpec, seed: int, split: str, index: int,
                max_tries: int = 25) -> tuple[int, np.ndarray, list[np.ndarray]]:
    """Image ``index`` of ``spec``'s ``split``: ``(image_id, HxWx3 uint8, [HxW bool masks])``.

    Targets must have ``MIN_MASK_PIXELS`` (the renderers see to it) and survive the squash to
    ``MODEL_SIZE`` (checked here). A scene left without targets is redrawn from the same
    generator, so the result still depends on (seed, dataset, split, index) alone.
    """
    rng = image_rng(seed, spec.name, split, index)
    height, width = spec.sizes[int(rng.integers(len(spec.sizes)))]
    for _ in range(max_tries):
        image, masks = spec.render(rng, height, width, spec.knobs)
        masks = [m for m in masks if survives_squash(m)]
        if masks:
            return index, to_uint8(image), masks
    raise RuntimeError(f"{spec.name}/{split}/{index}: no instance after {max_tries} draws; check the knobs")
