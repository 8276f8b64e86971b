"""The data layer: the UncertSAM benchmark layout, its download, importers from the native datasets,
and (in ``mini``) the synthetic UncertSAM-mini set.

``from uncertsam_utils.data import SplitReader`` reads any split in the layout; see
:mod:`uncertsam_utils.data.layout` for the format and what happens with bad input.

The names below are imported on first use (PEP 562), so that importing the package (as the CLI does
for ``--help``) does not pull in numpy, pycocotools and Pillow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "DATASETS": "uncertsam_utils.data.names",
    "SPLITS": "uncertsam_utils.data.names",
    "DataError": "uncertsam_utils.data.errors",
    "Sample": "uncertsam_utils.data.layout",
    "SplitReader": "uncertsam_utils.data.layout",
    "list_datasets": "uncertsam_utils.data.layout",
    "list_splits": "uncertsam_utils.data.layout",
    "write_split": "uncertsam_utils.data.layout",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from uncertsam_utils.data.errors import DataError
    from uncertsam_utils.data.layout import Sample, SplitReader, list_datasets, list_splits, write_split
    from uncertsam_utils.data.names import DATASETS, SPLITS


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value          # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
