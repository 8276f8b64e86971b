"""The likelihood temperature of the ``tempered`` recipe, chosen on held-out data, and the logit
temperature of the ``baseline-ts`` reference: one criterion for both.

Why: the per-pixel Bernoulli GGN counts each mask's thousands of pixels as independent observations,
so the marginal likelihood picks a prior precision that leaves a posterior too tight to matter (the
``untempered`` recipe: on the embedded default within 0.004 Pearson ρ of the baseline on every
domain). Tempering divides the likelihood (its GGN and its loss) by T; the prior precision τ is then
re-chosen by the tempered marginal likelihood (laplace-torch's ``temperature``, no refit).

What T is chosen by: the **held-out predictive NLL** of fit/val, every object prompted with its clean
GT box (the evaluation prompt), each mask's pixels at the model's mask resolution: the Bernoulli NLL
of the predictive mean p̄ (clamped to [1e-7, 1 − 1e-7]) averaged over the mask's pixels, then over
masks, so each prompt counts once as in the paper's per-mask metrics. Never the test domains.

The search runs over κ = N / T (N: the fitted masks), "how many masks' worth of per-pixel evidence
the posterior keeps": a 0.25-decade grid of κ from 0.1 to N (κ = N is T = 1, the untempered
posterior), then every 0.05 decade between the best point's neighbours. On the embedded default the selected κ
stays near 4 whatever N (measured at N = 250, 1,000 and 2,000): the selection does not estimate the
correlation between pixels, it picks a posterior width. The report keeps every point of the curve.

``baseline-ts`` divides the baseline's logits by a scale s chosen by the same criterion on the same
prompts (s from 1 to 4 every 0.05 decade, then every 0.01 decade around the best): how much of the
tempered posterior's gain is plain calibration.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .predictive import predictive_maps

CLAMP = math.log((1 - 1e-7) / 1e-7)  # ±16.12: p̄ within [1e-7, 1 − 1e-7] for the criterion
KAPPA_GRID = tuple(float(10.0 ** x) for x in np.arange(-1.0, 3.01, 0.25))
SCALE_GRID = tuple(float(10.0 ** x) for x in np.arange(0.0, 0.601, 0.05))  # 1 to 4
REFINE_DECADE = 0.05
CRITERION = ("held-out predictive NLL on fit/val (every object, clean GT box, mask resolution): Bernoulli NLL of "
             "p̄ clamped to [1e-7, 1 - 1e-7], mean over each mask's pixels, then over masks")


def mask_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-mask mean Bernoulli NLL of logits (n, m, m) against 0/1 labels (n, m, m) → (n,)."""
    clamped = logits.float().clamp(-CLAMP, CLAMP)
    nll = F.binary_cross_entropy_with_logits(clamped, labels.float(), reduction="none")
    return nll.flatten(1).mean(1)


def stacked(items: Sequence[dict], index: Sequence | None = None) -> dict:
    """The held-out prompts' features in one batch (empty items, masks without a box, left out); with the
    dataset's ``index`` ((image, object) per item), ``image`` gives each prompt's image (for bootstraps)."""
    kept = [j for j, item in enumerate(items) if item["h"].shape[0]]
    if not kept:
        raise ValueError("no held-out prompt to choose a temperature on")
    out = {key: torch.cat([items[j][key] for j in kept]) for key in ("h", "U", "labels")}
    if index is not None:
        out["image"] = np.array([index[j][0] for j in kept])
    return out


def heldout_prompts(predictor, source, *, seed: int = 0, images: int | None = None) -> dict:
    """Every object of the first ``images`` images of ``source`` (fit/val) with its clean GT box, stacked."""
    from .features import cached_features

    loader = cached_features(predictor, source, seed=seed, objects="all", jitter=False, max_images=images)
    return stacked(loader.dataset.items, loader.dataset.index)


def map_logits(la, heldout: dict) -> torch.Tensor:
    with torch.no_grad():
        return la.model.pixel_logits(heldout["h"], heldout["U"])


def laplace_nll(la, heldout: dict, *, chunk: int = 128) -> np.ndarray:
    """Per-mask held-out NLL of the posterior's predictive (its current temperature and prior)."""
    out = []
    with torch.no_grad():
        for start in range(0, heldout["h"].shape[0], chunk):
            h, U = heldout["h"][start:start + chunk], heldout["U"][start:start + chunk]
            mu = la.model.pixel_logits(h, U)
            var = la.pixel_logit_variance(h, U)
            _, logits, _ = predictive_maps(mu, var, maps=())
            out.append(mask_nll(logits, heldout["labels"][start:start + chunk]))
    return torch.cat(out).numpy()


def _search(evaluate, grid: Sequence[float], *, refine_decade: float, low: float, high: float) -> tuple[dict, list]:
    """Evaluate ``evaluate(x) -> (nll, extra)`` on the log-spaced ``grid``, then every ``refine_decade``
    between the best point's neighbours; returns (best point, every point sorted by x)."""
    points = {}

    def visit(x: float):
        x = float(min(max(x, low), high))
        key = round(math.log10(x), 6)
        if key not in points:
            nll, extra = evaluate(x)
            points[key] = {"x": x, "nll": nll, **extra}
        return points[key]

    for x in grid:
        visit(x)
    logs = sorted(points)
    at = min(range(len(logs)), key=lambda i: points[logs[i]]["nll"])
    lo, hi = logs[max(at - 1, 0)], logs[min(at + 1, len(logs) - 1)]
    for x in np.arange(lo + refine_decade, hi - 1e-9, refine_decade):
        visit(10.0 ** x)
    curve = [points[k] for k in sorted(points)]
    return min(curve, key=lambda p: p["nll"]), curve


