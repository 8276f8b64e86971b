"""ISTD- and SBU-like scenes: cast shadows on textured ground, the shadow being the target.

A shadow is not an object: it has no texture of its own (the ground continues through it), its
outline is a soft penumbra, and the object casting it is either partly in view (ISTD: the
occluder touches its shadow and is *not* part of the target) or out of view (SBU). Dark ground
patches that are not shadows act as distractors. Shadow instances are the connected components
of the shadow mask, as in the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uncertsam_utils.data.mini.common import (bbox_slices, components, fractal_noise, integer,
                                              soft_alpha, uniform)
from uncertsam_utils.data.mini.shapes import blob, fill_polygons, polygon_points
from uncertsam_utils.data.mini.textures import (SCENE_PHOTOS, TEXTURE_PHOTOS, photo_crop, random_colour,
                                                surface)


@dataclass(frozen=True)
class ShadowKnobs:
    occluder_in_view: bool = True                  # ISTD: the caster is partly visible; SBU: it is not
    shadows: tuple[int, int] = (1, 2)              # main cast shadows per image
    extra_blobs: tuple[int, int] = (0, 2)          # small shadows of out-of-view things
    shadow_gain: tuple[float, float] = (0.35, 0.65)  # light left inside the shadow (1 = invisible): main knob
    penumbra_px: tuple[float, float] = (1.5, 6.0)  # softness of the shadow outline
    colour_cast: tuple[float, float] = (0.0, 0.12)  # blue shift of shadowed light (sky fill)
    dark_distractors: tuple[int, int] = (0, 1)     # dark ground patches that are not shadows
    ground_zoom: tuple[float, float] = (1.0, 3.0)  # magnification of the ground texture


def ground(rng, height, width, zoom) -> np.ndarray:
    """Textured ground: paving, gravel, grass, asphalt or a zoomed photo surface, lit unevenly."""
    if rng.random() < 0.7:
        names = TEXTURE_PHOTOS + TEXTURE_PHOTOS + SCENE_PHOTOS[:4]  # mostly surfaces
        img = photo_crop(rng, height, width, names=names, zoom=zoom, jitter=0.4)
    else:
        base = random_colour(rng, saturation=(0.0, 0.35), value=(0.45, 0.85))
        img = surface(rng, ("blotches", "checks", "solid")[int(rng.integers(3))], height, width, base)
        img = img + 0.05 * fractal_noise(rng, height, width, 3.0, octaves=2)[..., None]
    # a little brighter than a random photo: shadows need light to take away
    yy = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None, None]
    light = 1.0 + rng.uniform(-0.15, 0.15) * yy
    return np.clip((0.25 + 0.8 * img) * light, 0, 1)


def _person(rng, bx, by, h):
    """Silhouette polygons of a standing person (head, torso, legs, an arm) with feet at (bx, by)."""
    w = h * rng.uniform(0.22, 0.3)
    head = polygon_points(rng, by - h * 0.91, bx, h * 0.075, 12, 0.05)
    torso = [(bx - w / 2, by - h * 0.82), (bx + w / 2, by - h * 0.82), (bx + w * 0.4, by - h * 0.45),
             (bx - w * 0.4, by - h * 0.45)]
    legs = [(bx - w * 0.4, by - h * 0.45), (bx - w * 0.05, by - h * 0.45), (bx - w * 0.15, by), (bx - w * 0.35, by)], \
           [(bx + w * 0.05, by - h * 0.45), (bx + w * 0.4, by - h * 0.45), (bx + w * 0.35, by), (bx + w * 0.15, by)]
    reach = rng.uniform(-0.6, 0.6) * h
    arm = [(bx + w / 2, by - h * 0.8), (bx + w / 2 + reach * 0.5, by - h * rng.uniform(0.5, 0.9)),
           (bx + w / 2 + reach * 0.5, by - h * rng.uniform(0.5, 0.9) + h * 0.05), (bx + w / 2, by - h * 0.72)]
    return [head, torso, *legs, arm]


def _pole(rng, bx, by, h):
    w = h * rng.uniform(0.03, 0.08)
    parts = [[(bx - w / 2, by), (bx + w / 2, by), (bx + w / 2, by - h), (bx - w / 2, by - h)]]
    if rng.random() < 0.5:  # a sign or lamp on top
        s = h * rng.uniform(0.15, 0.3)
        parts.append([(bx - s / 2, by - h), (bx + s / 2, by - h), (bx + s / 2, by - h - s * 0.7), (bx - s / 2, by - h - s * 0.7)])
    return parts


def _box(rng, bx, by, h):
    w = h * rng.uniform(0.6, 1.5)
    return [[(bx - w / 2, by), (bx + w / 2, by), (bx + w / 2, by - h), (bx - w / 2, by - h)]]


def _bush(rng, bx, by, h):
    return [polygon_points(rng, by - h * 0.5, bx, h * 0.5, 16, 0.3)]


CASTERS = {"person": _person, "pole": _pole, "box": _box, "bush": _bush}


def _project(polygons, bx, by, origin, axis, stretch):
    """Map caster polygons (drawn upright with their base at (bx, by)) onto the ground.

    A point at lateral offset ``x - bx`` and height ``z = by - y`` lands at
    ``origin + lateral * perp(axis) + z * stretch * axis``: the shadow with ``stretch`` ~ 1 along
    the light direction, the caster itself, seen from above, with a small negative ``stretch``.
    """
    ax, ay = axis
    px, py = -ay, ax
    ox, oy = origin
    return [[(ox + (x - bx) * px + (by - y) * stretch * ax, oy + (x - bx) * py + (by - y) * stretch * ay)
             for x, y in poly] for poly in polygons]


def _border_base(rng, height, width, outside: float):
    """A base point on (or ``outside`` times the size beyond) a random frame edge, and the
    direction pointing into the frame, slightly randomised."""
    side = int(rng.integers(4))
    t = rng.uniform(0.15, 0.85)
    margin = outside * min(height, width)
    base, inward = [((t * width, -margin), (0.0, 1.0)), ((width + margin, t * height), (-1.0, 0.0)),
                    ((t * width, height + margin), (0.0, -1.0)), ((-margin, t * height), (1.0, 0.0))][side]
    angle = np.arctan2(inward[1], inward[0]) + rng.uniform(-0.6, 0.6)
    return base, (float(np.cos(angle)), float(np.sin(angle)))


def _dappled(rng, height, width) -> np.ndarray:
    """Canopy shadow: a large region with sun flecks (holes) punched through it."""
    cy, cx = rng.uniform(0, 1) * height, rng.uniform(0, 1) * width
    region = blob(rng, height, width, cy, cx, min(height, width) * rng.uniform(0.3, 0.6), roughness=0.4)
    flecks = fractal_noise(rng, height, width, min(height, width) * 0.05, octaves=2) > rng.uniform(0.6, 1.2)
    return region & ~flecks


def _building(rng, height, width) -> np.ndarray:
    """A building edge's shadow: a large polygon entering from one side of the frame."""
    side = int(rng.integers(4))
    t0, t1 = sorted(rng.uniform(0, 1, 2))
    depth = rng.uniform(0.2, 0.5)
    pts = np.array([(t0, 0.0), (t1, 0.0), (t1 + rng.uniform(-0.2, 0.2), depth), (t0 + rng.uniform(-0.2, 0.2), depth * rng.uniform(0.6, 1.4))])
    if side % 2:
        pts = pts[:, ::-1]
    if side >= 2:
        pts = 1 - pts
    return fill_polygons(height, width, [[(x * width, y * height) for x, y in pts]])


