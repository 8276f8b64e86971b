"""Per-pixel predictive of the last-layer Laplace approximation: closed forms in logit space.

For one prompt the treated layer's output (the hypernetwork vector) z ∈ R^C is Gaussian under the
linearised posterior, z ~ N(z_MAP, Σ_z), and every low-resolution logit is linear in it,
f_p = u_pᵀ z (u_p: column p of the upscaled embedding U). So each pixel's logit is Gaussian,
f_p ~ N(μ_p, v_p) with μ_p the MAP logit and v_p = u_pᵀ Σ_z u_p, and every per-pixel map is a
one-dimensional Gaussian expectation of a function of σ(f_p): no network re-evaluation.

Closed forms (fp32, vectorised over pixels)
-------------------------------------------
The logistic sigmoid is written as a K = 5 mixture of probits, σ(x) ≈ Σ_i a_i Φ(b_i x) (weights and
scales fitted here once, max |error| 6e-7 on the real line; MacKay's probit is the K = 1 case with
b = √(π/8)). Gaussian expectations of probits and of normal densities are closed forms, which gives

* mean probability  E[σ(f)]     ≈ Σ a_i Φ(b_i μ / √(1 + b_i² v))                    (error ≤ 6e-7);
* expected entropy  E[H(σ(f))]  ≈ Σ a_i b_i⁻² N(μ; 0, b_i⁻² + v)                   (error ≤ 3e-6), from
  H(σ(t)) = softplus(t) − t σ(t), softplus = ∫σ, and Stein's lemma;
* hence the entropy of the mean (the paper's map) and the mutual information
  MI = H(E[σ(f)]) − E[H(σ(f))] in closed form, for every (μ, v);
* the standard deviation of the probability, √Var[σ(f)], by Gauss–Hermite quadrature (32 nodes, as
  a centred second moment) where v ≤ 10, and by the mixture (E[σ²] = E[σ] − E[σ′]) above, where
  Gauss–Hermite fails: the integrand becomes a step narrower than the node spacing (32 nodes are
  off by up to 0.05 at v ≈ 10³) while the mixture's cancellation error (≈ 1e-3 as v → 0) vanishes.
  Max error of the combination ≈ 2e-4.

``link="probit"`` gives laplace-torch's probit instead, σ(μ / √(1 + π v / 8)): it is off by up to
0.017 in probability at v ≈ 100 (0.005 already at v ≈ 1), too much for the 0.005 Monte Carlo check
at the variances a posterior with prior precision 1 produces; the maps that need the accurate
expectations (MI, std) use the mixture in both cases.

The ``paper`` recipe's Monte Carlo path (:func:`mc_maps`) samples z, not the 8,224 weights: the
same distribution (z = W h + b is linear in the weights), S × C numbers per prompt instead of
S × 8,224, vectorised over samples in memory-bounded chunks.
"""

from __future__ import annotations

import math

import torch

from .measures import EPS

# σ(x) ≈ Σ a_i Φ(b_i x): least-squares + Lawson minimax refinement on [−30, 30]; max error 6.0e-7.
# Σ a_i / b_i² = 3.28978 ≈ π²/3, the logistic distribution's variance, as it must be.
LOGISTIC_MIXTURE_WEIGHTS = (0.02331304, 0.20762914, 0.42976761, 0.29495028, 0.04433993)
LOGISTIC_MIXTURE_SCALES = (0.2915082, 0.41094455, 0.57621739, 0.80389999, 1.12269423)
STD_QUADRATURE_MAX_VARIANCE = 10.0  # Gauss–Hermite below, mixture above (see the module docstring)
LINKS = ("mixture", "probit")
PAPER_CLIP_EPS = 1e-2  # the paper's bf16 path: probabilities in [0.01, 0.99], logits in ±4.595


