"""The variance network (paper §3.4): a head on the frozen decoder's tokens that predicts a per-pixel
log-variance (``head``), its training on a fit set (``training``), and the UQ method that uses it
(``method``, registered in ``uq.METHODS`` as ``varnet``)."""

from .head import HeadModelMismatchError, VarianceHead, load_head, save_head
from .method import VarianceNetwork
from .training import VarnetTrainConfig, cached_head_path, train_or_load, train_or_load_seeds, train_variance_head

__all__ = ["HeadModelMismatchError", "VarianceHead", "VarianceNetwork", "VarnetTrainConfig", "cached_head_path",
           "load_head", "save_head", "train_or_load", "train_or_load_seeds", "train_variance_head"]
