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
    # the command line: one package, one module per command group
    "uncertsam_utils.model.model_cli": "uncertsam_utils.cli.checkpoints",
    "uncertsam_utils.data.data_cli": "uncertsam_utils.cli.data",
    "uncertsam_utils.train_cli": "uncertsam_utils.cli.train",
    "uncertsam_utils.fit_cli": "uncertsam_utils.cli.fit",
    "uncertsam_utils.eval_cli": "uncertsam_utils.cli.eval",
    # the evaluation driver and the Laplace approximation: one package each
    "uncertsam_utils.evaluate": "uncertsam_utils.evaluation",
    "uncertsam_utils.uq.laplace_curvature": "uncertsam_utils.uq.laplace.curvature",
    # its names went to laplace/structures, features, fitting and posterior; the package offers them all
    "uncertsam_utils.uq.laplace_posterior": "uncertsam_utils.uq.laplace",
    "uncertsam_utils.uq.laplace_predictive": "uncertsam_utils.uq.laplace.predictive",
    # UncertSAM-mini: one package, one module per domain family
    "uncertsam_utils.data.mini_camouflage": "uncertsam_utils.data.mini.camouflage",
    "uncertsam_utils.data.mini_common": "uncertsam_utils.data.mini.common",
    "uncertsam_utils.data.mini_ct": "uncertsam_utils.data.mini.ct",
    "uncertsam_utils.data.mini_diagnostics": "uncertsam_utils.data.mini.diagnostics",
    "uncertsam_utils.data.mini_domains": "uncertsam_utils.data.mini.domains",
    "uncertsam_utils.data.mini_fit": "uncertsam_utils.data.mini.fit",
    "uncertsam_utils.data.mini_flare": "uncertsam_utils.data.mini.flare",
    "uncertsam_utils.data.mini_glass": "uncertsam_utils.data.mini.glass",
    "uncertsam_utils.data.mini_shadows": "uncertsam_utils.data.mini.shadows",
    "uncertsam_utils.data.mini_shapes": "uncertsam_utils.data.mini.shapes",
    "uncertsam_utils.data.mini_textures": "uncertsam_utils.data.mini.textures",
    "uncertsam_utils.data.mini_thin": "uncertsam_utils.data.mini.thin",
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
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # The new module is already executed; the import system has just set its __spec__ to the old
        # path's, which would misname it (find_spec, reload, and __package__ checks of a package).
        module.__spec__ = self.spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(fullname, new))


def install() -> None:
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
