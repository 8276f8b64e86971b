"""Evaluation: every method on every image of a split, one CSV row per mask (paper §6).

* ``driver.py``: ``evaluate`` (one split) and ``evaluate_datasets`` (several datasets of a root), the
  protocol, resuming, the shared encoder pass;
* ``results.py``: the files (CSV format, atomic writes, ``evaluation.json``) and ``load_results``;
* ``methods.py``: ``build_methods``, the methods by name with their fitted parts;
* ``cache.py``: the notebooks' cached evaluations (``evaluate_cached``) and fitted parts
  (``fit_posterior_cached``, ``find_fitted_parts``), keyed by every input and verified on reuse;
* ``coverage.py``: ``check_coverage``, run before summarising: every requested dataset scored by
  every method, or an error (or, when allowed, a note the tables carry).

Every public name is importable from here (``uncertsam_utils.evaluate``, the module of 0.1, is this
package under its old name).
"""

from __future__ import annotations

from .cache import (
    LAPLACE_RECIPES,
    evaluate_cached,
    evaluation_cache_dir,
    evaluation_inputs,
    find_fitted_parts,
    fit_posterior_cached,
    needed_parts,
    posterior_cache_path,
    posterior_key,
)
from .coverage import Coverage, CoverageError, check_coverage
from .driver import evaluate, evaluate_datasets
from .methods import NEEDS_FUSION, NEEDS_HEAD, NEEDS_POSTERIOR, MethodsUnavailable, build_available, build_methods
from .results import (
    CSV_COLUMNS,
    FLOAT_FORMAT,
    FORMAT_VERSION,
    ID_COLUMNS,
    MANIFEST,
    PARTS,
    EvaluationMismatch,
    atomic_write,
    check_manifest,
    csv_path,
    format_rows,
    format_value,
    header,
    load_results,
)

__all__ = [
    "CSV_COLUMNS", "Coverage", "CoverageError", "EvaluationMismatch", "MethodsUnavailable", "build_available",
    "check_coverage", "evaluation_inputs", "posterior_key", "FLOAT_FORMAT", "FORMAT_VERSION", "ID_COLUMNS", "LAPLACE_RECIPES", "MANIFEST",
    "NEEDS_FUSION", "NEEDS_HEAD", "NEEDS_POSTERIOR", "PARTS", "atomic_write", "build_methods", "check_manifest",
    "csv_path", "evaluate", "evaluate_cached", "evaluate_datasets", "evaluation_cache_dir", "find_fitted_parts",
    "fit_posterior_cached", "format_rows", "format_value", "header", "load_results", "needed_parts",
    "posterior_cache_path",
]
