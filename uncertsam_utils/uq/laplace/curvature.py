"""Closed-form GGN of SAM's treated layer, as a laplace-torch curvature backend.

The treated layer is the last Linear of mask token 0's hypernetwork MLP, z = W h + b (W: C × D,
C = 32 on official SAM-2, 8 on the nano model), and the low-resolution logits are f = Uᵀ z with U
(C × P) the upscaled mask embedding. The logits are linear in θ = (W, b): the Jacobian of pixel p
factorises as ∂f_p/∂W_ck = U_cp h_k, ∂f_p/∂b_c = U_cp, i.e. J = Uᵀ ⊗ h̃ᵀ with h̃ = [h; 1]. For a
likelihood whose Hessian in the logits is Λ (P × P), one prompt's GGN is therefore exactly

    G = Jᵀ Λ J = A ⊗ h̃ h̃ᵀ,    A = U Λ Uᵀ  (C × C),

computed from per-pixel sums in O(P·C²) (O(P·C) for the diagonal), never forming a Jacobian:

* ``bernoulli`` (per-pixel sigmoid, the ``exact`` recipe): Λ = diag(λ), λ_p = σ(f_p)(1 − σ(f_p));
* ``softmax`` (one categorical over all pixels, the paper's likelihood): Λ = diag(p) − p pᵀ,
  p = softmax(f) over the P pixels, so A = U diag(p) Uᵀ − (U p)(U p)ᵀ. Like laplace-torch's
  ``GGNInterface`` that the paper used, the curvature ignores the (unnormalised multi-hot) target.

Structures, in laplace-torch's parameter order (W row-major, then b):

* ``diag``: G_W[c, k] = A_cc h_k², G_b[c] = A_cc;
* ``full``: the (C(D+1))² matrix Σ_n A_n ⊗ h̃_n h̃_nᵀ, built by one matrix product per batch;
* ``kron``: laplace-torch's Kronecker layout [[A_W, B_W], [A_b]] for the weight and the bias.
  Each prompt's weight block is *exactly* A_n ⊗ h_n h_nᵀ; over N prompts KFAC approximates
  Σ_n A_n ⊗ h_n h_nᵀ by (Σ_n A_n) ⊗ (1/N Σ_n h_n h_nᵀ) (exact for N = 1, and exact in
  expectation if A_n and h_n are independent). The bias block Σ_n A_n is exact; weight–bias cross
  terms are dropped (block diagonal, as laplace-torch's kron always is). This is what K-FAC means
  for a layer applied once per prompt: the N in 1/N counts prompts, the pixels are outputs. It
  differs from what laplace-torch's own kron backends produce on per-pixel outputs (its
  Curvlinops backend treats the P pixels as P data points with shared weights and scales the
  factors by P to P², see reference/environment.md §4), which is why the test compares kron with
  the formula above and with the exact GGN at N = 1, not with laplace-torch's kron.

The backend plugs into laplace-torch's own ``fit`` loop (accumulation of H and of the loss,
``n_data``, the Kron eigendecomposition, the progress bar): ``SegDiagLaplace(...,
backend=ClosedFormGGN, backend_kwargs=dict(pixel_likelihood=..., fit_size=...))``. Batches are
dicts with ``h`` (n, D), ``U`` (n, C, m, m) and ``labels`` (n, m, m) integer masks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from laplace.curvature import CurvatureInterface
from laplace.utils import Kron

PIXEL_LIKELIHOODS = ("bernoulli", "softmax")


def resize_embedding(U: torch.Tensor, size: int | None) -> torch.Tensor:
    """Bilinearly resize (n, C, m, m) to ``size``² (align_corners=False, no antialias, as the paper
    resizes its logits; resizing is linear, so resizing U equals resizing the logits)."""
    if size is None or size == U.shape[-1]:
        return U
    return F.interpolate(U.float(), size=(size, size), mode="bilinear", align_corners=False)


def resize_labels(labels: torch.Tensor, size: int | None) -> torch.Tensor:
    """Nearest-neighbour resize of (n, m, m) masks, as the paper resizes its targets to 128²."""
    if size is None or size == labels.shape[-1]:
        return labels
    return F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")[:, 0].to(labels.dtype)


def logits_of(h: torch.Tensor, U: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """f = Uᵀ (W h + b): (n, D), (n, C, m, m) → (n, m, m)."""
    z = h.float() @ weight.float().T + bias.float()
    return torch.einsum("nc,nc...->n...", z, U.float())


def output_factors(U: torch.Tensor, logits: torch.Tensor, pixel_likelihood: str, *, diagonal: bool = False) -> torch.Tensor:
    """A = U Λ Uᵀ per prompt: (n, C, C), or its diagonal (n, C) with ``diagonal=True``."""
    n, c = U.shape[:2]
    flat_u = U.float().reshape(n, c, -1)
    flat_f = logits.float().reshape(n, -1)
    if pixel_likelihood == "bernoulli":
        s = torch.sigmoid(flat_f)
        weights = s * (1.0 - s)
        if diagonal:
            return torch.einsum("ncp,np->nc", flat_u * flat_u, weights)
        return torch.bmm(flat_u * weights[:, None], flat_u.transpose(1, 2))
    if pixel_likelihood == "softmax":
        p = torch.softmax(flat_f, dim=-1)
        first = torch.einsum("ncp,np->nc", flat_u, p)
        if diagonal:
            return torch.einsum("ncp,np->nc", flat_u * flat_u, p) - first * first
        return torch.bmm(flat_u * p[:, None], flat_u.transpose(1, 2)) - first[:, :, None] * first[:, None, :]
    raise ValueError(f"unknown pixel likelihood {pixel_likelihood!r}; choose from {PIXEL_LIKELIHOODS}")


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor, pixel_likelihood: str) -> torch.Tensor:
    """Summed over prompts and pixels: per-pixel binary cross-entropy, or the paper's soft-label
    cross-entropy of the mask against a softmax over pixels (CrossEntropyLoss(sum), multi-hot target)."""
    flat_f = logits.float().reshape(logits.shape[0], -1)
    target = labels.float().reshape(labels.shape[0], -1)
    if pixel_likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(flat_f, target, reduction="sum")
    return -(target * torch.log_softmax(flat_f, dim=-1)).sum()


def augmented(h: torch.Tensor) -> torch.Tensor:
    """h̃ = [h; 1] (n, D + 1): the bias is the weight of a constant input."""
    return torch.cat([h.float(), torch.ones_like(h[:, :1], dtype=torch.float32)], dim=1)


def laplace_order(out_features: int, in_features: int, device=None) -> torch.Tensor:
    """Index into the augmented vectorisation (c, k̃), k̃ ∈ [0, D], of laplace-torch's parameter
    order [W.flatten() (c-major), b]: ``theta_laplace = theta_augmented[index]``."""
    c = torch.arange(out_features, device=device)
    k = torch.arange(in_features, device=device)
    weight = (c[:, None] * (in_features + 1) + k[None, :]).reshape(-1)
    bias = c * (in_features + 1) + in_features
    return torch.cat([weight, bias])


def hyper_jacobians(h: torch.Tensor, out_features: int) -> torch.Tensor:
    """∂z/∂θ for z = W h + b in laplace-torch's order: (n, C, C·D + C); J[c, c·D + k] = h_k, J[c, C·D + c] = 1."""
    n, d = h.shape
    eye = torch.eye(out_features, dtype=h.dtype, device=h.device)
    weight = (eye[None, :, :, None] * h[:, None, None, :]).reshape(n, out_features, out_features * d)
    return torch.cat([weight, eye.expand(n, out_features, out_features)], dim=2)


