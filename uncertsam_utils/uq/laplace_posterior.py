"""The fitted last-layer Laplace posterior: a laplace-torch object plus what is needed to rebuild it.

laplace-torch is the posterior engine. The posterior of SAM's treated layer (the last Linear of mask
token 0's hypernetwork; everything else frozen) is a laplace-torch ``DiagLaplace`` /
``KronLaplace`` / ``FullLaplace`` (thin subclasses, below) whose model is that Linear alone
(:class:`HyperHead`, a copy holding the MAP weights) and whose curvature backend is our closed form
(:class:`~uncertsam_utils.uq.laplace_curvature.ClosedFormGGN`). laplace-torch's own code does the
rest: ``fit`` (accumulating H and the loss over a DataLoader, with its progress bar),
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

Fitting data: any split in the published layout (``SplitReader``) or in-memory samples (anything
with ``image``, ``masks``, ``image_id`` and ``dataset``), one prompt per object: the GT box of the
squash-resized mask with SAM's box jitter (``prompts.jitter_boxes``), one random object per
image as the paper (``objects="one"``) or every object (``objects="all"``), seeded per image, one pass.
The paper's horizontal flips and point prompts are not used (the posterior is for box prompts).
"""

from __future__ import annotations

import copy
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from laplace.baselaplace import DiagLaplace, FullLaplace, KronLaplace
from laplace.utils import Kron
from torch import nn
from torch.nn.utils import parameters_to_vector

from ..artifacts import save_atomic
from .base import image_generator
from .laplace_curvature import (
    ClosedFormGGN,
    augmented,
    hyper_jacobians,
    laplace_order,
    logits_of,
)
from .laplace_predictive import pixel_logit_variance

FORMAT = "uncertsam-laplace-posterior"
FORMAT_VERSION = 1
STRUCTURES = ("diag", "kron", "full")
PRIOR_METHODS = ("marglik", "gridsearch", "fixed")
OBJECT_MODES = ("one", "all")
FULL_BATCH = 16  # prompts per batch for the full GGN
CACHED_FIRST_ITEMS = FULL_BATCH
MARGLIK_GRID = (-4.0, 10.0, 57)  # log10 prior precision: min, max, points (0.25 decade)


class PosteriorMismatchError(ValueError):
    """A posterior applied to a model (or layer) other than the one it was fitted on."""


@dataclass(frozen=True)
class Recipe:
    """How a posterior is fitted. Prediction settings belong to the UQ methods (laplace.py)."""

    name: str
    pixel_likelihood: str  # "bernoulli" (per pixel) or "softmax" (one categorical over all pixels)
    fit_size: int | None  # logits resized to fit_size² for the likelihood; None: the model's mask size
    prior: str  # "marglik", "gridsearch" or "fixed"
    prior_precision: float  # the fixed value, or the start of the search
    description: str


RECIPES: dict[str, Recipe] = {
    "exact": Recipe("exact", "bernoulli", None, "marglik", 1.0,
                    "per-pixel Bernoulli GGN at the model's low resolution; prior precision by marginal likelihood"),
    "paper": Recipe("paper", "softmax", 128, "fixed", 1.0,
                    "the reference code: GGN of a softmax over the 128² resized logits; prior precision 1"),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"unknown Laplace recipe {name!r}; choose from {', '.join(RECIPES)}")
    return RECIPES[name]


# --------------------------------------------------------------------------- laplace-torch pieces
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
                 prior_precision: float = 1.0):
    if structure not in LAPLACE_CLASSES:
        raise ValueError(f"unknown Hessian structure {structure!r}; choose from {', '.join(STRUCTURES)}")
    return LAPLACE_CLASSES[structure](
        HyperHead(layer), "classification", prior_precision=prior_precision, backend=ClosedFormGGN,
        backend_kwargs={"pixel_likelihood": pixel_likelihood, "fit_size": fit_size},
    )


# ----------------------------------------------------------------------------------- fitting data
@dataclass
class FitImage:
    """An in-memory fitting sample (the published layout's ``Sample`` has the same fields)."""

    image: np.ndarray  # (H, W, 3) uint8
    masks: np.ndarray  # (N, H, W) bool
    image_id: int
    dataset: str = "memory"


