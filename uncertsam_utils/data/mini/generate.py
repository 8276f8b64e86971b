"""Writing UncertSAM-mini: render every image of every split (in worker processes) and write it in
the published layout; the marker that identifies a generated benchmark. See the package docstring.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from uncertsam_utils.data.mini.domains import DOMAINS, FIT_NAME, FIT_SPEC, DomainSpec, render_item

# Bump whenever the generator's output changes; it names the cache folder and the marker.
MINI_VERSION = 1
MARKER_NAME = "UNCERTSAM_MINI.json"
FIT_SIZES = (2000, 200, 200)        # fit train / val / test images
DOMAIN_SIZES = (16, 48)             # val / test images per test domain
SMALL_FIT_SIZES = (64, 16, 16)      # `uncertsam data mini --small`: a smoke-test benchmark
SMALL_DOMAIN_SIZES = (4, 8)
FIT_SPLITS = ("train", "val", "test")
DOMAIN_SPLITS = ("val", "test")


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


# ------------------------------------------------------------------------------------ rendering

def _render_packed(job: tuple[DomainSpec, int, str, int]):
    """Worker side: render one image and bit-pack its masks (8x less to send between processes)."""
    spec, seed, split, index = job
    image_id, image, masks = render_item(spec, seed, split, index)
    return image_id, image, np.packbits(np.stack(masks), axis=-1), image.shape[1]


def _unpack(packed: np.ndarray, width: int) -> list[np.ndarray]:
    return list(np.unpackbits(packed, axis=-1, count=width).astype(bool))


class _Renderer:
    """Renders images in index order, in worker processes when ``workers`` > 1.

    Order (and so the written files) does not depend on the number of workers: each image has
    its own generator, and ``imap`` returns results in submission order.
    """

    def __init__(self, workers: int | None):
        self.workers = _default_workers() if workers is None else max(1, int(workers))
        self._pool = None

    def __enter__(self):
        if self.workers > 1:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
            self._pool = ctx.Pool(self.workers)
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def items(self, spec: DomainSpec, seed: int, split: str, count: int
              ) -> Iterator[tuple[int, np.ndarray, list[np.ndarray]]]:
        jobs = [(spec, seed, split, i) for i in range(count)]
        results = map(_render_packed, jobs) if self._pool is None else self._pool.imap(_render_packed, jobs, chunksize=4)
        for image_id, image, packed, width in results:
            yield image_id, image, _unpack(packed, width)


class _Items:
    """The items of one split, with a length so that the writer's progress bar knows the total."""

    def __init__(self, renderer: _Renderer, spec: DomainSpec, seed: int, split: str, count: int):
        self.args = (spec, seed, split, count)
        self.renderer = renderer

    def __len__(self) -> int:
        return self.args[3]

    def __iter__(self):
        return self.renderer.items(*self.args)


def _write(renderer: _Renderer, root: Path, spec: DomainSpec, seed: int, splits: Sequence[str],
           sizes: Sequence[int], progress: bool) -> dict[str, int]:
    from uncertsam_utils.data.layout import write_split

    if len(splits) != len(sizes):
        raise ValueError(f"{spec.name}: expected {len(splits)} sizes for {splits}, got {tuple(sizes)}")
    written = {}
    for split, count in zip(splits, sizes):
        count = int(count)
        if count < 1:
            raise ValueError(f"{spec.name}/{split}: size must be at least 1, got {count}")
        if progress:
            print(f"UncertSAM-mini: {spec.name}/{split}: {count} images", flush=True)
        result = write_split(root, spec.name, split, _Items(renderer, spec, seed, split, count), overwrite=True)
        written[split] = result.num_masks
    return written


# ----------------------------------------------------------------------------------- public API

def generate_fit(out: Path, seed: int = 0, sizes: Sequence[int] = FIT_SIZES, *, progress: bool = True,
                 workers: int | None = None) -> Path:
    """Write the fit set ``<out>/fit/{train,val,test}`` (256x256 ordinary scenes); returns ``out``."""
    out = Path(out)
    with _Renderer(workers) as renderer:
        _write(renderer, out, FIT_SPEC, seed, FIT_SPLITS, sizes, progress)
    return out


