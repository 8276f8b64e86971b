"""BIG- and COIFT-like scenes: thin structures and intricate boundaries at high resolution.

What makes the real sets hard for SAM is detail that the 256/1024 px model input cannot hold:
bicycle spokes, branches, lattices (BIG, 2-5 k px photos) and legs, antennae, stems and hair-like
fringes (COIFT). Here the thin parts are drawn a few native pixels wide, so after the squash to
the model's input they are sub-pixel, while the box prompt still covers the whole object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uncertsam_utils.data.mini.common import (bbox_slices, composite, integer, keep_large,
                                              soft_alpha, uniform)
from uncertsam_utils.data.mini.shapes import StrokeCanvas, blob
from uncertsam_utils.data.mini.textures import photo_crop, random_colour, surface


@dataclass(frozen=True)
class ThinKnobs:
    kinds: tuple[str, ...] = ("tree", "bicycle", "lattice")  # object families (see FAMILIES)
    objects: tuple[int, int] = (1, 2)             # target objects per image, side by side
    stroke_px: tuple[float, float] = (3.0, 9.0)   # width of the thin parts in native pixels: the main knob
    extent: tuple[float, float] = (0.55, 0.9)     # object height as a share of the image height
    detail: tuple[int, int] = (3, 5)              # intricacy: branching depth, spokes, bars, hairs, legs
    contrast: tuple[float, float] = (0.25, 0.6)   # RGB distance of object colour from the backdrop mean
    backdrop_blur: tuple[float, float] = (0.0, 3.0)  # depth of field of the photo backdrop (px)


def _polar(x, y, length, angle):
    return x + length * np.cos(angle), y - length * np.sin(angle)


def draw_tree(rng, canvas: StrokeCanvas, x, y, size, stroke, detail):
    """A branching tree/twig: each level forks into 2-3 thinner, shorter branches."""
    def grow(px, py, length, angle, width, depth):
        qx, qy = _polar(px, py, length, angle)
        mx, my = _polar(px, py, length * 0.5, angle + rng.uniform(-0.15, 0.15))
        canvas.line([(px, py), (mx, my), (qx, qy)], width)
        if depth == 0:
            if rng.random() < 0.5:  # a leaf or bud on some tips
                canvas.disc(qx, qy, max(width * 1.5, stroke * rng.uniform(1.0, 2.5)))
            return
        for _ in range(integer(rng, (2, 3))):
            grow(qx, qy, length * rng.uniform(0.55, 0.8), angle + rng.uniform(-0.8, 0.8),
                 max(stroke * 0.5, width * rng.uniform(0.55, 0.75)), depth - 1)

    trunk = stroke * rng.uniform(3.0, 6.0)
    grow(x, y, size * rng.uniform(0.3, 0.4), np.pi / 2 + rng.uniform(-0.2, 0.2), trunk, detail + 1)


def draw_bicycle(rng, canvas: StrokeCanvas, x, y, size, stroke, detail):
    """Two spoked wheels, a triangulated frame, handlebar and saddle: holes everywhere."""
    r = size * rng.uniform(0.22, 0.28)
    gap = r * rng.uniform(2.3, 2.7)
    (x0, y0), (x1, y1) = (x - gap / 2, y - r), (x + gap / 2, y - r)
    for cx, cy in ((x0, y0), (x1, y1)):
        canvas.ring(cx, cy, r, r, stroke * 1.5)  # tyre
        canvas.disc(cx, cy, stroke * 1.5)        # hub
        spokes = 6 + 4 * detail
        for a in np.linspace(0, np.pi, spokes, endpoint=False) + rng.uniform(0, np.pi):
            dx, dy = r * np.cos(a), r * np.sin(a)
            canvas.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], max(1.0, stroke * 0.4))
    crank = (x - gap * 0.05, y0)
    seat = (x - gap * 0.2, y0 - r * 1.25)
    head = (x + gap * 0.32, y0 - r * 1.15)
    for a, b in ((seat, crank), (crank, head), (seat, head), (seat, (x0, y0)), (crank, (x0, y0)),
                 (head, (x1, y1))):
        canvas.line([a, b], stroke * 1.6)
    canvas.line([(seat[0] - r * 0.35, seat[1] - r * 0.12), (seat[0] + r * 0.25, seat[1] - r * 0.12)], stroke * 2.5)
    bar = (head[0] + r * 0.05, head[1] - r * 0.3)
    canvas.line([head, bar, (bar[0] + r * 0.35, bar[1] + r * 0.1)], stroke * 1.2)


def draw_lattice(rng, canvas: StrokeCanvas, x, y, size, stroke, detail):
    """A chair back / gate / fence: a frame with a grid of bars and open cells."""
    height = size * rng.uniform(0.7, 1.0)
    width = height * rng.uniform(0.5, 1.0)
    left, top = x - width / 2, y - height
    frame = [(left, top), (left + width, top), (left + width, y), (left, y), (left, top)]
    canvas.line(frame, stroke * 2.5)
    rows, cols = integer(rng, (1, detail)), integer(rng, (2, detail + 3))
    for c in np.linspace(left, left + width, cols + 2)[1:-1]:
        canvas.line([(c, top), (c, y)], stroke)
    for r in np.linspace(top, y, rows + 2)[1:-1]:
        canvas.line([(left, r), (left + width, r)], stroke)
    if rng.random() < 0.5:  # diagonal braces
        canvas.line([(left, top), (left + width, y)], stroke)
    for leg_x in (left, left + width):  # legs below the frame
        canvas.line([(leg_x, y), (leg_x + rng.uniform(-0.05, 0.05) * width, y + size * 0.08)], stroke * 2)


def draw_hairy(rng, canvas: StrokeCanvas, x, y, size, stroke, detail, mask_shape):
    """A furry body (dandelion, caterpillar, pet): a blob fringed by many fine hairs."""
    h, w = mask_shape
    radius = size * rng.uniform(0.18, 0.28)
    cy = y - size * 0.5
    body = blob(rng, h, w, cy, x, radius, roughness=0.2, elongation=rng.uniform(1.0, 1.6))
    canvas.paste_mask(body)
    interior = np.roll(body, 2, 0) & np.roll(body, -2, 0) & np.roll(body, 2, 1) & np.roll(body, -2, 1)
    ys, xs = np.nonzero(body & ~interior)  # the body's outline: where hairs grow
    if ys.size == 0:
        return
    hairs = 30 * detail
    idx = rng.integers(0, ys.size, hairs)
    out = np.arctan2(-(ys[idx] - cy), xs[idx] - x)  # outward direction, y up
    length = size * rng.uniform(0.04, 0.14, hairs)
    bend = rng.uniform(-0.5, 0.5, hairs)
    for px, py, a, ln, b in zip(xs[idx], ys[idx], out, length, bend):
        mx, my = _polar(px, py, ln * 0.5, a)
        qx, qy = _polar(mx, my, ln * 0.5, a + b)
        canvas.line([(px, py), (mx, my), (qx, qy)], max(1.0, stroke * rng.uniform(0.3, 0.7)))


def draw_legged(rng, canvas: StrokeCanvas, x, y, size, stroke, detail, mask_shape):
    """A stork/insect: an oval body on long jointed legs, with a neck, beak or antennae."""
    h, w = mask_shape
    body_r = size * rng.uniform(0.12, 0.18)
    by = y - size * rng.uniform(0.55, 0.7)
    canvas.paste_mask(blob(rng, h, w, by, x, body_r, roughness=0.12, elongation=rng.uniform(1.3, 2.0)))
    for k in range(2 + detail // 2 * 2):
        foot_x = x + (k - detail / 2) * size * 0.08 + rng.uniform(-0.05, 0.05) * size
        knee = (x + (foot_x - x) * 0.5 + rng.uniform(-0.06, 0.06) * size, by + (y - by) * rng.uniform(0.4, 0.6))
        canvas.line([(x + rng.uniform(-0.5, 0.5) * body_r, by + body_r * 0.5), knee, (foot_x, y)], stroke)
        canvas.line([(foot_x, y), (foot_x + size * 0.04, y)], stroke * 0.8)  # toes
    side = rng.choice([-1.0, 1.0])
    neck = [(x + side * body_r * 1.2, by - body_r * 0.3)]
    for _ in range(3):
        px, py = neck[-1]
        neck.append((px + side * size * rng.uniform(0.02, 0.07), py - size * rng.uniform(0.05, 0.1)))
    canvas.line(neck, stroke * 2.2)
    hx, hy = neck[-1]
    canvas.disc(hx, hy, stroke * 3)
    canvas.line([(hx, hy), (hx + side * size * rng.uniform(0.08, 0.15), hy + size * 0.03)], stroke * 1.2)
    for a in (0.4, 0.9):  # antennae / crest feathers
        canvas.line([(hx, hy), _polar(hx, hy, size * 0.08, np.pi / 2 + side * a)], max(1.0, stroke * 0.5))


def draw_plant(rng, canvas: StrokeCanvas, x, y, size, stroke, detail, mask_shape):
    """A stem with leaves on thin petioles and curling tendrils."""
    h, w = mask_shape
    stem = [(x, y)]
    for _ in range(6):
        px, py = stem[-1]
        stem.append((px + rng.uniform(-0.05, 0.05) * size, py - size * 0.15))
    canvas.line(stem, stroke * 1.5)
    for k in range(2 * detail):
        px, py = stem[1 + k % 5]
        side = 1 if k % 2 else -1
        tip = _polar(px, py, size * rng.uniform(0.08, 0.2), np.pi / 2 - side * rng.uniform(0.4, 1.2))
        canvas.line([(px, py), tip], stroke * 0.7)
        if rng.random() < 0.7:
            canvas.paste_mask(blob(rng, h, w, tip[1], tip[0], size * rng.uniform(0.03, 0.07),
                                   roughness=0.3, elongation=rng.uniform(1.5, 2.5)))
        else:  # a tendril: a thin spiral
            t = np.linspace(0, 3 * np.pi, 24)
            rad = size * 0.04 * (1 - t / (4 * np.pi))
            canvas.line(list(zip(tip[0] + rad * np.cos(t) * side, tip[1] - rad * np.sin(t))), max(1.0, stroke * 0.5))


FAMILIES = {"tree": draw_tree, "bicycle": draw_bicycle, "lattice": draw_lattice,
            "hairy": draw_hairy, "legged": draw_legged, "plant": draw_plant}
_NEEDS_SHAPE = {"hairy", "legged", "plant"}


def _object_colour(rng, backdrop_mean, contrast):
    """A colour at least ``contrast`` away from the backdrop (the objects themselves are visible)."""
    best, best_d = None, -1.0
    for _ in range(10):
        c = random_colour(rng, saturation=(0.0, 0.8), value=(0.05, 1.0))
        d = float(np.linalg.norm(c - backdrop_mean))
        if d >= contrast:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def render_thin_scene(rng: np.random.Generator, height: int, width: int,
                      knobs: ThinKnobs) -> tuple[np.ndarray, list[np.ndarray]]:
    image = photo_crop(rng, height, width, zoom=(0.8, 2.5), defocus=uniform(rng, knobs.backdrop_blur))
    backdrop_mean = image.reshape(-1, 3).mean(axis=0)
    count = integer(rng, knobs.objects)
    masks = []
    for k in range(count):
        kind = knobs.kinds[int(rng.integers(len(knobs.kinds)))]
        slot_w = width / count  # objects stand side by side, each in its own slot
        size = min(height * uniform(rng, knobs.extent), slot_w * 1.1)
        x = slot_w * (k + 0.5) + rng.uniform(-0.1, 0.1) * slot_w
        y = height * rng.uniform(0.85, 0.97)
        stroke = uniform(rng, knobs.stroke_px)
        detail = integer(rng, knobs.detail)
        canvas = StrokeCanvas(height, width)
        if kind in _NEEDS_SHAPE:
            FAMILIES[kind](rng, canvas, x, y, size, stroke, detail, (height, width))
        else:
            FAMILIES[kind](rng, canvas, x, y, size, stroke, detail)
        mask = canvas.mask()
        for earlier in masks:  # later objects are in front
            earlier &= ~mask
        masks.append(mask)
        ys, xs = bbox_slices(mask, 4)
        local = mask[ys, xs]
        colour = _object_colour(rng, backdrop_mean, uniform(rng, knobs.contrast))
        kind_surface = ("solid", "blotches", "stripes")[int(rng.choice(3, p=[0.5, 0.35, 0.15]))]
        tex = surface(rng, kind_surface, local.shape[0], local.shape[1], colour)
        # anti-aliased, not feathered: the boundary is crisp at native resolution
        image[ys, xs] = composite(image[ys, xs], tex, soft_alpha(local, 0.6))
    return np.clip(image, 0, 1), keep_large(masks)


BIG_KNOBS = ThinKnobs()
COIFT_KNOBS = ThinKnobs(kinds=("hairy", "legged", "plant", "tree"), stroke_px=(1.5, 4.0), detail=(2, 4))
