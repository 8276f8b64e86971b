"""The one interface every uncertainty method implements.

A method is built by name with explicit hyperparameters (``make_method("prompt", K=10)``) and
predicts, for one image and its box prompts (B objects, model input frame), a ``UQResult``:
per object the predicted logits, the mean foreground probability and named uncertainty maps,
all at the model's low resolution (``mask_size``²); ``at_original_size`` upsamples them.

Methods that keep the image unchanged accept a precomputed ``Encoding`` so that an evaluation
encodes each image once for all of them. Methods that draw random numbers take an explicit
``torch.Generator``; ``image_generator(seed, dataset, image_id)`` derives one per image, so a
result does not depend on the order in which images are processed (resumable evaluations).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import torch

from ..model.predictor import Encoding, Predictor
from .measures import summarise_logit_samples


@dataclass
class UQResult:
    method: str
    logits: torch.Tensor  # (B, m, m): logits of the method's prediction (logit of the mean probability), unclamped
    prob: torch.Tensor  # (B, m, m): mean foreground probability
    maps: dict[str, torch.Tensor]  # name -> (B, m, m)
    default_map: str  # the map the paper reports for this method
    orig_hw: tuple[int, int]
    info: dict = field(default_factory=dict)  # e.g. predicted IoU, number of samples

    @classmethod
    def from_samples(cls, method: str, logit_samples: torch.Tensor, dim: int, orig_hw: tuple[int, int],
                     info: dict) -> "UQResult":
        """The result of a sampling method from its sampled logits along ``dim``: the logit of the mean
        probability (in log space, unclamped; the sample's own logits for one sample), its probability
        and the maps of ``measures.summarise_logit_samples`` (the entropy by default)."""
        logits, maps = summarise_logit_samples(logit_samples, dim=dim)
        return cls(method=method, logits=logits, prob=torch.sigmoid(logits), maps=maps, default_map="entropy",
                   orig_hw=orig_hw, info=info)

    @property
    def uncertainty(self) -> torch.Tensor:
        return self.maps[self.default_map]

    def at_original_size(self) -> "UQResult":
        """The same result bilinearly upsampled to the original image size (align_corners=False)."""
        up = lambda x: Predictor.upsample(x, self.orig_hw)  # noqa: E731
        return replace(
            self,
            logits=up(self.logits),
            prob=up(self.prob).clamp_(0.0, 1.0),
            maps={name: up(value) for name, value in self.maps.items()},
        )


class UQMethod(ABC):
    """Base class; subclasses set ``name`` and implement ``predict``."""

    name: ClassVar[str]
    default_map: ClassVar[str] = "entropy"
    changes_image: ClassVar[bool] = False  # True: cannot reuse a shared Encoding (e.g. TTA)
    uses_random: ClassVar[bool] = False
    needs_ground_truth: ClassVar[bool] = False  # True: predict takes gt_masks= (B, S, S), input frame (upper bounds)

    @abstractmethod
    def predict(
        self,
        predictor: Predictor,
        image: np.ndarray,
        boxes: np.ndarray,
        *,
        encoding: Encoding | None = None,
        generator: torch.Generator | None = None,
    ) -> UQResult:
        """``boxes`` (B, 4) xyxy in the model's input frame; returns low-resolution results."""

    @classmethod
    def for_benchmark(cls, loaded_model, generator: torch.Generator) -> "UQMethod":
        """A ready instance for ``uncertsam bench uq`` (methods with fitted parts override this)."""
        return cls()

    def hyperparameters(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({params})"

    def _require_generator(self, generator: torch.Generator | None) -> torch.Generator:
        if generator is None:
            raise ValueError(f"method {self.name!r} draws random numbers: pass generator=image_generator(seed, ...)")
        return generator


def image_generator(seed: int, *keys, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator seeded by ``seed`` and the image's identity (e.g. dataset name, image id)."""
    text = "|".join(str(k) for k in (seed, *keys))
    derived = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") & ((1 << 63) - 1)
    return torch.Generator(device=device).manual_seed(derived)


def encode_once(predictor: Predictor, image: np.ndarray, encoding: Encoding | None) -> Encoding:
    return encoding if encoding is not None else predictor.encode(image)
