"""UncertSAM-mini: a small, fully synthetic, deterministic stand-in for the UncertSAM benchmark.

It has two parts, both written in the published on-disk layout (``<root>/<dataset>/<split>/
images/<8-digit id>.jpg`` + ``annotations/dataset.json``, see ``layout.py``):

* the **fit set** ``fit/{train,val,test}``: 256x256 "ordinary scenes" of opaque objects, the
  analogue of the SA-1B subset that the nano SAM-2 is trained on;
* **eight test domains** named like the real datasets (``layout.DATASETS``) with ``val`` and
  ``test`` splits, each reproducing what makes its real counterpart hard for SAM (thin
  structures, camouflage, CT, shadows, flare, transparency); see ``mini_domains.DOMAINS``.

Every image is drawn from its own ``np.random.Generator`` derived from (seed, dataset, split,
index): any image can be regenerated alone, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from uncertsam_utils.data.mini_domains import DOMAINS, FIT_NAME, FIT_SPEC, DomainSpec, render_item

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
    # the renderers (this orchestration module and the diagnostics do not change any pixel)
    for path in sorted(Path(__file__).parent.glob("mini_*.py")):
        if path.name != "mini_diagnostics.py":
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(f"numpy {np.__version__} pillow {PIL.__version__} skimage {skimage.__version__}".encode())
    return digest.hexdigest()[:16]


def _marker(seed: int, fit_sizes: Sequence[int], domain_sizes: Sequence[int],
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
    marker = _marker(seed, fit_sizes, domain_sizes, domains)
    (out / MARKER_NAME).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    return out


def read_marker(root: Path) -> dict | None:
    """The marker of a complete benchmark under ``root``, or None."""
    try:
        return json.loads((Path(root) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def default_root(seed: int = 0) -> Path:
    from uncertsam_utils.paths import cache_dir

    return cache_dir() / f"UncertSAM-mini-v{MINI_VERSION}-seed{seed}"


def ensure_mini(root: Path | None = None, seed: int = 0, *, fit_sizes: Sequence[int] = FIT_SIZES,
                domain_sizes: Sequence[int] = DOMAIN_SIZES, progress: bool = True,
                workers: int | None = None, domains: dict[str, DomainSpec] | None = None) -> Path:
    """The benchmark under ``root`` (default: the cache), generating it first if it is not complete.

    Complete means: the marker is there and matches version, seed, sizes and knobs (so tuned
    ``domains`` regenerate). Generation goes to a temporary sibling folder that is renamed into
    place, so an interrupted run never leaves a half-written benchmark that looks complete.
    """
    root = Path(root) if root is not None else default_root(seed)
    domains = dict(DOMAINS if domains is None else domains)
    wanted = _marker(seed, fit_sizes, domain_sizes, domains)
    if read_marker(root) == wanted:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with _generation_lock(root.parent / f".{root.name}.lock"):
        if read_marker(root) == wanted:  # another process generated it while we waited
            return root
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            generate_mini(tmp, seed, fit_sizes=fit_sizes, domain_sizes=domain_sizes, progress=progress,
                          workers=workers, domains=domains)
            if root.exists():  # stale or incomplete: replace it
                shutil.rmtree(root)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


@contextmanager
def _generation_lock(path: Path):
    """An exclusive lock across processes: on a shared machine a second caller waits for the first
    generation instead of running its own. Without ``fcntl`` (Windows) there is no lock; the
    temporary-folder rename still keeps the result consistent."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------- CLI

def add_mini_parser(data_subparsers) -> None:
    """Add ``uncertsam data mini`` to the ``uncertsam data`` subcommand group."""
    parser = data_subparsers.add_parser(
        "mini", help="generate the synthetic UncertSAM-mini benchmark",
        description="Generate UncertSAM-mini (fit set + eight synthetic test domains) in the "
                    "published layout. Deterministic: the same seed gives identical files.")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the cache folder used by ensure_mini)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--small", action="store_true",
                        help=f"a smoke-test size: fit {SMALL_FIT_SIZES}, domains {SMALL_DOMAIN_SIZES}")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: up to 2)")
    parser.set_defaults(handler=_run_mini)


def _run_mini(args) -> int:
    fit_sizes = SMALL_FIT_SIZES if args.small else FIT_SIZES
    domain_sizes = SMALL_DOMAIN_SIZES if args.small else DOMAIN_SIZES
    if args.out is None:  # the cache folder, reused when already complete
        root = default_root(args.seed)
        root = root.with_name(root.name + "-small") if args.small else root
        path = ensure_mini(root, args.seed, fit_sizes=fit_sizes, domain_sizes=domain_sizes, workers=args.workers)
    else:
        path = generate_mini(args.out, args.seed, fit_sizes=fit_sizes, domain_sizes=domain_sizes,
                             workers=args.workers)
    print(path)
    return 0
