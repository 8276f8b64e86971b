"""Uncertainty-guided refinement (paper §5): dense embedding fusion, its training, and the Table 1 variants.

The variants implement the uncertainty-method interface and are registered in ``uq.METHODS``;
``uq`` is imported first so that either package can be imported first.
"""

from .. import uq as _uq  # noqa: F401
