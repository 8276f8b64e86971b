"""Per-pixel predictive of the last-layer Laplace approximation: closed forms in logit space.

For one prompt the treated layer's output (the hypernetwork vector) z ∈ R^C is Gaussian under the
linearised posterior, z ~ N(z_MAP, Σ_z), and every low-resolution logit is linear in it,
f_p = u_pᵀ z (u_p: column p of the upscaled embedding U). So each pixel's logit is Gaussian,
f_p ~ N(μ_p, v_p) with μ_p the MAP logit and v_p = u_pᵀ Σ_z u_p, and every per-pixel map is a
one-dimensional Gaussian expectation of a function of σ(f_p): no network re-evaluation.

Closed forms (fp32, vectorised over pixels)
-------------------------------------------
The logistic sigmoid is written as a K = 5 mixture of probits, σ(x) ≈ Σ_i a_i Φ(b_i x) (weights and
scales fitted once, max |error| 6e-7 on the real line; MacKay's probit is the K = 1 case with
b = √(π/8)). Gaussian expectations of probits and of normal densities are closed forms, which gives,
with N_i = N(μ; 0, b_i⁻² + v):

* mean probability  p̄ = E[σ(f)] ≈ Σ a_i Φ(b_i μ / √(1 + b_i² v))                   (error ≤ 6e-7);
* expected entropy  E[H(σ(f))] ≈ Σ a_i b_i⁻² N_i                                    (error ≤ 3e-6), from
  H(σ(t)) = softplus(t) − t σ(t), softplus = ∫σ, and Stein's lemma;
* hence the entropy of the mean (the paper's map) and the mutual information
  MI = H(p̄) − E[H(σ(f))] in closed form, for every (μ, v);
* the standard deviation of the probability, √Var[σ(f)]: by Gauss–Hermite quadrature in logit
  space (12 nodes, nodes μ + √v x_j, as a centred second moment; error ≤ 2e-4) where v ≤ 3, and
  above by the mixture, Var = p̄(1 − p̄) − E[σ′(f)], E[σ′(f)] ≈ Σ a_i N_i (error ≤ 5e-4).
  Quadrature alone fails at large v (the integrand becomes a step narrower than the node spacing:
  32 nodes are off by 0.05 in std and 0.09 in p̄ at v ≈ 10³); the mixture alone has a
  cancellation error of 1.6e-3 as v → 0.

``link="probit"`` gives laplace-torch's probit instead, σ(μ / √(1 + π v / 8)): it is off by up to
0.017 in probability at v ≈ 100 (0.005 already at v ≈ 1), too much for the 0.005 Monte Carlo check
at the variances a posterior with prior precision 1 produces; the maps that need the accurate
expectations (MI, std) use the mixture in both cases.

Logits are logit(p̄) = log p̄ − log(1 − p̄), unclamped like every method's (``uq.measures``), each
term in log space. The mixture's Gaussian tails are lighter than the logistic's, so log p̄ from the
mixture alone would overshoot far out in the tails (by 1 at μ = −16, v = 0). Exponential tilting
gives an exact identity whose remaining expectation is close to 1 there: since σ(f) = e^f σ(−f),

    E[σ(f)] = e^{μ + v/2} · E_{f′ ~ N(μ + v, v)}[σ(−f′)],

so log p̄ = μ + v/2 + log(mixture of σ(−·) at (μ + v, v)); where μ + v < 0 that term is ≥ log ¼ and
known to 6e-7. Each pixel takes the tilted or the direct form (log-ndtr, no underflow), whichever
expectation the mixture estimates is larger, i.e. known to the smaller relative error.
1 − p̄ is p̄ at −μ. The entropy of p̄ is then ``measures.entropy_from_logits`` of that logit (no floor).

The ``paper`` recipe's Monte Carlo path (:func:`mc_maps`) samples z, not the 8,224 weights: the
same distribution (z = W h + b is linear in the weights), S × C numbers per prompt instead of
S × 8,224, vectorised over samples in memory-bounded chunks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..measures import EPS, entropy_from_logits

# σ(x) ≈ Σ a_i Φ(b_i x): least-squares + Lawson minimax refinement on [−30, 30]; max error 6.0e-7.
# Σ a_i / b_i² = 3.28978 ≈ π²/3, the logistic distribution's variance, as it must be.
LOGISTIC_MIXTURE_WEIGHTS = (0.02331304, 0.20762914, 0.42976761, 0.29495028, 0.04433993)
LOGISTIC_MIXTURE_SCALES = (0.2915082, 0.41094455, 0.57621739, 0.80389999, 1.12269423)
STD_QUADRATURE_MAX_VARIANCE = 3.0  # Gauss–Hermite below, mixture above (see the module docstring)
STD_QUADRATURE_NODES = 12
LINKS = ("mixture", "probit")
PAPER_CLIP_EPS = 1e-2  # the paper's bf16 path: probabilities in [0.01, 0.99], logits in ±4.595
MAP_NAMES = ("entropy", "mutual_information", "std", "logit_variance")


def _mixture(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.tensor(LOGISTIC_MIXTURE_WEIGHTS, dtype=torch.float64)
    a = (a / a.sum()).to(like.device, like.dtype)
    b = torch.tensor(LOGISTIC_MIXTURE_SCALES, device=like.device, dtype=like.dtype)
    return a, b


class _Gaussian:
    """Per-pixel f ~ N(mu, var) and the probit-mixture terms every map shares (computed lazily, once)."""

    def __init__(self, mu: torch.Tensor, var: torch.Tensor):
        self.mu, self.var = mu.float(), var.float().clamp_min(0.0)
        self.a, self.b = _mixture(self.mu)
        self._pq = self._densities = None

    def probabilities(self, link: str = "mixture") -> tuple[torch.Tensor, torch.Tensor]:
        """(p̄, 1 − p̄), each computed directly."""
        if link == "probit":
            scaled = self.mu / torch.sqrt(1.0 + (math.pi / 8.0) * self.var)
            return torch.sigmoid(scaled), torch.sigmoid(-scaled)
        if link != "mixture":
            raise ValueError(f"unknown link {link!r}; choose from {LINKS}")
        if self._pq is None:
            b = self.b
            x = self.mu[..., None] * (b / torch.sqrt(1.0 + b * b * self.var[..., None]))
            self._pq = (torch.special.ndtr(x) @ self.a, torch.special.ndtr(-x) @ self.a)
        return self._pq

    def log_mean_sigmoid(self, sign: float = 1.0) -> torch.Tensor:
        """log E[σ(sign · f)] (sign −1: log(1 − p̄)): the mixture directly, or tilted (module docstring),
        whichever expectation the mixture estimates is larger (its 6e-7 error is then smallest relatively)."""
        mu, v = sign * self.mu, self.var
        scale = self.b / torch.sqrt(1.0 + self.b * self.b * v[..., None])
        log_a = torch.log(self.a)
        direct = torch.logsumexp(log_a + torch.special.log_ndtr(mu[..., None] * scale), dim=-1)
        tilted = torch.logsumexp(log_a + torch.special.log_ndtr(-(mu + v)[..., None] * scale), dim=-1)
        return torch.where(tilted > direct, mu + 0.5 * v + tilted, direct)

    def logit(self, link: str = "mixture") -> torch.Tensor:
        """logit(p̄), unclamped: log p̄ − log(1 − p̄) in log space (probit: μ / √(1 + π v / 8))."""
        if link == "probit":
            return self.mu / torch.sqrt(1.0 + (math.pi / 8.0) * self.var)
        if link != "mixture":
            raise ValueError(f"unknown link {link!r}; choose from {LINKS}")
        return self.log_mean_sigmoid(1.0) - self.log_mean_sigmoid(-1.0)

    def densities(self) -> torch.Tensor:
        """N(μ; 0, b_i⁻² + v) with a trailing mixture dimension."""
        if self._densities is None:
            total = 1.0 / (self.b * self.b) + self.var[..., None]
            self._densities = torch.exp(-0.5 * self.mu[..., None] ** 2 / total) * torch.rsqrt(2.0 * math.pi * total)
        return self._densities

    def expected_entropy(self) -> torch.Tensor:
        return self.densities() @ (self.a / (self.b * self.b))

    def std(self, nodes: int = STD_QUADRATURE_NODES, switch: float = STD_QUADRATURE_MAX_VARIANCE) -> torch.Tensor:
        p, q = self.probabilities()
        mixture = p * q - self.densities() @ self.a  # p̄(1 − p̄) − E[σ'(f)]
        x, w = _hermite_e(nodes, self.mu)
        small = self.var.clamp(max=switch)
        s = torch.sigmoid(self.mu[..., None] + torch.sqrt(small)[..., None] * x)
        centred = s - (s @ w)[..., None]
        quadrature = (centred * centred) @ w
        return torch.where(self.var <= switch, quadrature, mixture).clamp_min(0.0).sqrt()


def mean_probability(mu: torch.Tensor, var: torch.Tensor, link: str = "mixture") -> torch.Tensor:
    """E[σ(f)] for f ~ N(mu, var)."""
    return _Gaussian(mu, var).probabilities(link)[0]


def expected_entropy(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """E[H(σ(f))] in nats for f ~ N(mu, var) (the aleatoric part of the predictive entropy)."""
    return _Gaussian(mu, var).expected_entropy()


def probability_std(mu: torch.Tensor, var: torch.Tensor, *, nodes: int = STD_QUADRATURE_NODES,
                    switch: float = STD_QUADRATURE_MAX_VARIANCE) -> torch.Tensor:
    """√Var[σ(f)] for f ~ N(mu, var): Gauss–Hermite where var ≤ switch, the probit mixture above."""
    return _Gaussian(mu, var).std(nodes, switch)


def entropy_from_probabilities(p: torch.Tensor, q: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Binary entropy of p (q = 1 − p given separately), p clamped to [eps, 1 − eps] like ``binary_entropy``."""
    p, q = p.clamp(eps, 1.0 - eps), q.clamp(eps, 1.0 - eps)
    return -(p * torch.log(p) + q * torch.log(q))