def synthetic_images(count: int, size: int = 256, seed: int = 0, objects: int = 2) -> list[FitImage]:
    """Smooth random images with bright ellipses as objects: fitting data for tests and benchmarks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for index in range(count):
        coarse = rng.random((size // 32 + 2, size // 32 + 2, 3))
        image = np.kron(coarse, np.ones((32, 32, 1)))[:size, :size] * 0.5
        masks = []
        for _ in range(objects):
            cy, cx = rng.uniform(0.25, 0.75, 2)
            ry, rx = rng.uniform(0.08, 0.22, 2)
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
            image[mask] = 0.5 + 0.5 * rng.random(3)
            masks.append(mask)
        out.append(FitImage((image * 255).astype(np.uint8), np.stack(masks), index, "synthetic"))
    return out


def _object_counts(source) -> list[int]:
    objects = getattr(source, "_objects", None)  # SplitReader's annotation index: no image decoding
    if isinstance(objects, dict) and hasattr(source, "image_ids"):
        return [len(objects[i]) for i in source.image_ids]
    return [len(item.masks) for item in source]


class PromptFeatures(torch.utils.data.Dataset):
    """One item per fitted prompt: ``{"h" (1, D), "U" (1, C, m, m), "labels" (1, m, m)}``.

    Each item encodes its image (the predictor caches the last image, so consecutive objects of one
    image encode it once) and decodes the jittered GT box once, without gradients. The object and
    the jitter come from ``image_generator(seed, "laplace-fit", dataset, image_id[, object])``.
    """

    def __init__(self, predictor, source, *, seed: int = 0, objects: str = "one", max_images: int | None = None,
                 jitter: bool = True):
        if objects not in OBJECT_MODES:
            raise ValueError(f"objects must be one of {OBJECT_MODES}, got {objects!r}")
        self.predictor, self.source, self.seed, self.objects, self.jitter = predictor, source, seed, objects, jitter
        count = len(source) if max_images is None else min(len(source), int(max_images))
        if objects == "one":
            self.index = [(i, None) for i in range(count)]
        else:
            counts = _object_counts(source)[:count]
            self.index = [(i, k) for i in range(count) for k in range(counts[i])]
        self.skipped: list[tuple[str, int]] = []
        self._sample_cache: tuple[int, Any] | None = None
        self._item_cache: dict[int, dict] = {}  # laplace-torch reads the first batch twice

    def __len__(self) -> int:
        return len(self.index)

    def _sample(self, i: int):
        if self._sample_cache is None or self._sample_cache[0] != i:
            self._sample_cache = (i, self.source[i])
        return self._sample_cache[1]

    def __getitem__(self, j: int) -> dict:
        if j in self._item_cache:
            return self._item_cache[j]
        from ..data.resize import boxes_from_masks, resize_masks
        from ..prompts import jitter_boxes

        i, k = self.index[j]
        sample = self._sample(i)
        predictor = self.predictor
        size, m = predictor.image_size, predictor.mask_size
        keys = (self.seed, "laplace-fit", sample.dataset, sample.image_id) + (() if k is None else (k,))
        generator = image_generator(*keys)
        masks = np.asarray(sample.masks, dtype=bool)
        boxes, empty = boxes_from_masks(resize_masks(masks, size))
        valid = np.flatnonzero(~empty)
        if k is None and valid.size:
            k = int(valid[torch.randint(valid.size, (1,), generator=generator).item()])
        if k is None or empty[k]:
            self.skipped.append((str(sample.dataset), int(sample.image_id)))
            item = self._empty_item()
        else:
            box = torch.from_numpy(boxes[k : k + 1])
            if self.jitter:
                box = jitter_boxes(box, size, generator)
            with torch.no_grad():
                out = predictor.decode(predictor.encode(sample.image), boxes=box, return_internals=True)
            labels = torch.from_numpy(resize_masks(masks[k : k + 1], m)).long()
            item = {"h": out.h.detach().float(), "U": out.U.detach().float(), "labels": labels}
        if j < CACHED_FIRST_ITEMS:
            self._item_cache[j] = item
        return item

    def _empty_item(self) -> dict:
        layer = self.predictor.treated_layer
        m = self.predictor.mask_size
        return {"h": torch.zeros(0, layer.in_features), "U": torch.zeros(0, layer.out_features, m, m),
                "labels": torch.zeros(0, m, m, dtype=torch.long)}


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j: int) -> dict:
        return self.items[j]


def concatenate_items(items: list[dict]) -> dict:
    return {key: torch.cat([item[key] for item in items]) for key in items[0]}


def feature_loader(dataset: torch.utils.data.Dataset, batch_size: int = 1) -> torch.utils.data.DataLoader:
    """Prompt features in order (laplace-torch needs ``.dataset``); ``batch_size`` prompts per
    batch, concatenated (the full GGN's (C(D+1))² update is then one matrix product per batch)."""
    if batch_size == 1:
        return torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=0)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0,
                                       collate_fn=concatenate_items)


