"""uncertsam_utils: the thin, importable core of the UncertSAM companion.

Notebooks orchestrate and plot; every computation lives here:
``model`` (registry + predictor core), ``data`` (benchmark layout, importers, UncertSAM-mini),
``uq`` (uncertainty methods), ``metrics``, ``evaluate``, ``refine``, ``plots``, ``cli``.
"""

__version__ = "0.2.0"

from ._moved import install as _install_moved_paths

_install_moved_paths()
