"""Trans10K-like scenes: transparent glasses, bottles, bowls and panes are the targets.

A transparent object shows the background through itself: inside the mask the pixels are the
scene behind, displaced and magnified (or inverted) by refraction, with a faint tint. Only thin
bright rims and specular highlights betray its outline, which defeats a model that segments by
colour and texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from uncertsam_utils.data.mini.common import bbox_slices, composite, integer, keep_large, soft_alpha, uniform
from uncertsam_utils.data.mini.shapes import fill_polygons
from uncertsam_utils.data.mini.textures import SCENE_PHOTOS, TEXTURE_PHOTOS, photo_crop, random_colour


@dataclass(frozen=True)
class GlassKnobs:
    objects: tuple[int, int] = (1, 3)               # transparent objects per image
    height_share: tuple[float, float] = (0.3, 0.7)  # object height as a share of the image height
    magnification: tuple[float, float] = (-0.7, 0.9)  # background scale seen through the body (< 0: inverted)
    refraction_px: tuple[float, float] = (2.0, 10.0)  # extra displacement towards the rims
    tint: tuple[float, float] = (0.02, 0.12)        # mix towards the glass colour: main knob (visibility)
    rim_strength: tuple[float, float] = (0.08, 0.35)  # brightness of the thin rim lines
    rim_px: tuple[float, float] = (1.0, 2.5)        # rim line width
    highlight: tuple[float, float] = (0.1, 0.45)    # specular stripe brightness
    pane_prob: float = 0.15                         # chance of a window pane ("stuff") as an extra target


def _profile(kind: str, rng, t: np.ndarray) -> np.ndarray:
    """Half-width (as a share of the object's height) along the height, t = 0 top .. 1 bottom."""
    if kind == "tumbler":
        top, bottom = rng.uniform(0.2, 0.35), rng.uniform(0.15, 0.3)
        return top + (bottom - top) * t
    if kind == "bottle":
        neck, body, shoulder = rng.uniform(0.05, 0.08), rng.uniform(0.15, 0.25), rng.uniform(0.25, 0.4)
        s = np.clip((t - shoulder + 0.1) / 0.15, 0, 1)
        return neck + (body - neck) * (3 * s ** 2 - 2 * s ** 3)
    if kind == "wineglass":
        bowl = rng.uniform(0.2, 0.3)
        w = np.where(t < 0.5, bowl * np.sqrt(np.clip(1 - ((t - 0.15) / 0.37) ** 2, 0.02, 1)), 0.025)
        return np.where(t > 0.93, bowl * 0.8, w)  # stem, then the foot
    if kind == "bowl":
        return rng.uniform(0.4, 0.6) * np.sqrt(np.clip(1 - t ** 2, 0.0, 1))
    return np.full_like(t, rng.uniform(0.15, 0.3))  # jar


KINDS = ("tumbler", "bottle", "wineglass", "bowl", "jar")


def glass_outline(rng, kind, cy, cx, h) -> list[tuple[float, float]]:
    t = np.linspace(0, 1, 48)
    half = _profile(kind, rng, t) * h
    if kind == "bowl":
        h *= 0.45
    ys = cy - h / 2 + t * h
    right = list(zip((cx + half).tolist(), ys.tolist()))
    left = list(zip((cx - half).tolist(), ys.tolist()))[::-1]
    return right + left


def render_glass(image: np.ndarray, shape: np.ndarray, rng, knobs: GlassKnobs) -> None:
    """Render a transparent body over ``image`` inside ``shape`` (in place, on its window)."""
    ys, xs = bbox_slices(shape, 4)
    local = shape[ys, xs]
    win = image[ys, xs]
    h, w = local.shape
    inside = ndimage.distance_transform_edt(local)
    thickness = max(float(inside.max()), 1.0)
    # refraction: a cylinder magnifies (or inverts) the background about its axis and bends it
    # strongly near the rims, where the glass surface is steep
    col_has = local.any(axis=0)
    axis_x = float(np.mean(np.flatnonzero(col_has))) if col_has.any() else w / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    steep = np.clip(1 - inside / thickness, 0, 1) ** 2
    gy, gx = np.gradient(steep)
    m = uniform(rng, knobs.magnification)
    k = uniform(rng, knobs.refraction_px)
    src_x = axis_x + m * (xx - axis_x) + k * gx * thickness
    src_y = yy + 0.3 * k * gy * thickness
    seen = np.stack([ndimage.map_coordinates(win[..., c], [src_y, src_x], order=1, mode="reflect")
                     for c in range(3)], axis=-1)
    # faint tint and absorption, then bright rims and specular stripes
    tint = uniform(rng, knobs.tint)
    glass_colour = random_colour(rng, saturation=(0.0, 0.4), value=(0.7, 1.0))
    body = seen * (1 - tint) + glass_colour * tint
    rim = np.exp(-np.maximum(inside - 1, 0) / uniform(rng, knobs.rim_px)) * local
    body = body + uniform(rng, knobs.rim_strength) * rim[..., None]
    centre = axis_x + rng.uniform(-0.5, -0.2) * w / 2
    stripe_w = max(1.5, w * rng.uniform(0.02, 0.06))
    stripe = np.exp(-((xx - centre) / stripe_w) ** 2) * np.clip(inside / 3, 0, 1)
    body = body + uniform(rng, knobs.highlight) * stripe[..., None]
    win[:] = composite(win, np.clip(body, 0, 1), soft_alpha(local, 0.6))


def render_glass_scene(rng: np.random.Generator, height: int, width: int,
                       knobs: GlassKnobs) -> tuple[np.ndarray, list[np.ndarray]]:
    image = photo_crop(rng, height, width, names=SCENE_PHOTOS + TEXTURE_PHOTOS, zoom=(0.7, 2.0), jitter=0.4)
    occupied = np.zeros((height, width), bool)
    masks = []
    if rng.random() < knobs.pane_prob:  # a window pane: a large framed rectangle ("stuff")
        y0, x0 = rng.uniform(0.0, 0.3) * height, rng.uniform(0.0, 0.5) * width
        y1, x1 = y0 + rng.uniform(0.4, 0.7) * height, x0 + rng.uniform(0.3, 0.5) * width
        pane = fill_polygons(height, width, [[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]])
        render_glass(image, pane, rng, GlassKnobs(magnification=(0.95, 1.05), refraction_px=(0.0, 1.0),
                                                  tint=knobs.tint, rim_strength=knobs.rim_strength,
                                                  rim_px=knobs.rim_px, highlight=(0.0, 0.1)))
        masks.append(pane)  # objects may stand in front of it, so it is not "occupied"
    for _ in range(integer(rng, knobs.objects)):
        for _attempt in range(10):
            kind = KINDS[int(rng.integers(len(KINDS)))]
            h = height * uniform(rng, knobs.height_share)
            cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.15, 0.85) * width
            shape = fill_polygons(height, width, [glass_outline(rng, kind, cy, cx, h)])
            if shape.any() and not (shape & occupied).any():
                break
        else:
            continue
        render_glass(image, shape, rng, knobs)
        masks = [m & ~shape for m in masks]
        masks.append(shape)
        occupied |= shape
    image = image + 0.01 * rng.standard_normal((height, width, 1), dtype=np.float32)
    return np.clip(image, 0, 1), keep_large(masks)


TRANS10K_KNOBS = GlassKnobs()