def cached_features(predictor, source, **kwargs) -> torch.utils.data.DataLoader:
    """Features of a (small) split computed once and kept in memory: for grid search, which
    evaluates the validation predictive once per grid point, or to fit several posteriors."""
    dataset = PromptFeatures(predictor, source, **kwargs)
    cached = _ListDataset([dataset[j] for j in range(len(dataset))])
    cached.index, cached.skipped = dataset.index, dataset.skipped
    return feature_loader(cached)


# ------------------------------------------------------------------------------------- posterior
def model_identity(loaded) -> dict:
    """``LoadedModel.identity()`` plus the seed of random weights (which identity() leaves out)."""
    identity = dict(loaded.identity())
    identity["random_seed"] = loaded.seed if getattr(loaded, "random_weights", False) else None
    return identity


@dataclass
class LastLayerPosterior:
    """A fitted laplace-torch posterior of the treated layer and the facts needed to use it safely."""

    la: Any  # SegDiagLaplace | SegKronLaplace | SegFullLaplace
    recipe: str
    structure: str
    pixel_likelihood: str
    fit_size: int | None
    model: dict  # model_identity() of the model it was fitted on
    info: dict = field(default_factory=dict)  # data, seed, counts, timings, prior search, marglik curve

    @property
    def prior_precision(self) -> torch.Tensor:
        return self.la.prior_precision.detach().clone()

    @property
    def num_parameters(self) -> int:
        return int(self.la.n_params)

    def hyper_covariance(self, h: torch.Tensor) -> torch.Tensor:
        """Σ_z (n, C, C) of the hypernetwork output for inputs h (n, D), on h's device."""
        with torch.no_grad():
            return self.la.hyper_covariance(h.detach()).to(h.device, torch.float32)

    def logit_variance(self, h: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        """Exact per-pixel logit variance v_p = u_pᵀ Σ_z u_p, (n, ...) for U (n, C, ...)."""
        return pixel_logit_variance(self.hyper_covariance(h), U, diagonal=self.structure == "diag")

    # -- safety
    def check_model(self, loaded) -> None:
        """Raise PosteriorMismatchError unless ``loaded`` is the model this posterior was fitted on."""
        other = model_identity(loaded)
        differing = [key for key in ("name", "config", "sha256", "random_seed") if self.model.get(key) != other.get(key)]
        if differing:
            raise PosteriorMismatchError(
                f"this Laplace posterior was fitted on {_describe(self.model)}, not on {_describe(other)} "
                f"(differs in {', '.join(differing)}); fit one for this model with `uncertsam fit laplace`"
            )
        self.check_layer(loaded.model.sam_mask_decoder.output_hypernetworks_mlps[0].layers[-1])

    def check_layer(self, layer: nn.Linear) -> None:
        """Raise PosteriorMismatchError unless ``layer`` holds exactly the posterior's MAP weights."""
        mean = self.la.mean.detach()
        if layer.weight.numel() + layer.bias.numel() != mean.numel():
            raise PosteriorMismatchError(
                f"the treated layer has {layer.weight.numel() + layer.bias.numel()} parameters but the posterior "
                f"{mean.numel()}: it was fitted on {_describe(self.model)}"
            )
        current = parameters_to_vector([layer.weight, layer.bias]).detach().to(mean.device, mean.dtype)
        if not torch.equal(current, mean):
            raise PosteriorMismatchError(
                f"the treated layer's weights differ from those the posterior was fitted at ({_describe(self.model)}); "
                "a posterior is only valid for the exact model it was fitted on"
            )

    # -- files
    def state(self) -> dict:
        layer = self.la.model.layer
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "laplace_state_dict": _to_cpu(self.la.state_dict()),
            "structure": self.structure,
            "recipe": self.recipe,
            "pixel_likelihood": self.pixel_likelihood,
            "fit_size": self.fit_size,
            "layer": {"in_features": layer.in_features, "out_features": layer.out_features},
            "model": dict(self.model),
            "info": _plain(self.info),
        }

    def save(self, path) -> Path:
        return save_atomic(self.state(), path)

    @classmethod
    def from_state(cls, state: dict, loaded=None, *, source: str = "state") -> "LastLayerPosterior":
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{source} is not a Laplace posterior written by uncertsam (format {FORMAT!r})")
        if state.get("version") != FORMAT_VERSION:
            raise ValueError(f"{source} has posterior format version {state.get('version')}, expected {FORMAT_VERSION}")
        sd = state["laplace_state_dict"]
        shape = state["layer"]
        layer = nn.Linear(shape["in_features"], shape["out_features"])
        torch.nn.utils.vector_to_parameters(sd["mean"].detach().float(), layer.parameters())
        la = make_laplace(layer, state["structure"], state["pixel_likelihood"], state["fit_size"])
        la.load_state_dict(sd)
        posterior = cls(la, state["recipe"], state["structure"], state["pixel_likelihood"], state["fit_size"],
                        dict(state["model"]), dict(state.get("info", {})))
        if loaded is not None:
            posterior.check_model(loaded)
        return posterior

    @classmethod
    def load(cls, path, loaded=None) -> "LastLayerPosterior":
        """Read a posterior file; with ``loaded`` (a LoadedModel), refuse any other model."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no Laplace posterior at {path}; fit one with `uncertsam fit laplace`")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls.from_state(state, loaded, source=str(path))


def _describe(identity: dict) -> str:
    text = f"{identity.get('name')} ({identity.get('config')}"
    if identity.get("random_seed") is not None:
        text += f", random weights seed {identity['random_seed']}"
    elif identity.get("sha256"):
        text += f", sha256 {str(identity['sha256'])[:12]}…"
    return text + ")"


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return [_to_cpu(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def _plain(value):
    """Info for the file: tensors/arrays to lists, so weights_only loading accepts it."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# ---------------------------------------------------------------------------------- prior search
