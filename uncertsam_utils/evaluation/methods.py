"""The methods of an evaluation by name, with their fitted parts loaded and checked against the model."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from ..uq.base import UQMethod
from ..uq.combined import CombinedUncertainty

NEEDS_POSTERIOR = ("laplace", "laplace-untempered", "laplace-paper", "baseline-ts")
NEEDS_HEAD = ("varnet",)
NEEDS_FUSION = ("fusion-laplace", "fusion-ones", "fusion-entropy")


def build_methods(names: Sequence[str], loaded_model, *, T: int = 10, K: int = 10, posterior=None, head=None,
                  components: Sequence[str] | None = None, fusion: Mapping | None = None) -> dict[str, UQMethod]:
    """Method instances by name, for the CLI and the notebooks.

    ``T`` (TTA copies), ``K`` (prompt perturbations), ``posterior`` (a fitted Laplace posterior file for
    ``laplace`` and ``laplace-paper``, or a dict method name → file, since the paper's predictive is
    normally paired with a ``--recipe paper`` posterior), ``head`` (a trained variance head file, for
    ``varnet``), ``fusion`` (method name → trained fusion file, for the ``fusion-*`` refinement variants;
    those with a Laplace first pass use the ``laplace`` posterior).
    A combination (``combined-rank``, ``combined-product``) is built from its default components, or
    from ``components``; a component that is also in ``names`` is the same instance, so the driver
    computes it once.
    """
    from ..uq import METHODS

    built: dict[str, UQMethod] = {}

    def single(name: str) -> UQMethod:
        if name in built:
            return built[name]
        if name not in METHODS:
            raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
        cls = METHODS[name]
        if issubclass(cls, CombinedUncertainty):
            raise ValueError(f"{name!r} cannot be a component of a combination")
        if name == "tta":
            method = cls(T=T)
        elif name == "prompt":
            method = cls(K=K)
        elif name in NEEDS_HEAD:
            if head is None:
                raise ValueError(f"method {name!r} needs a trained variance head: pass head=FILE (--head)")
            method = cls.load(head, loaded_model)
        elif name in NEEDS_POSTERIOR:
            fitted = posterior.get(name) if isinstance(posterior, Mapping) else posterior
            if fitted is None:
                raise ValueError(f"method {name!r} needs a fitted Laplace posterior: pass posterior=FILE (--posterior"
                                 f"{'-paper' if name == 'laplace-paper' else ''})")
            method = _load_laplace(cls, fitted, loaded_model)
        elif name in NEEDS_FUSION:
            method = _load_fusion(cls, (fusion or {}).get(name), posterior, loaded_model)
        else:
            method = cls()
        built[name] = method
        return method

    out: dict[str, UQMethod] = {}
    for name in names:  # plain methods first, so that combinations share their instances
        if name in METHODS and not issubclass(METHODS[name], CombinedUncertainty):
            out[name] = single(name)
    for name in names:
        if name in out:
            continue
        cls = METHODS.get(name)
        if cls is None:
            raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
        wanted = tuple(components) if components else cls.default_components
        out[name] = cls({c: single(c) for c in wanted})
    return {name: out[name] for name in names}


class MethodsUnavailable(ValueError):
    """Methods that could not be built (a fitted part missing or for another model)."""


def build_available(names: Sequence[str], loaded_model, *, allow_missing: bool = False,
                    log: Callable[[str], None] = print, **parts) -> tuple[dict[str, UQMethod], dict[str, str]]:
    """``build_methods(names, loaded_model, **parts)``, each method tried on its own first.

    A method that fails to build (its fitted part is missing, unreadable or for another model) stops
    here with every such method and why (``MethodsUnavailable``), unless ``allow_missing``: then it
    is left out and said. Returns (the built methods, ``{left-out method: why}``) - the record the
    tables name (``coverage.check_coverage(..., left_out=...)``). An unknown name is always an error."""
    left_out = {}
    for name in names:
        try:
            build_methods([name], loaded_model, **parts)
        except (ValueError, FileNotFoundError) as err:
            left_out[name] = str(err).splitlines()[0]
    if left_out and not allow_missing:
        raise MethodsUnavailable("cannot build " + ", ".join(left_out) + ":\n"
                                 + "\n".join(f"  {name}: {why}" for name, why in left_out.items())
                                 + "\nprovide the missing parts, or pass allow_missing_methods=True to leave them out "
                                 "(the tables then name them)")
    for name, why in left_out.items():
        log(f"left out {name}: {why}")
    return build_methods([n for n in names if n not in left_out], loaded_model, **parts), left_out


def _load_laplace(cls, posterior, loaded_model) -> UQMethod:
    """A Laplace method with its fitted posterior (a file or a posterior object), checked against the
    model's treated layer now rather than at the first image."""
    method = cls(posterior=posterior)
    fitted = getattr(method, "fitted", None)
    if hasattr(fitted, "check_model"):
        fitted.check_model(loaded_model)  # PosteriorMismatchError (a ValueError) for another model
    return method


def _load_fusion(cls, fusion_file, posterior, loaded_model) -> UQMethod:
    """A fused refinement variant with its trained module, checked against the model now."""
    from ..refine.fusion import load_fusion
    from ..refine.passes import UNCERTAINTY_SOURCES
    from ..uq.laplace import LaplaceExact

    if fusion_file is None:
        raise ValueError(f"method {cls.name!r} needs a trained fusion module: pass fusion={{{cls.name!r}: FILE}} "
                         f"(--fusion {cls.name}=FILE) from `uncertsam train fusion --uncertainty {cls.uncertainty}`")
    from ..artifacts import model_identity

    module, _ = load_fusion(fusion_file, model_identity(loaded_model), uncertainty=cls.uncertainty)
    fitted = None
    if UNCERTAINTY_SOURCES[cls.uncertainty][0] == "laplace":
        fitted = posterior.get("laplace") if isinstance(posterior, Mapping) else posterior
        if fitted is None:
            raise ValueError(f"method {cls.name!r} has a Laplace first pass: pass posterior=FILE (--posterior)")
        fitted = _load_laplace(LaplaceExact, fitted, loaded_model).fitted
    method = cls(fusion=module, posterior=fitted)
    method.fusion = str(fusion_file)
    return method