def select_temperature(la, heldout: dict, n_masks: int, prior_search: Callable[[object], dict], *,
                       kappa_grid: Sequence[float] = KAPPA_GRID, refine_decade: float = REFINE_DECADE) -> dict:
    """Set ``la``'s likelihood temperature T (and its prior precision by ``prior_search(la)``, the tempered
    marginal likelihood) to the held-out NLL's minimum over κ = N / T (module docstring); the report."""
    def evaluate(kappa: float):
        la.temperature = n_masks / kappa
        search = prior_search(la)
        return float(laplace_nll(la, heldout).mean()), {"prior_precision": search["prior_precision"]}

    grid = [k for k in kappa_grid if k <= n_masks] + [float(n_masks)]
    best, curve = _search(evaluate, grid, refine_decade=refine_decade, low=min(grid), high=float(n_masks))
    la.temperature = n_masks / best["x"]
    prior = prior_search(la)
    return {"criterion": CRITERION, "n_masks": int(n_masks), "heldout_masks": int(heldout["h"].shape[0]),
            "kappa": best["x"], "temperature": float(la.temperature), "nll": best["nll"], "prior": prior,
            "curve": [{"kappa": p["x"], "temperature": n_masks / p["x"], "nll": p["nll"],
                       "prior_precision": p["prior_precision"]} for p in curve]}


def select_logit_scale(logits: torch.Tensor, labels: torch.Tensor, *, grid: Sequence[float] = SCALE_GRID,
                       refine_decade: float = 0.01) -> dict:
    """The scale s of ``logits / s`` (the baseline's, temperature scaling) with the lowest held-out NLL."""
    def evaluate(scale: float):
        return float(mask_nll(logits / scale, labels).mean()), {}

    best, curve = _search(evaluate, grid, refine_decade=refine_decade, low=min(grid), high=max(grid) * 4)
    return {"criterion": CRITERION, "scale": best["x"], "nll": best["nll"],
            "unscaled_nll": float(mask_nll(logits, labels).mean()),
            "curve": [{"scale": p["x"], "nll": p["nll"]} for p in curve]}


def select_on_heldout(la, predictor, heldout_source, n_masks: int, prior_search: Callable[[object], dict], *,
                      seed: int = 0, images: int | None = None) -> dict:
    """``select_temperature`` on the held-out split's prompts (every object, clean GT box; its first
    ``images`` images), plus the logit scale of the ``baseline-ts`` reference on the same prompts."""
    if heldout_source is None:
        raise ValueError("the tempered recipe chooses its temperature on held-out data: pass val_data (fit/val)")
    heldout = heldout_prompts(predictor, heldout_source, seed=seed, images=images)
    report = select_temperature(la, heldout, n_masks, prior_search)
    baseline = map_logits(la, heldout)
    report["baseline_nll"] = float(mask_nll(baseline, heldout["labels"]).mean())
    report["logit_scale"] = select_logit_scale(baseline, heldout["labels"])
    return report





def heldout_metrics(heldout: dict, la, *, predictive: bool = True, scale: float = 1.0,
                    chunk: int = 128) -> dict[str, np.ndarray]:
    """Per-mask held-out numbers of one predictive: the criterion's NLL, the Brier score, the mean
    predictive std of the probability and the mean logit std √v. ``predictive``: the posterior ``la``'s
    closed form; else its MAP logits (the baseline's) divided by ``scale`` (``baseline-ts``), std 0."""
    from .predictive import probability_std

    out = {"nll": [], "brier": [], "std": [], "logit_sd": []}
    with torch.no_grad():
        for start in range(0, heldout["h"].shape[0], chunk):
            h, U, labels = (heldout[k][start:start + chunk] for k in ("h", "U", "labels"))
            mu = la.model.pixel_logits(h, U)
            if predictive:
                var = la.pixel_logit_variance(h, U)
                _, logits, _ = predictive_maps(mu, var, maps=())
                std = probability_std(mu, var)
            else:
                logits = mu / scale
                var = std = torch.zeros_like(mu)
            prob = torch.sigmoid(logits.clamp(-CLAMP, CLAMP))
            out["nll"].append(mask_nll(logits, labels))
            out["brier"].append(((prob - labels.float()) ** 2).flatten(1).mean(1))
            out["std"].append(std.flatten(1).mean(1))
            out["logit_sd"].append(var.sqrt().flatten(1).mean(1))
    return {k: torch.cat(v).numpy() for k, v in out.items()}


__all__ = ["CLAMP", "CRITERION", "KAPPA_GRID", "SCALE_GRID", "laplace_nll", "map_logits", "mask_nll",
           "select_logit_scale", "select_on_heldout", "select_temperature", "stacked", "heldout_prompts", "heldout_metrics"]