def marglik_curve(la, log10_grid: Sequence[float]) -> list[float]:
    """laplace-torch's log marginal likelihood at each scalar prior precision 10^x (state restored)."""
    saved = la.prior_precision.detach().clone()
    values = []
    with torch.no_grad():
        for x in log10_grid:
            value = la.log_marginal_likelihood(prior_precision=torch.tensor(10.0 ** float(x)))
            values.append(float(value))
    la.prior_precision = saved
    return values


def optimize_prior(la, method: str, *, value: float = 1.0, val_loader=None, prior_structure: str = "scalar",
                   grid: tuple[float, float, int] = MARGLIK_GRID, n_steps: int = 100, lr: float = 0.1,
                   progress: bool = False) -> dict:
    """Set the prior precision with laplace-torch's ``optimize_prior_precision`` and report the search.

    ``marglik``: the log marginal likelihood on a log grid (the curve, also for the notebook), then
    laplace-torch's Adam on log τ (``n_steps``, ``lr``) from the best grid point.
    ``gridsearch``: laplace-torch's grid search of the validation NLL of the probit predictive on
    ``val_loader`` over the same grid. ``fixed``: τ = ``value`` (the paper: 1).
    """
    if method not in PRIOR_METHODS:
        raise ValueError(f"unknown prior method {method!r}; choose from {PRIOR_METHODS}")
    if torch.is_inference_mode_enabled():
        raise RuntimeError("the prior precision search needs autograd: do not run it under torch.inference_mode()")
    log10_grid = np.linspace(grid[0], grid[1], int(grid[2]))
    report: dict = {"method": method, "log10_grid": log10_grid.tolist()}
    with single_threaded():
        curve = marglik_curve(la, log10_grid)
    report["marglik"] = curve
    with warnings.catch_warnings(), torch.enable_grad(), single_threaded():
        warnings.filterwarnings("ignore", message=".*link_approx.*")
        if method == "fixed":
            la.prior_precision = float(value)
        elif method == "marglik":
            start = 10.0 ** float(log10_grid[int(np.nanargmax(curve))])
            report["start"] = start
            la.optimize_prior_precision(pred_type="glm", method="marglik", init_prior_prec=start, n_steps=n_steps,
                                        lr=lr, prior_structure=prior_structure, progress_bar=progress)
        else:
            if val_loader is None:
                raise ValueError("grid search needs validation data (val_loader)")
            la.optimize_prior_precision(pred_type="glm", method="gridsearch", val_loader=val_loader,
                                        link_approx="probit", log_prior_prec_min=grid[0], log_prior_prec_max=grid[1],
                                        grid_size=int(grid[2]), prior_structure=prior_structure, progress_bar=progress)
    prior = la.prior_precision.detach().cpu()
    report["prior_precision"] = prior.tolist()
    with torch.no_grad():
        report["log_marglik"] = float(la.log_marginal_likelihood())
    return report


