"""The fit set of UncertSAM-mini: "ordinary scenes", the analogue of the SA-1B subset.

Two to six opaque objects with solid, striped, checkered or blotchy surfaces on photo or
procedural backdrops. Objects may touch and rarely overlap much; every object with at least
``MIN_MASK_PIXELS`` visible pixels (after occlusion by later objects) is an instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uncertsam_utils.data.mini.common import (MIN_MASK_PIXELS, bbox_slices, box_blur, composite, integer,
                                              soft_alpha, uniform)
from uncertsam_utils.data.mini.shapes import random_shape
from uncertsam_utils.data.mini.textures import SURFACES, background, random_colour, surface

FIT_SIZE = 256


@dataclass(frozen=True)
class FitKnobs:
    objects: tuple[int, int] = (2, 6)           # objects drawn per scene
    radius: tuple[float, float] = (10.0, 56.0)  # object radius in px (log-uniform)
    max_overlap: float = 0.25                   # share of a new object allowed to lie on earlier ones
    min_colour_distance: float = 0.18           # RGB distance object mean vs. backdrop mean: objects stay visible
    edge_sigma: tuple[float, float] = (0.4, 0.9)  # anti-aliasing of object edges
    shadow_strength: tuple[float, float] = (0.0, 0.25)  # soft contact shadow under objects (depth cue)
    noise: tuple[float, float] = (0.0, 0.03)    # sensor noise std


def _object_surface(rng, height, width, backdrop_mean, knobs: FitKnobs) -> np.ndarray:
    """A textured surface whose mean colour stands out from the backdrop."""
    for _ in range(8):
        base = random_colour(rng)
        if np.linalg.norm(base - backdrop_mean) >= knobs.min_colour_distance:
            break
    kind = list(SURFACES)[int(rng.choice(4, p=[0.35, 0.2, 0.15, 0.3]))]
    return surface(rng, kind, height, width, base)


def _paint_object(rng, image, shape, radius, backdrop_mean, knobs: FitKnobs) -> None:
    """Draw a soft contact shadow, then the textured object with anti-aliased edges (in place)."""
    sigma = uniform(rng, knobs.edge_sigma)
    shadow = uniform(rng, knobs.shadow_strength)
    shift = (int(radius * 0.15) + 1, int(radius * 0.1))
    ys, xs = bbox_slices(shape, int(radius * 0.6) + 4)
    win = image[ys, xs]  # a view: blending below writes into ``image``
    local = shape[ys, xs]
    if shadow > 0:
        offset = np.zeros_like(local)  # the silhouette shifted down-right, no wrap-around
        offset[shift[0]:, shift[1]:] = local[:local.shape[0] - shift[0], :local.shape[1] - shift[1]]
        win *= (1 - shadow * box_blur(offset, radius * 0.3))[..., None]
    alpha = soft_alpha(local, sigma)
    h, w = local.shape
    win[:] = composite(win, _object_surface(rng, h, w, backdrop_mean, knobs), alpha)


def render_fit_scene(rng: np.random.Generator, height: int = FIT_SIZE, width: int = FIT_SIZE,
                     knobs: FitKnobs = FitKnobs()) -> tuple[np.ndarray, list[np.ndarray]]:
    image = background(rng, height, width)
    backdrop_mean = image.reshape(-1, 3).mean(axis=0)
    occupied = np.zeros((height, width), bool)
    masks: list[np.ndarray] = []
    log_r = np.log(knobs.radius)
    for _ in range(integer(rng, knobs.objects)):
        for _attempt in range(12):
            radius = float(np.exp(rng.uniform(*log_r)))
            cy, cx = rng.uniform(0.05, 0.95) * height, rng.uniform(0.05, 0.95) * width
            shape = random_shape(rng, height, width, cy, cx, radius)
            ys, xs = bbox_slices(shape)  # all per-object mask work happens in this window
            local = shape[ys, xs]
            area = local.sum()
            if area >= MIN_MASK_PIXELS and (local & occupied[ys, xs]).sum() <= knobs.max_overlap * area:
                break
        else:
            continue
        _paint_object(rng, image, shape, radius, backdrop_mean, knobs)
        for m in masks:  # the earlier objects' visible parts after occlusion
            m[ys, xs] &= ~local
        masks.append(shape)
        occupied[ys, xs] |= local
    image = image + uniform(rng, knobs.noise) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 1), [m for m in masks if m.sum() >= MIN_MASK_PIXELS]
