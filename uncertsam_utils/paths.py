"""Where the project keeps its outputs and caches.

A checkout writes regenerated outputs to its own ``figures/`` and ``tables/`` and caches heavy
intermediate results (generated data, embeddings, posteriors) under ``.cache/``; an installed
package without a checkout uses ``~/.cache/uncertsam``. ``UNCERTSAM_CACHE`` overrides the cache;
``UNCERTSAM_OUTPUTS`` sends figures and tables elsewhere (the smoke notebook tests use it, so
that they never overwrite the committed outputs). ``UNCERTSAM_RESULTS_CACHE`` sends the computed
results (evaluations, posteriors, heads, fusion modules) to their own folder while the data and the
checkpoints stay in the cache (``make test`` starts from an empty one).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path | None:
    """The repository checkout that holds this package, or None for a plain install."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


def cache_dir() -> Path:
    env = os.environ.get("UNCERTSAM_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    root = project_root()
    return (root / ".cache") if root is not None else Path.home() / ".cache" / "uncertsam"


def results_cache_dir() -> Path:
    """Where computed results are cached (``uncertsam cache list``): ``UNCERTSAM_RESULTS_CACHE``, or the cache."""
    env = os.environ.get("UNCERTSAM_RESULTS_CACHE")
    return Path(env).expanduser().resolve() if env else cache_dir()


def _output_dir(name: str) -> Path:
    override = os.environ.get("UNCERTSAM_OUTPUTS")
    root = Path(override).expanduser().resolve() if override else project_root()
    path = (root / name) if root is not None else Path.cwd() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir() -> Path:
    return _output_dir("figures")


def tables_dir() -> Path:
    return _output_dir("tables")
