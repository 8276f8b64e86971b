"""COD10K-like scenes: camouflaged animals wearing their background's own texture.

SAM relies on colour and texture discontinuities; a camouflaged animal has almost none. Here the
animal's skin is the backdrop itself, mirrored (same texture statistics, different local
pattern, no seams), shifted in colour by only a few percent, with a feathered outline and faint
shading as the only remaining cues.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uncertsam_utils.data.mini.common import (bbox_slices, composite, fractal_noise, integer,
                                              keep_large, soft_alpha, uniform)
from uncertsam_utils.data.mini.shapes import StrokeCanvas, blob
from uncertsam_utils.data.mini.textures import TEXTURE_PHOTOS, photo_crop, random_colour


@dataclass(frozen=True)
class CamouflageKnobs:
    objects: tuple[int, int] = (1, 2)                # camouflaged animals per image
    radius: tuple[float, float] = (0.1, 0.25)        # body radius as a share of the shorter side
    colour_shift: tuple[float, float] = (0.02, 0.07)  # RGB offset skin vs. backdrop: the main knob
    contrast_gain: tuple[float, float] = (0.85, 1.15)  # skin texture contrast relative to the backdrop
    edge_sigma: tuple[float, float] = (1.0, 3.0)     # feathering of the outline (px)
    shading: tuple[float, float] = (0.0, 0.08)       # darkening towards the rim: a faint 3-D cue
    appendage_prob: float = 0.5                       # chance of legs / tail / fins
    procedural_share: float = 0.4                     # backdrops from mottled noise instead of photos


def mottled_backdrop(rng, height, width) -> np.ndarray:
    """Natural mottling (leaf litter, sand, coral): 3-4 related colours blended by fractal noise."""
    base = random_colour(rng, saturation=(0.15, 0.45), value=(0.3, 0.8))
    tones = [np.clip(base * rng.uniform(0.6, 1.3, 3), 0, 1) for _ in range(integer(rng, (3, 4)))]
    out = np.zeros((height, width, 3), np.float32)
    weights = []
    scale = min(height, width) * rng.uniform(0.03, 0.1)
    for _ in tones:
        weights.append(np.exp(3.0 * fractal_noise(rng, height, width, scale, octaves=2)))
    total = np.sum(weights, axis=0)
    for w, tone in zip(weights, tones):
        out += (w / total)[..., None] * tone
    grain = 0.02 * rng.standard_normal((height, width, 1), dtype=np.float32)
    return np.clip(out + grain, 0, 1)


def animal_silhouette(rng, height, width, cy, cx, radius, appendage_prob) -> np.ndarray:
    body = blob(rng, height, width, cy, cx, radius, roughness=rng.uniform(0.1, 0.35),
                elongation=rng.uniform(1.2, 2.2))
    if rng.random() >= appendage_prob:
        return body
    canvas = StrokeCanvas(height, width)
    for _ in range(integer(rng, (2, 5))):  # legs, tail, fins: tapering strokes leaving the body
        angle = rng.uniform(0, 2 * np.pi)
        start = (cx + 0.6 * radius * np.cos(angle), cy + 0.6 * radius * np.sin(angle))
        mid = (start[0] + 0.7 * radius * np.cos(angle + rng.uniform(-0.5, 0.5)),
               start[1] + 0.7 * radius * np.sin(angle + rng.uniform(-0.5, 0.5)))
        end = (mid[0] + 0.5 * radius * np.cos(angle), mid[1] + 0.5 * radius * np.sin(angle))
        canvas.line([start, mid, end], max(2.0, radius * rng.uniform(0.08, 0.18)))
    return body | canvas.mask()


def render_camouflage_scene(rng: np.random.Generator, height: int, width: int,
                            knobs: CamouflageKnobs) -> tuple[np.ndarray, list[np.ndarray]]:
    if rng.random() < knobs.procedural_share:
        backdrop = mottled_backdrop(rng, height, width)
    else:
        backdrop = photo_crop(rng, height, width, names=TEXTURE_PHOTOS + ("coffee", "chelsea"),
                              zoom=(1.0, 2.5), jitter=0.5)
    # the skin: the backdrop mirrored, so texture and colours match but the pattern does not line up
    flip = int(rng.integers(3))
    skin_source = (backdrop[::-1], backdrop[:, ::-1], backdrop[::-1, ::-1])[flip]
    image = backdrop.copy()
    short = min(height, width)
    masks: list[np.ndarray] = []
    for k in range(integer(rng, knobs.objects)):
        radius = short * uniform(rng, knobs.radius)
        cy = rng.uniform(0.25, 0.75) * height
        cx = (k + rng.uniform(0.3, 0.7)) / max(1, knobs.objects[1]) * width
        shape = animal_silhouette(rng, height, width, cy, cx, radius, knobs.appendage_prob)
        ys, xs = bbox_slices(shape, 8)
        local = shape[ys, xs]
        skin = skin_source[ys, xs]
        mean = skin.reshape(-1, 3).mean(0)
        direction = rng.standard_normal(3).astype(np.float32)
        direction /= np.linalg.norm(direction)
        skin = mean + (skin - mean) * uniform(rng, knobs.contrast_gain) + direction * uniform(rng, knobs.colour_shift)
        rim = soft_alpha(local, max(1.0, radius * 0.3))  # 1 deep inside, falling towards the outline
        skin = skin * (1 - uniform(rng, knobs.shading) * (1 - rim))[..., None]
        alpha = soft_alpha(local, uniform(rng, knobs.edge_sigma))
        image[ys, xs] = composite(image[ys, xs], np.clip(skin, 0, 1), alpha)
        masks = [m & ~shape for m in masks]
        masks.append(shape)
    return np.clip(image, 0, 1), keep_large(masks)


COD_KNOBS = CamouflageKnobs()
