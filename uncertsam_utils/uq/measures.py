"""Uncertainty measures shared by every method, in nats, computed in fp32 from logits.

**One convention for every method** (issue 17): a method returns the logits of its prediction
unclamped, and every measure is computed from logits, never from probabilities that fp32 has
already rounded to 0 or 1. With probabilities, σ(z) is exactly 1 for z > 16.6, so the soft error
and the entropy of all confident pixels collapse onto one value (or onto the floor of a clamp),
and rank statistics then measure the ties instead of the maps. From logits:

* entropy ``H(z) = softplus(−|z|) + |z| · σ(−|z|)`` (no floor; positive up to |z| ≈ 100 in fp32);
* the logit of the mean probability of samples z_s, in log space:
  ``log mean σ(z_s) − log mean σ(−z_s) = logsumexp(logsigmoid(z_s)) − logsumexp(logsigmoid(−z_s))``
  (both terms carry the same log S, which cancels), and exactly z for one sample;
* the mutual information ``H(z̄) − mean_s H(z_s)``, each entropy from logits.

``binary_entropy``, ``safe_logit`` and ``clamp_prob`` (probabilities clamped to [ε, 1 − ε],
ε = 1e-7) remain for code that only has probabilities (the refinement passes, the variance head's
training log); no uncertainty method's result uses them. The paper's bf16 Laplace path clips
probabilities at ε = 1e-2; the ``laplace-paper`` method reproduces that deliberately, as its
documented definition (``uq.laplace.predictive.mc_maps``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-7


def clamp_prob(p: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    return p.float().clamp(eps, 1.0 - eps)


def binary_entropy(p: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """H(p) = −p ln p − (1 − p) ln(1 − p) of probabilities clamped to [ε, 1 − ε] (a floor of 1.7e-6 nats);
    with logits at hand use ``entropy_from_logits``, which has no floor."""
    p = clamp_prob(p, eps)
    return -(p * torch.log(p) + (1.0 - p) * torch.log1p(-p))


def safe_logit(p: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """logit of p clamped to [ε, 1 − ε] (±16.1): for probabilities that come without logits (a 0/1 mask)."""
    p = clamp_prob(p, eps)
    return torch.log(p) - torch.log1p(-p)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Binary entropy of σ(z) in nats, from z: softplus(−|z|) + |z| σ(−|z|); maximum ln 2 at z = 0."""
    a = logits.float().abs()
    return F.softplus(-a) + a * torch.sigmoid(-a)


def mean_probability_logit(logit_samples: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """logit(mean_s σ(z_s)) over ``dim``, in log space (see the module docstring).

    Written relative to the first sample z_1, z̄ = z_1 + logsumexp_s(ℓ(z_s) − ℓ(z_1)) − logsumexp_s(ℓ(−z_s) − ℓ(−z_1))
    with ℓ = logsigmoid (ℓ(z) − ℓ(−z) = z), so that identical samples give z_1 exactly (both sums are log S),
    and one sample gives z itself."""
    z = logit_samples.float()
    first = z.narrow(dim, 0, 1)
    if z.shape[dim] == 1:
        return first.squeeze(dim).clone()
    positive = torch.logsumexp(F.logsigmoid(z) - F.logsigmoid(first), dim)
    negative = torch.logsumexp(F.logsigmoid(-z) - F.logsigmoid(-first), dim)
    return first.squeeze(dim) + (positive - negative)


def mutual_information_from_logits(logit_samples: torch.Tensor, dim: int = 0,
                                   mean_logit: torch.Tensor | None = None) -> torch.Tensor:
    """BALD: mean_s [H(z̄) − H(z_s)] ≥ 0 (clipped at 0 against rounding; exactly 0 for identical samples);
    ``mean_logit`` z̄ if already computed."""
    z = logit_samples.float()
    zbar = mean_probability_logit(z, dim) if mean_logit is None else mean_logit
    zbar = zbar.unsqueeze(dim)
    # a sample equal to the mean contributes exactly 0 (vectorised and scalar kernels may round H differently)
    gap = torch.where(z == zbar, 0.0, entropy_from_logits(zbar) - entropy_from_logits(z))
    return gap.mean(dim).clamp_min(0.0)


def mutual_information(prob_samples: torch.Tensor, dim: int = 0, eps: float = EPS) -> torch.Tensor:
    """BALD from probabilities (clamped like ``binary_entropy``); methods use ``mutual_information_from_logits``."""
    total = binary_entropy(prob_samples.float().mean(dim), eps)
    expected = binary_entropy(prob_samples, eps).mean(dim)
    return (total - expected).clamp_min(0.0)


def sample_std(prob_samples: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Unbiased standard deviation over samples (the paper's ``avg_sample_std`` map).

    Two-pass sum of squared deviations: the same value as ``torch.std(unbiased=True)``, which on
    CPU reduces a short non-inner dimension about 20x slower."""
    samples = prob_samples.float()
    count = samples.shape[dim]
    if count < 2:
        return torch.full_like(samples.select(dim, 0), float("nan"))
    deviations = samples - samples.mean(dim, keepdim=True)
    return deviations.square_().sum(dim).div_(count - 1).sqrt_()


def summarise_logit_samples(logit_samples: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The logit of the mean probability and the sampling maps of a method with samples along ``dim``:
    ``entropy`` H(z̄), ``mutual_information`` and, with at least two samples, ``std`` (the unbiased std
    of the probabilities; one sample has no spread, and a method without a std map reports 0)."""
    z = logit_samples.float()
    zbar = mean_probability_logit(z, dim)
    maps = {"entropy": entropy_from_logits(zbar), "mutual_information": mutual_information_from_logits(z, dim, zbar)}
    if z.shape[dim] > 1:
        maps["std"] = sample_std(torch.sigmoid(z), dim)
    return zbar, maps


def summarise_samples(prob_samples: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean probability and the sampling maps of probability samples (clamped measures; methods use
    ``summarise_logit_samples``)."""
    prob_samples = prob_samples.float()
    mean = prob_samples.mean(dim)
    return mean, {
        "entropy": binary_entropy(mean),
        "mutual_information": mutual_information(prob_samples, dim),
        "std": sample_std(prob_samples, dim),
    }
