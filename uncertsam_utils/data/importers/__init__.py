"""Importers from the eight native datasets into the UncertSAM layout, one module per source, and
from SA-1B into the fit set.

``import_dataset(name, src, out)`` converts the native dataset at ``src`` into
``<out>/<name>/{train,val,test}`` (``name`` is the benchmark's folder name, see ``IMPORTERS``; SA-1B
writes ``<out>/fit/{train,val}``).
Each module's docstring gives the source layout it expects, its instance rule and its split plan;
:mod:`uncertsam_utils.data.importers.base` documents what they share (split assignment, image ids,
minimum area, the manifest, what happens when only some native parts were downloaded), and
:mod:`uncertsam_utils.data.importers.sources` the common way of pairing image and mask files.
"""

from __future__ import annotations

from typing import Callable

from uncertsam_utils.data.importers import big, cod10k, coift, flare7k, istd, msd_spleen, sa1b, sbu, trans10k
from uncertsam_utils.data.importers.base import DEFAULT_MIN_AREA, ImportResult
from uncertsam_utils.data.names import FIT_SOURCE

IMPORTERS: dict[str, Callable[..., ImportResult]] = {
    "BIG": big.import_big,
    "COIFT": coift.import_coift,
    "COD10K-v3": cod10k.import_cod10k,
    "MSD_Spleen": msd_spleen.import_msd_spleen,
    "ISTD": istd.import_istd,
    "SBU-shadow": sbu.import_sbu,
    "Flare7K": flare7k.import_flare7k,
    "Trans10K": trans10k.import_trans10k,
    FIT_SOURCE: sa1b.import_sa1b,              # writes the fit set, <out>/fit/{train,val}
}


def import_dataset(name: str, src, out, *, seed: int = 0, min_area: int = DEFAULT_MIN_AREA, **options) -> ImportResult:
    """Convert the native dataset ``name`` at ``src`` into ``<out>/<name>/<split>`` (SA-1B: ``<out>/fit``).

    ``options`` are importer-specific (``overwrite``; COD10K-v3: ``include_noncam``; MSD_Spleen: ``window``;
    SA-1B: ``images``, ``val_images``).
    """
    if name not in IMPORTERS:
        raise ValueError(f"no importer for {name!r}; available: {', '.join(IMPORTERS)}")
    return IMPORTERS[name](src, out, seed=seed, min_area=min_area, **options)


__all__ = ["DEFAULT_MIN_AREA", "IMPORTERS", "ImportResult", "import_dataset"]
