"""MSD-Spleen-like scenes: axial abdominal CT slices with the spleen as the target.

What makes CT hard for a model trained on natural images: no colour, soft-tissue organs only
a few tens of Hounsfield units apart (a few grey levels after the abdominal window), correlated
quantum noise, and the target touching organs of almost the same density. The slice is built
in HU, windowed like the real conversion (W400/L40) and stored as grey RGB, in a random
array orientation (the real slices were taken straight from the NIfTI arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uncertsam_utils.data.mini.common import blur, keep_large, smooth_noise, uniform
from uncertsam_utils.data.mini.shapes import blob, ellipse

AIR, FAT, FLUID, MUSCLE, BONE = -1000.0, -100.0, 10.0, 50.0, 700.0


@dataclass(frozen=True)
class CTKnobs:
    spleen_contrast_hu: tuple[float, float] = (10.0, 35.0)  # spleen minus surrounding soft tissue: main knob
    touch_prob: float = 0.6                 # chance an organ of near-spleen density touches it
    fat_plane_prob: float = 0.25            # chance the spleen keeps a fat plane around it (an easy edge)
    noise_hu: tuple[float, float] = (12.0, 28.0)  # std of the correlated quantum noise
    fat_fraction: tuple[float, float] = (0.15, 0.45)  # share of the abdomen filled with fat (fat planes help)
    spleen_size: tuple[float, float] = (0.06, 0.11)   # spleen radius as a share of the slice width
    window: tuple[float, float] = (40.0, 400.0)       # display window (level, width) in HU
    blur_px: tuple[float, float] = (0.5, 1.2)         # reconstruction kernel softness


def _body_frame(height, width, rng):
    cy, cx = height * rng.uniform(0.48, 0.55), width * rng.uniform(0.47, 0.53)
    ax, ay = width * rng.uniform(0.38, 0.46), height * rng.uniform(0.28, 0.36)
    return cy, cx, ay, ax


def render_ct_slice(rng: np.random.Generator, height: int, width: int,
                    knobs: CTKnobs) -> tuple[np.ndarray, list[np.ndarray]]:
    hu = np.full((height, width), AIR, np.float32)
    cy, cx, ay, ax = _body_frame(height, width, rng)
    at = lambda u, v: (cy + v * ay, cx + u * ax)  # body coordinates: u right (image), v posterior

    # body: skin/muscle wall, subcutaneous fat ring, abdomen filled with bowel and fat
    body = blob(rng, height, width, cy, cx, ax, roughness=0.05, elongation=1.0) & \
        ellipse(height, width, cy, cx, ay * 1.05, ax * 1.05)
    body = ellipse(height, width, cy, cx, ay, ax) | (body & ellipse(height, width, cy, cx, ay * 1.02, ax * 1.02))
    hu[body] = FAT
    wall = ellipse(height, width, cy, cx, ay * 0.9, ax * 0.92)
    hu[wall] = MUSCLE
    cavity = ellipse(height, width, cy, cx, ay * 0.82, ax * 0.85)
    filler = smooth_noise(rng, height, width, width * 0.04)
    fat_cut = np.quantile(filler[cavity], uniform(rng, knobs.fat_fraction))
    hu[cavity] = np.where(filler[cavity] < fat_cut, FAT, 35.0 + 10.0 * filler[cavity])

    # organs; the spleen's density is set relative to the tissue around it
    tissue = MUSCLE + rng.uniform(-5, 10)
    spleen_hu = tissue + uniform(rng, knobs.spleen_contrast_hu) * rng.choice([-1.0, 1.0], p=[0.3, 0.7])
    liver = blob(rng, height, width, *at(-0.45, -0.05), ax * rng.uniform(0.4, 0.5),
                 roughness=0.15, elongation=1.3) & cavity
    hu[liver] = tissue + rng.uniform(5, 20)
    for side in (-1, 1):  # kidneys
        if rng.random() < 0.7:
            k = ellipse(height, width, *at(0.38 * side, 0.5), ay * 0.16, ax * 0.1, rng.uniform(-0.5, 0.5))
            hu[k] = rng.uniform(120, 180)
    hu[ellipse(height, width, *at(-0.05, 0.35), ax * 0.05, ax * 0.05)] = rng.uniform(120, 200)  # aorta
    vertebra = ellipse(height, width, *at(0.0, 0.62), ay * 0.16, ax * 0.12)
    hu[vertebra] = BONE * 0.6
    hu[vertebra & ~ellipse(height, width, *at(0.0, 0.62), ay * 0.12, ax * 0.09)] = BONE
    hu[ellipse(height, width, *at(0.0, 0.86), ay * 0.06, ax * 0.05)] = BONE  # spinous process
    for angle in rng.uniform(-0.2, 1.0, 6) * np.pi:  # ribs cut across, on the posterior-lateral wall
        rib_cy, rib_cx = at(0.86 * np.cos(angle), 0.86 * np.sin(angle))
        hu[ellipse(height, width, rib_cy, rib_cx, ax * 0.03, ax * 0.045, angle)] = BONE * 0.8

    # the spleen: posterolateral on the image right, a crescent hugging the wall
    size = width * uniform(rng, knobs.spleen_size)
    sy, sx = at(rng.uniform(0.55, 0.7), rng.uniform(0.05, 0.35))
    spleen = blob(rng, height, width, sy, sx, size, roughness=0.2, elongation=rng.uniform(1.3, 2.0))
    # the concave hilum faces the body centre: bite the medial side
    toward = np.array([cy - sy, cx - sx]) / max(float(np.hypot(cy - sy, cx - sx)), 1e-6)
    notch = ellipse(height, width, sy + toward[0] * size * 1.1, sx + toward[1] * size * 1.1, size * 0.6, size * 0.6)
    spleen &= ~notch & cavity
    if rng.random() >= knobs.fat_plane_prob:  # packed against wall and organs: soft tissue all around
        bed = blob(rng, height, width, sy, sx, size * 1.8, roughness=0.2) & cavity
        hu[bed & (hu < 0)] = tissue + rng.uniform(-10, 10)
    if rng.random() < knobs.touch_prob:  # stomach wall / liver tip of almost the same density
        neighbour = blob(rng, height, width, sy - size * 0.9, sx - size * 1.0, size * rng.uniform(0.6, 1.0),
                         roughness=0.2) & cavity & ~spleen
        hu[neighbour] = spleen_hu + rng.uniform(-10, 10)
    if rng.random() < 0.5:  # stomach gas bubble nearby
        hu[ellipse(height, width, sy - size * 1.6, sx - size * 1.4, size * 0.3, size * 0.5) & cavity] = AIR
    hu[spleen] = spleen_hu + 8.0 * smooth_noise(rng, height, width, size * 0.5)[spleen]
    hu[ellipse(height, width, *at(0.0, 1.28), ay * 0.06, ax * 1.1) & ~body] = 200.0  # scanner table

    # acquisition: a soft reconstruction kernel and correlated noise
    hu = blur(hu, uniform(rng, knobs.blur_px))
    noise = uniform(rng, knobs.noise_hu)
    hu += noise * (0.6 * smooth_noise(rng, height, width, 2.0) + 0.8 * rng.standard_normal(hu.shape, dtype=np.float32))
    level, width_hu = knobs.window
    grey = np.clip((hu - (level - width_hu / 2)) / width_hu, 0, 1)

    # the array orientation of a NIfTI slice: any rotation/flip
    k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
    k = k if height == width else 2 * (k % 2)  # keep the requested shape
    orient = lambda a: np.rot90(a[:, ::-1] if flip else a, k)
    grey, spleen = np.ascontiguousarray(orient(grey)), np.ascontiguousarray(orient(spleen))
    return np.repeat(grey[..., None], 3, axis=2), keep_large([spleen])


MSD_KNOBS = CTKnobs()
