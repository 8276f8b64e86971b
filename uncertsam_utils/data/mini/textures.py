"""Surfaces for UncertSAM-mini: crops of real photographs and procedural textures.

The photographs are the ones bundled inside the scikit-image wheel (no download, no network):
they give the generator natural image statistics that procedural noise alone lacks.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from uncertsam_utils.data.mini.common import fractal_noise, smooth_noise

# skimage.data loaders whose files ship with the wheel (checked offline with scikit-image 0.26).
SCENE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "camera",
                "coins", "immunohistochemistry", "retina", "hubble_deep_field", "clock", "cell")
# Photos that are mostly one stationary texture: ground, walls, surfaces.
TEXTURE_PHOTOS = ("brick", "grass", "gravel", "moon")


@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """A bundled photograph as a read-only float32 RGB array in [0, 1]."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    out = image[..., :3].astype(np.float32) / 255.0
    out.setflags(write=False)
    return out


@lru_cache(maxsize=None)
def is_grey(name: str) -> bool:
    image = photo(name)
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def hue_rotation(angle: float) -> np.ndarray:
    """3x3 matrix rotating RGB colours about the grey axis by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    k = 1.0 / 3.0
    r = np.sqrt(k)
    return np.array([
        [c + (1 - c) * k, k * (1 - c) - r * s, k * (1 - c) + r * s],
        [k * (1 - c) + r * s, c + (1 - c) * k, k * (1 - c) - r * s],
        [k * (1 - c) - r * s, k * (1 - c) + r * s, c + (1 - c) * k],
    ], np.float32)


def colour_jitter(rng: np.random.Generator, image: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Random hue rotation, saturation, per-channel gain and brightness; ``strength`` scales all."""
    if strength <= 0:
        return np.asarray(image, np.float32)
    # saturation, hue rotation and channel gains are all linear: compose them into one 3x3 matrix
    saturation = 1.0 + strength * rng.uniform(-0.5, 0.5)
    to_saturated = saturation * np.eye(3, dtype=np.float32) + (1 - saturation) / 3.0
    rotation = hue_rotation(strength * rng.uniform(-np.pi, np.pi))
    gains = np.diag(1.0 + strength * rng.uniform(-0.2, 0.2, size=3)).astype(np.float32)
    matrix = (gains @ rotation @ to_saturated).T.astype(np.float32)
    offset = np.float32(strength * rng.uniform(-0.12, 0.12))
    out = np.asarray(image, np.float32) @ matrix + offset
    return np.clip(out, 0.0, 1.0, out=out)