def _mixture(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.tensor(LOGISTIC_MIXTURE_WEIGHTS, dtype=torch.float64)
    a = (a / a.sum()).to(like.device, like.dtype)
    b = torch.tensor(LOGISTIC_MIXTURE_SCALES, device=like.device, dtype=like.dtype)
    return a, b


def log_mean_probabilities(mu: torch.Tensor, var: torch.Tensor, link: str = "mixture") -> tuple[torch.Tensor, torch.Tensor]:
    """(log E[σ(f)], log E[1 − σ(f)]) for f ~ N(mu, var), computed without cancellation."""
    mu, var = mu.float(), var.float().clamp_min(0.0)
    if link == "probit":
        scaled = mu / torch.sqrt(1.0 + (math.pi / 8.0) * var)
        return torch.nn.functional.logsigmoid(scaled), torch.nn.functional.logsigmoid(-scaled)
    if link != "mixture":
        raise ValueError(f"unknown link {link!r}; choose from {LINKS}")
    a, b = _mixture(mu)
    x = mu[..., None] * (b / torch.sqrt(1.0 + b * b * var[..., None]))
    log_a = a.log()
    log_p = torch.logsumexp(log_a + torch.special.log_ndtr(x), dim=-1)
    log_q = torch.logsumexp(log_a + torch.special.log_ndtr(-x), dim=-1)
    return log_p, log_q


def mean_probability(mu: torch.Tensor, var: torch.Tensor, link: str = "mixture") -> torch.Tensor:
    return log_mean_probabilities(mu, var, link)[0].exp()


def _mixture_normal_terms(mu: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """a_i, b_i and N(μ; 0, b_i⁻² + v) with a trailing mixture dimension."""
    a, b = _mixture(mu)
    total = 1.0 / (b * b) + var[..., None]
    density = torch.exp(-0.5 * mu[..., None] ** 2 / total) / torch.sqrt(2.0 * math.pi * total)
    return a, b, density


def expected_entropy(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """E[H(σ(f))] in nats for f ~ N(mu, var) (the aleatoric part of the predictive entropy)."""
    a, b, density = _mixture_normal_terms(mu.float(), var.float().clamp_min(0.0))
    return (a / (b * b) * density).sum(-1)


def entropy_from_logs(log_p: torch.Tensor, log_q: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Binary entropy from log p and log(1 − p); p clamped to [eps, 1 − eps] like ``binary_entropy``."""
    log_lo, log_hi = math.log(eps), math.log1p(-eps)
    log_p, log_q = log_p.clamp(log_lo, log_hi), log_q.clamp(log_lo, log_hi)
    return -(log_p.exp() * log_p + log_q.exp() * log_q)


def probability_std(mu: torch.Tensor, var: torch.Tensor, *, nodes: int = 32,
                    switch: float = STD_QUADRATURE_MAX_VARIANCE) -> torch.Tensor:
    """√Var[σ(f)] for f ~ N(mu, var): Gauss–Hermite where var ≤ switch, the probit mixture above."""
    mu, var = mu.float(), var.float().clamp_min(0.0)
    # Gauss–Hermite (probabilists'), nodes in logit space: μ + √v x_j; centred second moment.
    x, w = _hermite_e(nodes, mu)
    small = var.clamp(max=switch)
    p = torch.sigmoid(mu[..., None] + torch.sqrt(small)[..., None] * x)
    mean = (p * w).sum(-1)
    quad = ((p - mean[..., None]) ** 2 * w).sum(-1)
    # Mixture: Var = E[σ] − E[σ'] − E[σ]², E[σ'] = Σ a_i N(μ; 0, b_i⁻² + v).
    a, _, density = _mixture_normal_terms(mu, var)
    m = mean_probability(mu, var)
    mix = m - (a * density).sum(-1) - m * m
    return torch.where(var <= switch, quad, mix).clamp_min(0.0).sqrt()


_HERMITE_CACHE: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


def _hermite_e(n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if n not in _HERMITE_CACHE:
        import numpy as np

        x, w = np.polynomial.hermite_e.hermegauss(n)
        _HERMITE_CACHE[n] = (torch.from_numpy(x), torch.from_numpy(w / w.sum()))
    x, w = _HERMITE_CACHE[n]
    return x.to(like.device, like.dtype), w.to(like.device, like.dtype)


def predictive_maps(mu: torch.Tensor, var: torch.Tensor, *, link: str = "mixture", std_nodes: int = 32,
                    maps: tuple[str, ...] = ("entropy", "mutual_information", "std", "logit_variance")):
    """Mean probability, its logit and the requested per-pixel maps for logits f ~ N(mu, var).

    Returns ``(prob, logits, maps)``; logits = logit(E[σ(f)]) computed as log p − log(1 − p), so it
    is exact where p is within fp32 rounding of 0 or 1.
    """
    mu, var = mu.float(), var.float().clamp_min(0.0)
    log_p, log_q = log_mean_probabilities(mu, var, link)
    prob = log_p.exp()
    out: dict[str, torch.Tensor] = {}
    entropy = entropy_from_logs(log_p, log_q) if ("entropy" in maps or "mutual_information" in maps) else None
    for name in maps:
        if name == "entropy":
            out[name] = entropy
        elif name == "mutual_information":
            out[name] = (entropy - expected_entropy(mu, var)).clamp_min(0.0)
        elif name == "std":
            out[name] = probability_std(mu, var, nodes=std_nodes)
        elif name == "logit_variance":
            out[name] = var
        else:
            raise ValueError(f"unknown map {name!r}")
    return prob, log_p - log_q, out


def pixel_logit_variance(z_cov: torch.Tensor, U: torch.Tensor, *, diagonal: bool = False) -> torch.Tensor:
    """v_p = u_pᵀ Σ_z u_p for ``z_cov`` (n, C, C) and ``U`` (n, C, ...): (n, ...), no (C, C, P) temporaries.

    ``diagonal=True`` uses only the diagonal of Σ_z (exact for a diagonal posterior, where the
    hypernetwork outputs are independent): Σ_c U_cp² Σ_cc."""
    lead = U.shape[2:]
    flat = U.float().reshape(U.shape[0], U.shape[1], -1)
    z_cov = z_cov.float()
    if diagonal:
        var = torch.einsum("nc,ncp->np", z_cov.diagonal(dim1=-2, dim2=-1), flat * flat)
    else:
        var = (torch.bmm(z_cov, flat) * flat).sum(1)
    return var.clamp_min(0.0).reshape(U.shape[0], *lead)


# ----------------------------------------------------------------------------- Monte Carlo (paper)
def hyper_output_cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of (n, C, C) covariances; tiny diagonal jitter if rounding needs it."""
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    factor, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        scale = cov.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-30)[..., None, None]
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        factor = torch.linalg.cholesky(cov + 1e-6 * scale * eye)
    return factor


def mc_maps(z_mean: torch.Tensor, z_cov: torch.Tensor, U: torch.Tensor, *, samples: int, generator: torch.Generator,
            clip_eps: float | None = PAPER_CLIP_EPS, max_chunk_elements: int = 2**25):
    """The paper's Monte Carlo predictive, sampling the hypernetwork output z ~ N(z_mean, z_cov).

    ``z_mean`` (n, C), ``z_cov`` (n, C, C), ``U`` (n, C, m, m). Returns ``(prob, logits, maps)`` with
    p̄ = mean_s σ(f_s), the entropy of the mean, the mutual information H(p̄) − mean_s H(p_s), the
    unbiased std over samples and the closed-form logit variance. With ``clip_eps`` (the paper's
    bf16 ε = 1e-2) the entropies and the logit use p clamped to [ε, 1 − ε] and the returned
    probability is clamped likewise, reproducing the paper's [0.01, 0.99] / ±4.595 range.
    Samples are drawn on the generator's device; chunks only bound memory (≤ ``max_chunk_elements``
    logits at a time); the result does not depend on the chunking except for float rounding.
    """
    n, c = z_mean.shape
    m = U.shape[-1]
    pixels = U.shape[-2] * m
    device = U.device
    factor = hyper_output_cholesky(z_cov.float())
    noise = torch.randn((samples, n, c), generator=generator, device=generator.device, dtype=torch.float32).to(device)
    z = z_mean.float()[None] + torch.einsum("ncd,snd->snc", factor.to(device), noise)  # (S, n, C)
    flat_u = U.float().reshape(n, c, pixels)
    eps = EPS if clip_eps is None else float(clip_eps)
    chunk = max(1, min(samples, max_chunk_elements // max(1, n * pixels)))
    count = 0
    mean = torch.zeros(n, pixels, device=device)
    m2 = torch.zeros(n, pixels, device=device)
    entropy_sum = torch.zeros(n, pixels, device=device)
    for start in range(0, samples, chunk):  # chunks of samples: memory bound only, vectorised inside
        logits = torch.einsum("snc,ncp->snp", z[start:start + chunk], flat_u)
        p = torch.sigmoid(logits)
        k = p.shape[0]
        chunk_mean = p.mean(0)
        chunk_m2 = ((p - chunk_mean) ** 2).sum(0)
        pc = p.clamp(eps, 1.0 - eps)
        entropy_sum += -(pc * torch.log(pc) + (1.0 - pc) * torch.log1p(-pc)).sum(0)
        delta = chunk_mean - mean  # Chan et al.'s pairwise update of mean and M2
        total = count + k
        mean += delta * (k / total)
        m2 += chunk_m2 + delta * delta * (count * k / total)
        count = total
    var = pixel_logit_variance(z_cov.to(device), flat_u)
    pc = mean.clamp(eps, 1.0 - eps)
    entropy = -(pc * torch.log(pc) + (1.0 - pc) * torch.log1p(-pc))
    maps = {
        "entropy": entropy,
        "mutual_information": (entropy - entropy_sum / samples).clamp_min(0.0),
        "std": (m2 / max(samples - 1, 1)).sqrt(),
        "logit_variance": var,
    }
    prob = pc if clip_eps is not None else mean
    logits = torch.log(pc) - torch.log1p(-pc)
    shape = (n, U.shape[-2], m)
    return prob.reshape(shape), logits.reshape(shape), {k: v.reshape(shape) for k, v in maps.items()}
