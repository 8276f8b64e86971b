"""Flare7K-like scenes: lens flare on night scenes; glare, streaks and light sources are targets.

Flare components have no edges at all: a glare halo fades smoothly into the dark scene, so its
annotated extent (an intensity threshold in Flare7K++) is a convention invisible to an edge-
driven model; streaks are thin and long; the saturated source is tiny. As in the benchmark's
test masks, the targets are split by class (light source > streak > glare) and then into
connected components, so a streak cuts the glare into halves and the source cuts the streak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uncertsam_utils.data.mini.common import components, integer, resize, uniform
from uncertsam_utils.data.mini.shapes import ellipse
from uncertsam_utils.data.mini.textures import SCENE_PHOTOS, TEXTURE_PHOTOS, photo_crop, random_colour


@dataclass(frozen=True)
class FlareKnobs:
    flares: tuple[int, int] = (1, 2)                 # bright light sources with flare per image
    source_radius: tuple[float, float] = (6.0, 14.0)  # saturated core radius (px)
    glare_radius: tuple[float, float] = (0.08, 0.2)  # glare halo scale as a share of the image size
    glare_threshold: float = 0.3                     # the halo's annotated edge, as a share of its peak: main knob
    streaks: tuple[int, int] = (1, 2)                # streaks through each source (a star for > 1)
    streak_width: tuple[float, float] = (2.0, 5.0)   # streak half-width (px)
    streak_length: tuple[float, float] = (0.25, 0.6)  # streak half-length as a share of the image size
    shimmer: tuple[float, float] = (0.0, 0.4)        # radial ray modulation of the glare
    ghosts: tuple[int, int] = (0, 4)                 # unannotated reflection ghosts (distractors)
    night_gain: tuple[float, float] = (0.08, 0.3)    # brightness of the night scene


def night_scene(rng, height, width, gain) -> np.ndarray:
    """A dark, blue-ish, low-contrast version of a photo, with a few dim windows and lamps."""
    img = photo_crop(rng, height, width, names=SCENE_PHOTOS + TEXTURE_PHOTOS, zoom=(0.6, 1.5), jitter=0.3)
    img = img ** rng.uniform(1.3, 2.2) * gain * np.array([0.8, 0.9, 1.2], np.float32)
    for _ in range(integer(rng, (0, 6))):  # small lit windows: bright but without flare
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(1.5, 4.0)
        add_spot(img, cy, cx, 3 * r, lambda d: 0.4 * np.exp(-d * d / (2 * r * r)), random_colour(rng, value=(0.8, 1)))
    return img


def add_spot(canvas: np.ndarray, cy: float, cx: float, reach: float, profile, colour) -> None:
    """Add ``profile(distance) * colour`` to ``canvas`` within ``reach`` of (cy, cx), in place.

    Evaluated on the spot's window only: small lights on a large frame stay cheap.
    """
    h, w = canvas.shape[:2]
    y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 2)
    x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 2)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] += profile(np.hypot(yy - cy, xx - cx))[..., None] * colour


def render_flare_scene(rng: np.random.Generator, height: int, width: int,
                       knobs: FlareKnobs) -> tuple[np.ndarray, list[np.ndarray]]:
    image = night_scene(rng, height, width, uniform(rng, knobs.night_gain))
    size = float(min(height, width))
    # Glare and streaks are smooth fields: evaluate them on a half-resolution grid (4x cheaper)
    # and upsample; the tiny source disc is drawn at full resolution.
    hh, hw = (height + 1) // 2, (width + 1) // 2
    yy, xx = np.mgrid[0:hh, 0:hw].astype(np.float32) * 2.0 + 0.5
    full = lambda field: resize(field, height, width)
    light_half = np.zeros((hh, hw, 3), np.float32)
    light = np.zeros((height, width, 3), np.float32)
    source_mask = np.zeros((height, width), bool)
    streak_mask = np.zeros((height, width), bool)
    glare_mask = np.zeros((height, width), bool)
    for _ in range(integer(rng, knobs.flares)):
        cy, cx = rng.uniform(0.15, 0.85) * height, rng.uniform(0.15, 0.85) * width
        dy, dx = yy - cy, xx - cx
        dist = np.hypot(dy, dx)
        theta = np.arctan2(dy, dx)
        colour = random_colour(rng, saturation=(0.1, 0.6), value=(0.9, 1.0))

        # glare: a smooth halo with optional shimmer rays; annotated where it exceeds the threshold
        rg = size * uniform(rng, knobs.glare_radius)
        rays = 1 + uniform(rng, knobs.shimmer) * np.cos(integer(rng, (6, 14)) * theta + rng.uniform(0, 6.3)) \
            * np.clip(dist / rg, 0, 1)
        glare = np.exp(-(dist / (rg * rays + 1e-3)) ** rng.uniform(1.2, 2.0))
        light_half += (rng.uniform(0.6, 1.0) * glare)[..., None] * colour
        glare_mask |= full(glare) > knobs.glare_threshold

        # streaks: thin bright lines through the source
        for _ in range(integer(rng, knobs.streaks)):
            angle = rng.uniform(0, np.pi)
            along = dx * np.cos(angle) + dy * np.sin(angle)
            across = -dx * np.sin(angle) + dy * np.cos(angle)
            half_width = uniform(rng, knobs.streak_width)
            half_len = size * uniform(rng, knobs.streak_length)
            streak = np.exp(-(across / half_width) ** 2 - (along / half_len) ** 2)
            light_half += (rng.uniform(0.5, 0.9) * streak)[..., None] * np.clip(colour * 1.2, 0, 1)
            streak_mask |= full(streak) > 0.35

        # the light source: a saturated, slightly soft disc
        rs = uniform(rng, knobs.source_radius)
        add_spot(light, cy, cx, rs + 2, lambda d: 1.5 * np.clip((rs + 1.5 - d) / 1.5, 0, 1), np.ones(3, np.float32))
        source_mask |= ellipse(height, width, cy, cx, rs, rs)

        # ghosts: faint discs mirrored through the image centre (reflective flare), not targets
        for _ in range(integer(rng, knobs.ghosts)):
            t = rng.uniform(-1.2, -0.2)
            gy, gx = height / 2 + t * (cy - height / 2), width / 2 + t * (cx - width / 2)
            gr = size * rng.uniform(0.01, 0.05)
            strength = rng.uniform(0.05, 0.15)
            add_spot(light, gy, gx, gr + 2, lambda d: strength * np.clip((gr - d) / 2.0, 0, 1), random_colour(rng))

    # add light (sensor response saturates smoothly) and a little noise
    light += full(light_half)
    image = 1 - (1 - np.clip(image, 0, 1)) * np.exp(-light)
    image = image + 0.01 * rng.standard_normal((height, width, 1), dtype=np.float32)
    # class precedence of the Flare7K++ masks: source over streak over glare
    streak_only = streak_mask & ~source_mask
    glare_only = glare_mask & ~streak_mask & ~source_mask
    targets = components(source_mask) + components(streak_only) + components(glare_only)
    return np.clip(image, 0, 1), targets


FLARE_KNOBS = FlareKnobs()