def photo_crop(rng: np.random.Generator, height: int, width: int, names=SCENE_PHOTOS + TEXTURE_PHOTOS,
               zoom: tuple[float, float] = (0.6, 2.0), jitter: float = 0.6,
               name: str | None = None, defocus: float = 0.0) -> np.ndarray:
    """A random crop of a bundled photo, zoomed by a factor in ``zoom``, flipped and recoloured.

    ``zoom`` > 1 magnifies (the crop covers fewer source pixels than the output has); the crop is
    limited by the photo's size, so very large outputs simply magnify more. ``defocus`` is a
    Gaussian blur in output pixels (depth of field).
    """
    name = name or names[int(rng.integers(len(names)))]
    source = photo(name)
    sh, sw = source.shape[:2]
    scale = float(np.exp(rng.uniform(np.log(zoom[0]), np.log(zoom[1]))))
    ch = int(min(sh, max(8, round(height / scale))))
    cw = int(min(sw, max(8, round(width / scale))))
    # keep the output's aspect ratio when the photo limits the crop
    ratio = min(ch / height, cw / width)
    ch, cw = max(8, int(height * ratio)), max(8, int(width * ratio))
    y0 = int(rng.integers(0, sh - ch + 1))
    x0 = int(rng.integers(0, sw - cw + 1))
    crop = source[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.25:
        crop = crop[::-1]
    grey = is_grey(name)
    tint = random_colour(rng, saturation=(0.1, 0.5), value=(0.7, 1.0)) if grey else None
    # Recolouring is per pixel, so it is applied on whichever of crop and output is smaller.
    recolour = lambda img: colour_jitter(rng, img if tint is None else _tinted(img, tint), jitter)
    small_crop = ch * cw <= height * width
    if small_crop:
        crop = recolour(crop)
    pil = Image.fromarray((np.clip(crop, 0, 1) * 255 + 0.5).astype(np.uint8))
    if defocus > 0.3:
        # defocus as a detour through a coarser image: far cheaper than a Gaussian at 1 Mpx
        coarse = (max(4, int(width / (1 + defocus))), max(4, int(height / (1 + defocus))))
        pil = pil.resize(coarse, Image.BOX)
    pil = pil.resize((width, height), Image.BILINEAR)
    out = np.asarray(pil, np.float32) / 255.0
    return out if small_crop else recolour(out)


def _tinted(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """A grey photograph with a colour cast, so grey sources do not look grey."""
    return np.clip(image * (colour / max(float(colour.mean()), 1e-3) * 0.8), 0.0, 1.0)


def random_colour(rng: np.random.Generator, saturation=(0.2, 1.0), value=(0.15, 1.0)) -> np.ndarray:
    """An RGB colour from a random hue with saturation and value drawn from the given ranges."""
    h = rng.uniform(0, 6)
    s = rng.uniform(*saturation)
    v = rng.uniform(*value)
    i = int(h) % 6
    f = h - int(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, np.float32)


def _two_tone(pattern: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Blend two colours by a pattern in [0, 1]."""
    p = pattern[..., None]
    return a * (1 - p) + b * p


def _coords(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by a random angle (for stripes and checks)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    return xx * np.cos(angle) + yy * np.sin(angle), -xx * np.sin(angle) + yy * np.cos(angle)


def stripes(rng, height, width, a, b, period=(4.0, 16.0)):
    u, _ = _coords(rng, height, width)
    per = rng.uniform(*period)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * u / per + rng.uniform(0, 2 * np.pi))
    sharpness = rng.uniform(1.0, 8.0)  # from soft sine stripes to hard bands
    pattern = np.clip((wave - 0.5) * sharpness + 0.5, 0, 1)
    return _two_tone(pattern.astype(np.float32), a, b)


def checks(rng, height, width, a, b, cell=(4.0, 16.0)):
    u, v = _coords(rng, height, width)
    size = rng.uniform(*cell)
    pattern = ((np.floor(u / size) + np.floor(v / size)) % 2).astype(np.float32)
    return _two_tone(pattern, a, b)


def blotches(rng, height, width, a, b, scale=(4.0, 20.0)):
    noise = fractal_noise(rng, height, width, rng.uniform(*scale), octaves=2)
    pattern = np.clip(noise * rng.uniform(0.8, 3.0) + 0.5, 0, 1)
    return _two_tone(pattern, a, b)


def solid(rng, height, width, a, b=None):
    """A flat colour with gentle shading, as a matte surface under soft light."""
    shade = 1.0 + 0.08 * smooth_noise(rng, height, width, max(height, width) / 2)
    return np.clip(a[None, None, :] * shade[..., None], 0, 1).astype(np.float32)


SURFACES = {"solid": solid, "stripes": stripes, "checks": checks, "blotches": blotches}


def surface(rng: np.random.Generator, kind: str, height: int, width: int,
            base: np.ndarray | None = None) -> np.ndarray:
    """An HxWx3 procedural texture of ``kind`` around colour ``base`` (random when None)."""
    a = random_colour(rng) if base is None else base
    # the second tone: same family, clearly different in value or hue
    b = np.clip(a * rng.uniform(0.3, 0.7) if rng.random() < 0.5 else random_colour(rng), 0, 1)
    out = SURFACES[kind](rng, height, width, a, b)
    return out.astype(np.float32)


def background(rng: np.random.Generator, height: int, width: int, photo_share: float = 0.75) -> np.ndarray:
    """A varied backdrop: mostly photo crops, sometimes a blotchy or striped procedural surface."""
    if rng.random() < photo_share:
        return photo_crop(rng, height, width)
    kind = ("blotches", "stripes", "checks")[int(rng.integers(3))]
    base = random_colour(rng, saturation=(0.0, 0.6), value=(0.2, 0.9))
    surf = surface(rng, kind, height, width, base)
    # low contrast and fine grain keep procedural backdrops from dominating the objects
    grey = surf.mean(axis=(0, 1), keepdims=True)
    surf = grey + (surf - grey) * rng.uniform(0.3, 0.8)
    return np.clip(surf + 0.03 * rng.standard_normal((height, width, 1), dtype=np.float32), 0, 1)
