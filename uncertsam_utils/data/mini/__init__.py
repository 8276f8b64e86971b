"""UncertSAM-mini: a small, fully synthetic, deterministic stand-in for the UncertSAM benchmark.

It has two parts, both written in the published on-disk layout (``<root>/<dataset>/<split>/
images/<8-digit id>.jpg`` + ``annotations/dataset.json``, see ``data/layout.py``):

* the **fit set** ``fit/{train,val,test}``: 256x256 "ordinary scenes" of opaque objects, the
  analogue of the SA-1B subset that the nano SAM-2 is trained on;
* **eight test domains** named like the real datasets (``layout.DATASETS``) with ``val`` and
  ``test`` splits, each reproducing what makes its real counterpart hard for SAM (thin
  structures, camouflage, CT, shadows, flare, transparency); see ``domains.DOMAINS``.

Every image is drawn from its own ``np.random.Generator`` derived from (seed, dataset, split,
index): any image can be regenerated alone, and the same seed gives byte-identical files.

The modules: ``domains`` (the registry: one :class:`DomainSpec` per dataset, its knobs and sizes),
one renderer per domain family (``fit``, ``thin`` for BIG and COIFT, ``camouflage``, ``ct``,
``shadows`` for ISTD and SBU, ``flare``, ``glass``), the shared drawing helpers (``common``,
``shapes``, ``textures``), ``generate`` (render and write, the marker), ``cache`` (generate once into
the cache, :func:`ensure_mini`) and ``diagnostics`` (measures the tests use to check each domain's
difficulty).
"""

from __future__ import annotations

from uncertsam_utils.data.mini.cache import default_root, ensure_mini, make_mini, read_marker
from uncertsam_utils.data.mini.domains import DOMAINS, FIT_NAME, FIT_SPEC, DomainSpec, render_item, spec_for
from uncertsam_utils.data.mini.generate import (DOMAIN_SIZES, DOMAIN_SPLITS, FIT_SIZES, FIT_SPLITS, MARKER_NAME,
                                                MINI_VERSION, SMALL_DOMAIN_SIZES, SMALL_FIT_SIZES, benchmark_marker,
                                                generate_domains, generate_fit, generate_mini, generator_fingerprint)

__all__ = ["DOMAINS", "DOMAIN_SIZES", "DOMAIN_SPLITS", "FIT_NAME", "FIT_SIZES", "FIT_SPEC", "FIT_SPLITS",
           "MARKER_NAME", "MINI_VERSION", "SMALL_DOMAIN_SIZES", "SMALL_FIT_SIZES", "DomainSpec", "benchmark_marker",
           "default_root", "ensure_mini", "generate_domains", "generate_fit", "generate_mini", "generator_fingerprint",
           "make_mini", "read_marker", "render_item", "spec_for"]
