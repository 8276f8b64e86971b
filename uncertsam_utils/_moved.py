"""Old module paths, importable for one release after the 0.2 restructure (see README, "Architecture").

``MOVED`` maps each module path of 0.1 to its new home. Importing an old path returns the new
module itself (``sys.modules`` holds one object under both names, so patching either patches both)
and emits a ``DeprecationWarning`` naming the new path. Package code never imports an old path
(tests/test_architecture.py checks it); notebooks and users may, until 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED: dict[str, str] = {
    # training: one loop for the post-hoc modules, the nano in its own folder, the variance network in one
    "uncertsam_utils.schedule": "uncertsam_utils.training.schedule",
    "uncertsam_utils.uq.varnet_head": "uncertsam_utils.uq.varnet.head",
    "uncertsam_utils.uq.varnet_training": "uncertsam_utils.uq.varnet.training",
    "uncertsam_utils.model.train_nano": "uncertsam_utils.model.nano",
    "uncertsam_utils.model.nano_card": "uncertsam_utils.model.nano.card",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def create_module(self, spec):
        warnings.warn(f"{self.old} moved to {self.new}; the old path goes away in uncertsam-utils 0.3",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:
        pass  # the new module is already executed


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(fullname, new))


def install() -> None:
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