_HERMITE_CACHE: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


def _hermite_e(n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if n not in _HERMITE_CACHE:
        import numpy as np

        x, w = np.polynomial.hermite_e.hermegauss(n)
        _HERMITE_CACHE[n] = (torch.from_numpy(x), torch.from_numpy(w / w.sum()))
    x, w = _HERMITE_CACHE[n]
    return x.to(like.device, like.dtype), w.to(like.device, like.dtype)


def predictive_maps(mu: torch.Tensor, var: torch.Tensor, *, link: str = "mixture",
                    std_nodes: int = STD_QUADRATURE_NODES, maps: tuple[str, ...] = MAP_NAMES):
    """Mean probability, its logit and the requested per-pixel maps for logits f ~ N(mu, var).

    Returns ``(prob, logits, maps)``: logits = logit(p̄) unclamped (module docstring), prob = σ(logits),
    the entropy H(p̄) from the logits (no floor), the mutual information H(p̄) − E[H(σ(f))].
    """
    gaussian = _Gaussian(mu, var)
    logits = gaussian.logit(link)
    out: dict[str, torch.Tensor] = {}
    for name in maps:
        if name == "entropy":
            out[name] = entropy_from_logits(logits)
        elif name == "mutual_information":
            out[name] = (entropy_from_logits(logits) - gaussian.expected_entropy()).clamp_min(0.0)
        elif name == "std":
            out[name] = gaussian.std(std_nodes)
        elif name == "logit_variance":
            out[name] = gaussian.var
        else:
            raise ValueError(f"unknown map {name!r}; choose from {MAP_NAMES}")
    return torch.sigmoid(logits), logits, out


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


class _SampleMoments:
    """Running statistics of chunks of sampled logits (S, n, P): mean and M2 of σ(f) (Chan et al.'s
    pairwise update), the summed entropies and, unclipped, log Σ σ(±f) for the log-space logit."""

    def __init__(self, shape, device, clip_eps: float | None):
        self.count, self.clip_eps = 0, clip_eps
        self.mean, self.m2, self.entropy_sum = (torch.zeros(shape, device=device) for _ in range(3))
        self.log_pos = self.log_neg = torch.full(shape, -math.inf, device=device)

    def add(self, logits: torch.Tensor) -> None:
        p = torch.sigmoid(logits)
        k = p.shape[0]
        chunk_mean = p.mean(0)
        chunk_m2 = ((p - chunk_mean) ** 2).sum(0)
        if self.clip_eps is None:
            self.entropy_sum += entropy_from_logits(logits).sum(0)
            self.log_pos = torch.logaddexp(self.log_pos, torch.logsumexp(F.logsigmoid(logits), 0))
            self.log_neg = torch.logaddexp(self.log_neg, torch.logsumexp(F.logsigmoid(-logits), 0))
        else:
            pc = p.clamp(self.clip_eps, 1.0 - self.clip_eps)
            self.entropy_sum += -(pc * torch.log(pc) + (1.0 - pc) * torch.log1p(-pc)).sum(0)
        delta = chunk_mean - self.mean
        total = self.count + k
        self.mean += delta * (k / total)
        self.m2 += chunk_m2 + delta * delta * (self.count * k / total)
        self.count = total

    def prediction(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prob, logits, entropy of the mean): clipped to [ε, 1 − ε] (the paper), or unclamped from logits."""
        if self.clip_eps is None:
            logits = self.log_pos - self.log_neg
            return torch.sigmoid(logits), logits, entropy_from_logits(logits)
        pc = self.mean.clamp(self.clip_eps, 1.0 - self.clip_eps)
        return pc, torch.log(pc) - torch.log1p(-pc), -(pc * torch.log(pc) + (1.0 - pc) * torch.log1p(-pc))


def mc_maps(z_mean: torch.Tensor, z_cov: torch.Tensor, U: torch.Tensor, *, samples: int, generator: torch.Generator,
            clip_eps: float | None = PAPER_CLIP_EPS, max_chunk_elements: int = 2**25):
    """The paper's Monte Carlo predictive, sampling the hypernetwork output z ~ N(z_mean, z_cov).

    ``z_mean`` (n, C), ``z_cov`` (n, C, C), ``U`` (n, C, m, m). Returns ``(prob, logits, maps)`` with
    p̄ = mean_s σ(f_s), the entropy of the mean, the mutual information H(p̄) − mean_s H(p_s), the
    unbiased std over samples and the closed-form logit variance. With ``clip_eps`` (the paper's
    bf16 ε = 1e-2, the ``laplace-paper`` method's documented definition) the entropies and the logit
    use p clamped to [ε, 1 − ε] and the returned probability is clamped likewise, reproducing the
    paper's [0.01, 0.99] / ±4.595 range; with ``clip_eps=None`` they follow the one convention of
    ``uq.measures`` (logit of the mean in log space, entropies from logits, no clamp).
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
    chunk = max(1, min(samples, max_chunk_elements // max(1, n * pixels)))
    moments = _SampleMoments((n, pixels), device, None if clip_eps is None else float(clip_eps))
    for start in range(0, samples, chunk):  # chunks of samples: memory bound only, vectorised inside
        moments.add(torch.einsum("snc,ncp->snp", z[start:start + chunk], flat_u))
    prob, logits, entropy = moments.prediction()
    maps = {
        "entropy": entropy,
        "mutual_information": (entropy - moments.entropy_sum / samples).clamp_min(0.0),
        "std": (moments.m2 / max(samples - 1, 1)).sqrt(),
        "logit_variance": pixel_logit_variance(z_cov.to(device), flat_u),
    }
    shape = (n, U.shape[-2], m)
    return prob.reshape(shape), logits.reshape(shape), {k: v.reshape(shape) for k, v in maps.items()}