class ClosedFormGGN(CurvatureInterface):
    """laplace-torch curvature backend for the treated layer, from the closed forms of the module docstring.

    ``model`` is a :class:`~uncertsam_utils.uq.laplace.structures.HyperHead` (the treated Linear);
    batches are dicts ``{"h", "U", "labels"}``. ``pixel_likelihood`` ∈ {bernoulli, softmax};
    ``fit_size`` resizes U (bilinear) and the labels (nearest) first, as the paper fits at 128².
    """

    def __init__(self, model, likelihood, last_layer: bool = False, subnetwork_indices=None,
                 dict_key_x: str = "input_ids", dict_key_y: str = "labels", *,
                 pixel_likelihood: str = "bernoulli", fit_size: int | None = None):
        if pixel_likelihood not in PIXEL_LIKELIHOODS:
            raise ValueError(f"unknown pixel likelihood {pixel_likelihood!r}; choose from {PIXEL_LIKELIHOODS}")
        super().__init__(model, likelihood, last_layer, subnetwork_indices, dict_key_x, dict_key_y)
        self.pixel_likelihood = pixel_likelihood
        self.fit_size = fit_size
        self.layer = model.layer

    # The generic Jacobian machinery is never needed: the GGN is assembled from A and h.
    def jacobians(self, x, enable_backprop: bool = False):
        raise NotImplementedError("ClosedFormGGN has no per-pixel Jacobians; use the closed forms")

    def _prepare(self, x, y):
        device = self.layer.weight.device
        h = x["h"].to(device, torch.float32)
        U = resize_embedding(x["U"].to(device, torch.float32), self.fit_size)
        labels = resize_labels(y.to(device), self.fit_size)
        with torch.no_grad():
            logits = logits_of(h, U, self.layer.weight, self.layer.bias)
            loss = negative_log_likelihood(logits, labels, self.pixel_likelihood)
        return h, U, logits, loss.detach()

    def diag(self, x, y, **kwargs: Any):
        h, U, logits, loss = self._prepare(x, y)
        with torch.no_grad():
            a = output_factors(U, logits, self.pixel_likelihood, diagonal=True)  # (n, C)
            weight = torch.einsum("nc,nk->ck", a, h * h).reshape(-1)
            H = torch.cat([weight, a.sum(0)])
        return self.factor * loss, self.factor * H

    def kron(self, x, y, N: int, **kwargs: Any):
        h, U, logits, loss = self._prepare(x, y)
        with torch.no_grad():
            A = output_factors(U, logits, self.pixel_likelihood).sum(0)  # Σ_n A_n (C, C)
            B = h.T @ h / N  # (1/N) Σ_n h hᵀ over the whole fit: factors add up over batches
            kron = Kron([[A, B], [A.clone()]])
        return self.factor * loss, kron * self.factor

    def full(self, x, y, **kwargs: Any):
        h, U, logits, loss = self._prepare(x, y)
        with torch.no_grad():
            H = full_ggn(output_factors(U, logits, self.pixel_likelihood), h)
        return self.factor * loss, self.factor * H


def full_ggn(A: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Σ_n A_n ⊗ h̃_n h̃_nᵀ in laplace-torch's order, as one (C², (D+1)²) matrix product."""
    n, c, _ = A.shape
    ht = augmented(h)
    d1 = ht.shape[1]
    outer = (ht[:, :, None] * ht[:, None, :]).reshape(n, d1 * d1)
    blocks = (A.reshape(n, c * c).T @ outer).reshape(c, c, d1, d1)  # [c, c', k, k']
    G = blocks.permute(0, 2, 1, 3).reshape(c * d1, c * d1)  # augmented order (c, k), (c', k')
    index = laplace_order(c, d1 - 1, device=G.device)
    return G.index_select(0, index).index_select(1, index)
