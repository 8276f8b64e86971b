"""Object silhouettes for UncertSAM-mini: ellipses, star-shaped polygons, smooth blobs, strokes.

All functions return full-frame ``bool`` masks; the radial shapes are evaluated only inside
their bounding box, so many small objects on a large frame stay cheap.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw


def _local_grid(height, width, cy, cx, reach):
    """Integer bounds and float offsets of the box of half-size ``reach`` around (cy, cx)."""
    y0, y1 = max(0, int(cy - reach) - 1), min(height, int(cy + reach) + 2)
    x0, x1 = max(0, int(cx - reach) - 1), min(width, int(cx + reach) + 2)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return (y0, y1, x0, x1), yy - cy, xx - cx


def _paste(height, width, bounds, local):
    mask = np.zeros((height, width), bool)
    y0, y1, x0, x1 = bounds
    mask[y0:y1, x0:x1] = local
    return mask


def ellipse(height: int, width: int, cy: float, cx: float, ry: float, rx: float, angle: float = 0.0) -> np.ndarray:
    bounds, dy, dx = _local_grid(height, width, cy, cx, max(ry, rx))
    c, s = np.cos(angle), np.sin(angle)
    u, v = dx * c + dy * s, -dx * s + dy * c
    return _paste(height, width, bounds, (u / rx) ** 2 + (v / ry) ** 2 <= 1.0)


def blob(rng: np.random.Generator, height: int, width: int, cy: float, cx: float, radius: float,
         roughness: float = 0.25, harmonics: int = 5, elongation: float = 1.0) -> np.ndarray:
    """A smooth random blob: radius modulated by a few random Fourier harmonics of the angle."""
    amps = roughness * rng.uniform(0, 1, harmonics) / np.arange(1, harmonics + 1) ** 0.8
    phases = rng.uniform(0, 2 * np.pi, harmonics)
    reach = radius * max(elongation, 1.0) * (1 + amps.sum())
    bounds, dy, dx = _local_grid(height, width, cy, cx, reach)
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (dx * c + dy * s) / elongation, -dx * s + dy * c
    # the radius as a function of angle, tabulated: one arctan2 per pixel instead of one cosine
    # per harmonic and pixel
    table_theta = np.linspace(-np.pi, np.pi, _ANGLE_STEPS + 1, dtype=np.float32)
    k = np.arange(1, harmonics + 1, dtype=np.float32)[:, None]
    table = radius * (1 + (amps[:, None] * np.cos(k * table_theta + phases[:, None])).sum(0))
    index = ((np.arctan2(v, u) + np.pi) * (_ANGLE_STEPS / (2 * np.pi)) + 0.5).astype(np.int32)
    return _paste(height, width, bounds, u * u + v * v <= table[index] ** 2)


_ANGLE_STEPS = 720


def polygon_points(rng: np.random.Generator, cy: float, cx: float, radius: float, vertices: int,
                   irregularity: float = 0.35) -> list[tuple[float, float]]:
    """Vertices of a star-shaped polygon (sorted angles, jittered radii) as (x, y) pairs."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    radii = radius * (1 + irregularity * rng.uniform(-1, 1, vertices))
    return list(zip((cx + radii * np.cos(angles)).tolist(), (cy + radii * np.sin(angles)).tolist()))


def polygon(rng, height, width, cy, cx, radius, vertices=None, irregularity=0.35) -> np.ndarray:
    n = int(vertices or rng.integers(3, 9))
    return fill_polygons(height, width, [polygon_points(rng, cy, cx, radius, n, irregularity)])


def fill_polygons(height: int, width: int, polygons: Sequence[Sequence[tuple[float, float]]]) -> np.ndarray:
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for pts in polygons:
        draw.polygon([tuple(p) for p in pts], fill=1)
    return np.array(canvas, bool)  # a writable copy


def random_shape(rng: np.random.Generator, height: int, width: int, cy: float, cx: float,
                 radius: float) -> np.ndarray:
    """An ellipse, polygon or blob (the "ordinary object" vocabulary of the fit set)."""
    kind = rng.choice(3, p=[0.3, 0.3, 0.4])
    if kind == 0:
        aspect = rng.uniform(0.45, 1.0)
        return ellipse(height, width, cy, cx, radius * aspect, radius, rng.uniform(0, np.pi))
    if kind == 1:
        return polygon(rng, height, width, cy, cx, radius)
    return blob(rng, height, width, cy, cx, radius, roughness=rng.uniform(0.1, 0.45),
                elongation=rng.uniform(1.0, 1.8))


class StrokeCanvas:
    """A binary canvas for thin structures drawn with PIL (lines, rings, discs).

    PIL rasterises wide lines and ellipses in C, which keeps high-resolution wire frames and
    branching trees fast and deterministic.
    """

    def __init__(self, height: int, width: int):
        self.image = Image.new("L", (width, height), 0)
        self.draw = ImageDraw.Draw(self.image)

    def line(self, points: Sequence[tuple[float, float]], width: float) -> None:
        w = max(1, int(round(width)))
        pts = [(float(x), float(y)) for x, y in points]
        self.draw.line(pts, fill=255, width=w, joint="curve")
        if w >= 3:  # round caps, so strokes join without notches
            for x, y in (pts[0], pts[-1]):
                self.disc(x, y, w / 2)

    def disc(self, x: float, y: float, r: float) -> None:
        self.draw.ellipse([x - r, y - r, x + r, y + r], fill=255)

    def ring(self, x: float, y: float, rx: float, ry: float, width: float) -> None:
        self.draw.ellipse([x - rx, y - ry, x + rx, y + ry], outline=255, width=max(1, int(round(width))))

    def polygon(self, points, fill: bool = True) -> None:
        self.draw.polygon([tuple(p) for p in points], fill=255 if fill else 0)

    def erase_polygon(self, points) -> None:
        self.draw.polygon([tuple(p) for p in points], fill=0)

    def paste_mask(self, mask: np.ndarray, value: bool = True) -> None:
        arr = np.asarray(self.image).copy()
        arr[mask] = 255 if value else 0
        self.image = Image.fromarray(arr)
        self.draw = ImageDraw.Draw(self.image)

    def mask(self) -> np.ndarray:
        return np.asarray(self.image) > 127