def generate_domains(out: Path, seed: int = 0, sizes: Sequence[int] = DOMAIN_SIZES, *,
                     domains: dict[str, DomainSpec] | None = None, progress: bool = True,
                     workers: int | None = None) -> Path:
    """Write the test domains ``<out>/<dataset>/{val,test}``; ``domains`` overrides specs/knobs."""
    out = Path(out)
    with _Renderer(workers) as renderer:
        for spec in (domains or DOMAINS).values():
            _write(renderer, out, spec, seed, DOMAIN_SPLITS, sizes, progress)
    return out


def generator_fingerprint() -> str:
    """A hash of the generator's source files and of the libraries that shape its output.

    Part of the marker, so a cached benchmark made by other code (an edited renderer without a
    ``MINI_VERSION`` bump, another scikit-image with other bundled photos, another Pillow JPEG
    encoder) is regenerated instead of silently reused.
    """
    import hashlib

    import PIL
    import skimage

    digest = hashlib.sha256()
    for name, source in _renderer_sources():
        digest.update(name.encode() + b"\0" + source)
    digest.update(f"numpy {np.__version__} pillow {PIL.__version__} skimage {skimage.__version__}".encode())
    return digest.hexdigest()[:16]


# The modules that draw no pixel: orchestration, the cache and the diagnostics.
_NOT_RENDERING = {"__init__.py", "generate.py", "cache.py", "diagnostics.py"}


def _renderer_sources() -> list[tuple[str, bytes]]:
    """(name, source) of every renderer module, as it was named in 0.1 (``data/mini_<name>.py``, its
    sibling imports spelled ``uncertsam_utils.data.mini_<name>``): moving the generator into this
    package changed no pixel, so it keeps the fingerprint, and with it every cache key built on the
    marker (posteriors, heads, evaluations). Any other edit of a renderer changes it."""
    paths = sorted(p for p in Path(__file__).parent.glob("*.py") if p.name not in _NOT_RENDERING)
    return [(f"mini_{path.name}", path.read_bytes().replace(b"uncertsam_utils.data.mini.", b"uncertsam_utils.data.mini_"))
            for path in paths]


def benchmark_marker(seed: int, fit_sizes: Sequence[int], domain_sizes: Sequence[int],
            domains: dict[str, DomainSpec]) -> dict:
    """What identifies a generated benchmark; no timestamps, so the marker is reproducible too."""
    return {
        "generator": "uncertsam_utils.data.mini",
        "version": MINI_VERSION,
        "fingerprint": generator_fingerprint(),
        "seed": int(seed),
        "fit_sizes": dict(zip(FIT_SPLITS, map(int, fit_sizes))),
        "domain_sizes": dict(zip(DOMAIN_SPLITS, map(int, domain_sizes))),
        "datasets": [FIT_NAME, *domains],
        "knobs": {name: _jsonable(dataclasses.asdict(spec.knobs))
                  for name, spec in {FIT_NAME: FIT_SPEC, **domains}.items()},
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def generate_mini(out: Path, seed: int = 0, *, fit_sizes: Sequence[int] = FIT_SIZES,
                  domain_sizes: Sequence[int] = DOMAIN_SIZES, progress: bool = True,
                  workers: int | None = None, domains: dict[str, DomainSpec] | None = None) -> Path:
    """Write the whole benchmark (fit set, then the eight domains) under ``out``; returns ``out``.

    The marker file ``UNCERTSAM_MINI.json`` (version, seed, sizes, knobs) is written last, so its
    presence means the benchmark is complete.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    domains = dict(DOMAINS if domains is None else domains)
    (out / MARKER_NAME).unlink(missing_ok=True)  # incomplete until rewritten at the end
    with _Renderer(workers) as renderer:
        _write(renderer, out, FIT_SPEC, seed, FIT_SPLITS, fit_sizes, progress)
        for spec in domains.values():
            _write(renderer, out, spec, seed, DOMAIN_SPLITS, domain_sizes, progress)
    marker = benchmark_marker(seed, fit_sizes, domain_sizes, domains)
    (out / MARKER_NAME).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    return out
