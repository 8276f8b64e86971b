"""The fitted last-layer Laplace posterior: a laplace-torch object plus what is needed to rebuild it.

:class:`LastLayerPosterior` holds the fitted structure (``structures.py``), the recipe it was
fitted with and the identity of the model it was fitted on; it gives the hypernetwork output's
covariance and the per-pixel logit variance, refuses any other model, and saves and loads itself
(laplace-torch's ``state_dict`` and what rebuilds it). ``fitting.fit_posterior`` makes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector

from ...artifacts import save_atomic
from .predictive import pixel_logit_variance
from .structures import make_laplace

FORMAT = "uncertsam-laplace-posterior"
FORMAT_VERSION = 1


class PosteriorMismatchError(ValueError):
    """A posterior applied to a model (or layer) other than the one it was fitted on."""


def model_identity(loaded) -> dict:
    """``LoadedModel.identity()`` with ``random_seed`` always present (None for real weights), the
    form posterior files have recorded since format 1."""
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
    def temperature(self) -> float:
        """The likelihood temperature T (GGN and loss divided by T; 1: untempered)."""
        return float(self.la.temperature)

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
        la = make_laplace(layer, state["structure"], state["pixel_likelihood"], state["fit_size"],
                          temperature=float(sd.get("temperature", 1.0)))
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


__all__ = ["LastLayerPosterior", "PosteriorMismatchError", "model_identity"]
