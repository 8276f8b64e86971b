"""The posterior's structures: laplace-torch's ``DiagLaplace`` / ``KronLaplace`` / ``FullLaplace`` for SAM.

laplace-torch is the posterior engine. The posterior of SAM's treated layer (the last Linear of mask
token 0's hypernetwork; everything else frozen) is one of the thin subclasses below, whose model is
that Linear alone (:class:`HyperHead`, a copy holding the MAP weights) and whose curvature backend is
our closed form (:class:`~uncertsam_utils.uq.laplace.curvature.ClosedFormGGN`). laplace-torch's own
code does the rest: ``fit`` (accumulating H and the loss over a DataLoader, with its progress bar),
``optimize_prior_precision`` (marginal likelihood; grid search on a validation loader),
``log_marginal_likelihood``, ``functional_variance`` (the hypernetwork output's covariance
Σ_z = J Σ Jᵀ with J = ∂z/∂θ, C × 8,224), ``sample`` and ``state_dict`` / ``load_state_dict``.

The subclasses add only what laplace-torch cannot know about SAM's dense output:

* ``_glm_predictive_distribution``: per-pixel 2-class outputs [0, f_p] with variance v_p =
  u_pᵀ Σ_z u_p in closed form, so ``la(X, pred_type="glm", link_approx="probit")`` (hence grid
  search) works at full resolution without a (pixels × 2 × 8,224) Jacobian;
* for ``full``: Σ_z by a structured contraction of the cached posterior covariance (67 MFLOP
  per prompt instead of 2.2 GFLOP), and log det of the posterior precision from one
  eigendecomposition of H when the prior is scalar (marglik's 100 Adam steps would otherwise
  factorise an 8,224² matrix 100 times).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from laplace.baselaplace import DiagLaplace, FullLaplace, KronLaplace
from laplace.utils import Kron
from torch import nn

from .curvature import (
    ClosedFormGGN,
    augmented,
    hyper_jacobians,
    laplace_order,
    logits_of,
)
from .predictive import pixel_logit_variance

STRUCTURES = ("diag", "kron", "full")


class HyperHead(nn.Module):
    """The treated Linear alone (a copy with the MAP weights): what laplace-torch's model is.

    ``forward`` takes a batch dict ``{"h" (n, D), "U" (n, C, m, m)}`` and returns per-pixel
    two-class logits [0, f_p] of shape (n·m·m, 2) (softmax of which is the per-pixel sigmoid).
    """

    def __init__(self, layer: nn.Linear):
        super().__init__()
        self.layer = copy.deepcopy(layer).float().cpu()
        for p in self.layer.parameters():
            p.requires_grad_(True)

    def forward(self, x) -> torch.Tensor:
        f = self.pixel_logits(x["h"], x["U"]).reshape(-1)
        return torch.stack([torch.zeros_like(f), f], dim=-1)

    def pixel_logits(self, h: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        device = self.layer.weight.device
        return logits_of(h.to(device), U.to(device), self.layer.weight, self.layer.bias)


class _SegmentationMixin:
    """Closed-form predictive pieces shared by the three structures (see the module docstring)."""

    def hyper_covariance(self, h: torch.Tensor) -> torch.Tensor:
        """Σ_z (n, C, C) of z = W h + b under the posterior, via laplace-torch's functional_variance."""
        h = h.to(self._device, self._dtype)
        return self.functional_variance(hyper_jacobians(h, self.model.layer.out_features))

    def pixel_logit_variance(self, h: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        cov = self.hyper_covariance(h).to(U.device)
        return pixel_logit_variance(cov, U, diagonal=isinstance(self, DiagLaplace))

    def _glm_predictive_distribution(self, X, joint: bool = False, diagonal_output: bool = False):
        if joint:
            raise NotImplementedError("joint predictives over pixels are not supported")
        with torch.no_grad():
            mu = self.model.pixel_logits(X["h"], X["U"]).reshape(-1)
            var = self.pixel_logit_variance(X["h"], X["U"].to(mu.device)).reshape(-1)
        f_mu = torch.stack([torch.zeros_like(mu), mu], dim=-1)
        if diagonal_output:
            return f_mu, torch.stack([torch.zeros_like(var), var], dim=-1)
        f_var = torch.zeros(mu.shape[0], 2, 2, dtype=mu.dtype, device=mu.device)
        f_var[:, 1, 1] = var
        return f_mu, f_var


@contextmanager
def single_threaded():
    """Run small-tensor work on one thread. On oversubscribed CPUs every multi-threaded region waits
    for a descheduled worker: measured on 2 busy cores, ``eigh`` of 520² took 27 s instead of 0.2 s
    and ``log`` of 520 numbers (MKL VML) 34 ms instead of 3 µs. Used for eigendecompositions and
    for the prior search (hundreds of log-determinants of small factors)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Kron(Kron):
    """laplace-torch's Kron whose eigendecomposition runs single-threaded (see ``single_threaded``)."""

    def __add__(self, other):
        return _Kron(super().__add__(other).kfacs)

    __radd__ = __add__

    def decompose(self, damping: bool = False):
        with single_threaded():
            return super().decompose(damping=damping)


class SegDiagLaplace(_SegmentationMixin, DiagLaplace):
    """laplace-torch's DiagLaplace with SAM's closed-form per-pixel predictive."""


class SegKronLaplace(_SegmentationMixin, KronLaplace):
    """laplace-torch's KronLaplace with SAM's closed-form per-pixel predictive."""

    def _init_H(self) -> None:
        self.H = _Kron.init_from_model(self.params, self._device, self._dtype)


class SegFullLaplace(_SegmentationMixin, FullLaplace):
    """laplace-torch's FullLaplace with SAM's closed-form per-pixel predictive and cached factorisations."""

    def fit(self, train_loader, override: bool = True, progress_bar: bool = False) -> None:
        self._eigen = None
        self._covariance_cache = None
        super().fit(train_loader, override=override, progress_bar=progress_bar)

    def load_state_dict(self, state_dict) -> None:
        self._eigen = None
        self._covariance_cache = None
        super().load_state_dict(state_dict)

    def _eigh(self):
        if getattr(self, "_eigen", None) is None:
            H = self.H.double() if self.H.shape[0] <= 4096 else self.H
            with single_threaded():
                values, vectors = torch.linalg.eigh(0.5 * (H + H.T))
            self._eigen = (values.clamp_min(0.0).to(self._dtype), vectors.to(self._dtype))
        return self._eigen

    @property
    def log_det_posterior_precision(self) -> torch.Tensor:
        if self.prior_precision.numel() == 1:  # log det(c H + τ I) = Σ log(c λ_i + τ), any τ
            values, _ = self._eigh()
            return torch.log(self._H_factor * values + self.prior_precision).sum()
        return super().log_det_posterior_precision

    @property
    def posterior_covariance(self) -> torch.Tensor:
        key = (tuple(self.prior_precision.detach().cpu().reshape(-1).tolist()), float(self._H_factor))
        cache = getattr(self, "_covariance_cache", None)
        if cache is None or cache[0] != key:
            if self.prior_precision.numel() == 1:
                values, vectors = self._eigh()
                inverse = 1.0 / (self._H_factor * values + self.prior_precision.detach())
                cov = (vectors * inverse) @ vectors.T
            else:
                cov = super().posterior_covariance
            self._covariance_cache = (key, cov.detach())
        return self._covariance_cache[1]

    def hyper_covariance(self, h: torch.Tensor) -> torch.Tensor:
        """Σ_z[c, d] = h̃ᵀ Cov[(c, ·), (d, ·)] h̃ from the covariance in augmented order."""
        layer = self.model.layer
        c, d = layer.out_features, layer.in_features
        cov = self.posterior_covariance
        order = laplace_order(c, d, device=cov.device)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=cov.device)
        cov_aug = cov.index_select(0, inverse).index_select(1, inverse)  # (c, k̃), (c', k̃')
        ht = augmented(h.to(cov.device, cov.dtype))  # (n, d + 1)
        half = (cov_aug.reshape(c * (d + 1) * c, d + 1) @ ht.T).reshape(c, d + 1, c, -1)
        return torch.einsum("ckdn,nk->ncd", half, ht)


LAPLACE_CLASSES = {"diag": SegDiagLaplace, "kron": SegKronLaplace, "full": SegFullLaplace}


def make_laplace(layer: nn.Linear, structure: str, pixel_likelihood: str, fit_size: int | None,
                 prior_precision: float = 1.0, temperature: float = 1.0):
    """A structure for ``layer``; ``temperature`` divides the likelihood (laplace-torch's GGN and loss factor)."""
    if structure not in LAPLACE_CLASSES:
        raise ValueError(f"unknown Hessian structure {structure!r}; choose from {', '.join(STRUCTURES)}")
    return LAPLACE_CLASSES[structure](
        HyperHead(layer), "classification", prior_precision=prior_precision, temperature=float(temperature),
        backend=ClosedFormGGN,
        backend_kwargs={"pixel_likelihood": pixel_likelihood, "fit_size": fit_size},
    )


__all__ = ["HyperHead", "LAPLACE_CLASSES", "STRUCTURES", "SegDiagLaplace", "SegFullLaplace", "SegKronLaplace",
           "make_laplace", "single_threaded"]