def render_shadow_scene(rng: np.random.Generator, height: int, width: int,
                        knobs: ShadowKnobs) -> tuple[np.ndarray, list[np.ndarray]]:
    image = ground(rng, height, width, knobs.ground_zoom)
    for _ in range(integer(rng, knobs.dark_distractors)):  # dark paint, stains, puddles: not shadows
        patch = blob(rng, height, width, rng.uniform(0, height), rng.uniform(0, width),
                     min(height, width) * rng.uniform(0.05, 0.15), roughness=0.3)
        ys, xs = bbox_slices(patch, 3)
        image[ys, xs] *= (1 - rng.uniform(0.3, 0.5) * soft_alpha(patch[ys, xs], 0.8))[..., None]

    shadow = np.zeros((height, width), bool)
    occluders = []
    short = min(height, width)
    for _ in range(integer(rng, knobs.shadows)):
        kind = ("person", "pole", "box", "bush")[int(rng.integers(4))]
        polys = CASTERS[kind](rng, 0.0, 0.0, short * rng.uniform(0.35, 0.8))
        if knobs.occluder_in_view:
            # the caster stands at the frame edge; seen from above, only its foreshortened
            # foot region is in view, touching the shadow it throws into the frame
            origin, axis = _border_base(rng, height, width, outside=rng.uniform(-0.12, 0.02))
            shadow |= fill_polygons(height, width, _project(polys, 0.0, 0.0, origin, axis, rng.uniform(0.6, 1.3)))
            occluders.append(_project(polys, 0.0, 0.0, origin, axis, -rng.uniform(0.15, 0.4)))
        elif rng.random() < 0.35:
            shadow |= _dappled(rng, height, width)
        elif rng.random() < 0.5:
            shadow |= _building(rng, height, width)
        else:  # a caster just outside the frame: only its shadow enters
            origin, axis = _border_base(rng, height, width, outside=rng.uniform(0.0, 0.1))
            shadow |= fill_polygons(height, width, _project(polys, 0.0, 0.0, origin, axis, rng.uniform(0.8, 1.6)))
    for _ in range(integer(rng, knobs.extra_blobs)):
        shadow |= blob(rng, height, width, rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width,
                       min(height, width) * rng.uniform(0.03, 0.1), roughness=0.35)

    # darken with a soft penumbra and a bluish cast (the shadow is lit by the sky only)
    alpha = soft_alpha(shadow, uniform(rng, knobs.penumbra_px))
    cast = uniform(rng, knobs.colour_cast)
    tint = np.array([1 - cast, 1 - cast / 2, 1 + cast], np.float32)
    gain = 1 - (1 - uniform(rng, knobs.shadow_gain)) * alpha
    image = image * (gain[..., None] * (1 + (tint - 1) * alpha[..., None]))

    occluder_mask = np.zeros((height, width), bool)
    for polys in occluders:  # the casters, opaque and textured, partly out of frame
        m = fill_polygons(height, width, polys)
        if not m.any():
            continue
        ys, xs = bbox_slices(m, 2)
        tex = surface(rng, ("solid", "blotches", "stripes")[int(rng.integers(3))], ys.stop - ys.start,
                      xs.stop - xs.start, random_colour(rng, value=(0.1, 0.8)))
        a = soft_alpha(m[ys, xs], 0.6)[..., None]
        image[ys, xs] = image[ys, xs] * (1 - a) + tex * a
        occluder_mask |= m
    image = image + 0.01 * rng.standard_normal((height, width, 1), dtype=np.float32)
    target = (alpha > 0.5) & ~occluder_mask
    return np.clip(image, 0, 1), components(target)


ISTD_KNOBS = ShadowKnobs()
SBU_KNOBS = ShadowKnobs(occluder_in_view=False, shadows=(1, 2), extra_blobs=(0, 1),
                        shadow_gain=(0.3, 0.6), dark_distractors=(0, 2), ground_zoom=(0.6, 2.0))