# -------------------------------------------------------------------------------------------- fit
def fit_posterior(loaded, data, *, recipe: str = "exact", structure: str = "diag", prior: str | None = None,
                  prior_precision: float | None = None, prior_structure: str = "scalar", val_data=None,
                  val_images: int | None = 16, seed: int = 0, objects: str = "one", max_images: int | None = None,
                  progress: bool = True, predictor=None, description: str | None = None) -> LastLayerPosterior:
    """Fit the treated layer's posterior on ``data`` (a SplitReader or a list of samples), one pass.

    ``data`` may also be a feature loader (``cached_features``) of this model, to fit several
    posteriors from one encoding pass. ``recipe`` sets the likelihood, the fit resolution and the prior method (``prior`` and
    ``prior_precision`` override the latter). ``val_data`` (needed by ``prior="gridsearch"``):
    up to ``val_images`` images whose features are cached in memory.
    """
    from ..model import Predictor

    spec = get_recipe(recipe)
    prior = spec.prior if prior is None else prior
    tau = spec.prior_precision if prior_precision is None else float(prior_precision)
    predictor = Predictor(loaded.model) if predictor is None else predictor
    layer = predictor.treated_layer
    la = make_laplace(layer, structure, spec.pixel_likelihood, spec.fit_size, prior_precision=tau)
    if isinstance(data, torch.utils.data.DataLoader):
        loader, dataset = data, data.dataset
    else:
        dataset = PromptFeatures(predictor, data, seed=seed, objects=objects, max_images=max_images)
        loader = feature_loader(dataset, FULL_BATCH if structure == "full" else 1)
    if len(dataset) == 0:
        raise ValueError("no fitting data: the split is empty")
    start = time.perf_counter()
    was_training = loaded.model.training
    loaded.model.eval()
    try:
        la.fit(loader, progress_bar=progress)
    finally:
        loaded.model.train(was_training)
    fit_seconds = time.perf_counter() - start
    val_loader = None
    if prior == "gridsearch":
        if val_data is None:
            raise ValueError("prior='gridsearch' needs validation data (val_data)")
        val_loader = cached_features(predictor, val_data, seed=seed + 1, objects=objects, max_images=val_images)
    start = time.perf_counter()
    search = optimize_prior(la, prior, value=tau, val_loader=val_loader, prior_structure=prior_structure,
                            progress=False)
    info = {
        "data": description if description is not None else _describe_data(data),
        "seed": seed,
        "objects": objects,
        "prompts": len(dataset),
        "images": len({i for i, _ in dataset.index}) if hasattr(dataset, "index") else None,
        "skipped": len(dataset.skipped) if hasattr(dataset, "skipped") else None,
        "fit_seconds": fit_seconds,
        "prior_seconds": time.perf_counter() - start,
        "prior": search,
        "recipe_description": spec.description,
        "mask_size": predictor.mask_size,
    }
    return LastLayerPosterior(la, recipe, structure, spec.pixel_likelihood, spec.fit_size, model_identity(loaded), info)


def _describe_data(data) -> str:
    if isinstance(data, torch.utils.data.DataLoader):
        return f"{len(data.dataset)} precomputed prompt features"
    if hasattr(data, "split_dir"):
        return str(data.split_dir)
    return f"{len(data)} in-memory images"


def benchmark_posterior(loaded, recipe: str, generator: torch.Generator, *, images: int = 4) -> LastLayerPosterior:
    """A posterior fitted on a few synthetic images (for ``bench uq``: its cost is not timed there)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    size = int(loaded.model.image_size)
    data = synthetic_images(images, size, seed=seed)
    return fit_posterior(loaded, data, recipe=recipe, seed=seed, progress=False, description="synthetic (benchmark)")


def fit_seconds_per_image(loaded, *, images: int = 4, seed: int = 0, recipe: str = "exact", repeats: int = 1) -> float:
    """Median wall time of the curvature pass per image (encode + decode + closed form, no prior search)."""
    from ..model import Predictor

    predictor = Predictor(loaded.model)
    data = synthetic_images(images + 1, int(loaded.model.image_size), seed=seed)
    spec = get_recipe(recipe)
    times = []
    for r in range(repeats + 1):  # the first pass warms up
        la = make_laplace(predictor.treated_layer, "diag", spec.pixel_likelihood, spec.fit_size)
        dataset = PromptFeatures(predictor, data[1:] if r else data[:1], seed=seed)
        start = time.perf_counter()
        la.fit(feature_loader(dataset), progress_bar=False)
        if r:
            times.append((time.perf_counter() - start) / len(dataset))
    return float(np.median(times))


__all__ = [
    "FitImage", "HyperHead", "LastLayerPosterior", "PosteriorMismatchError", "PromptFeatures", "RECIPES", "Recipe",
    "SegDiagLaplace", "SegFullLaplace", "SegKronLaplace", "STRUCTURES", "benchmark_posterior", "cached_features",
    "feature_loader", "fit_posterior", "fit_seconds_per_image", "get_recipe", "make_laplace", "marglik_curve",
    "model_identity", "optimize_prior", "synthetic_images",
]

