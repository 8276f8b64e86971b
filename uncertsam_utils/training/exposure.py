"""Training data with cross-domain exposure (open question 2): fit/train plus the test domains' ``val`` splits.

The paper trains its refinement on SA-1B only and asks whether exposure to shifted domains would help
it generalise. ``exposure_data`` builds a training set of the same number of images as the fit-only
one (the same number of optimisation steps per epoch, so the same training budget): the first
``images − V`` images of ``fit/train`` and all V ``val`` images of the exposed domains (every domain,
or every domain but a held-out one for leave-one-domain-out). It reads the domains' ``val`` split and
nothing else: a request for any other split of a test domain is an error (``EXPOSURE_SPLITS``), so a
test image can never enter training (tested by recording every split read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import DEFAULT_SIZE, FitData, _to_square, read_split

EXPOSURE_SPLITS = ("val",)  # the only split of a test domain that training may read


@dataclass
class ExposureData:
    data: FitData  # fit/train images first, then the domains' val images, at the model's input size
    sources: list[str]  # per image: "fit" or the domain it comes from
    exposed: list[str]  # the domains whose val split is in ``data``

    def counts(self) -> dict[str, int]:
        return {name: self.sources.count(name) for name in dict.fromkeys(self.sources)}


def domain_samples(root: Path, domains: Sequence[str], split: str = "val", *,
                   per_domain: int | None = None) -> list[tuple[str, object]]:
    """(domain, sample) for the first ``per_domain`` (None: every) image of ``<root>/<domain>/<split>``,
    refusing any split but ``val``."""
    if split not in EXPOSURE_SPLITS:
        raise ValueError(f"cross-domain exposure reads only the {EXPOSURE_SPLITS} split of a test domain, "
                         f"not {split!r}: the test split is for evaluation alone")
    out = []
    for domain in domains:
        if domain == "fit":
            raise ValueError("'fit' is the source domain, not an exposure domain")
        out += [(domain, sample) for sample in read_split(Path(root), domain, split, per_domain)]
    return out


def exposure_data(root: Path, domains: Sequence[str], *, images: int = 400, hold_out: str | None = None,
                  per_domain: int | None = None, size: int = DEFAULT_SIZE) -> ExposureData:
    """``images`` training images: the ``val`` images of ``domains`` except ``hold_out`` (the first
    ``per_domain`` of each; None: all), and the first ``images`` minus that many of ``fit/train``."""
    exposed = [d for d in domains if d != hold_out]
    if hold_out is not None and hold_out not in domains:
        raise ValueError(f"held-out domain {hold_out!r} is not one of {list(domains)}")
    shifted = domain_samples(root, exposed, per_domain=per_domain)
    if images - len(shifted) < 0:
        raise ValueError(f"{len(shifted)} domain val images do not fit a budget of {images} training images")
    return _assemble(root, images - len(shifted), shifted, exposed, size)


def exposure_pool(root: Path, domains: Sequence[str], *, fit_images: int = 400, per_domain: int | None = None,
                  size: int = DEFAULT_SIZE) -> ExposureData:
    """The union every exposure set of a notebook is a subset of: the first ``fit_images`` of
    ``fit/train``, then the ``val`` images of every domain (the first ``per_domain`` of each)."""
    return _assemble(root, fit_images, domain_samples(root, domains, per_domain=per_domain), list(domains), size)


def _assemble(root: Path, fit_count: int, shifted: list, exposed: list[str], size: int) -> ExposureData:
    fit = read_split(Path(root), "fit", "train", fit_count) if fit_count else []
    kept: list[str] = []

    def items():
        # squashed here (as FitData would) to know which images keep a mask, and so their source
        for source, sample in [("fit", s) for s in fit] + shifted:
            image, masks = _to_square(np.asarray(sample.image), np.asarray(sample.masks, dtype=bool), size)
            if masks.reshape(len(masks), -1).any():
                kept.append(source)
                yield image, masks

    data = FitData.from_items(items(), size=size)
    return ExposureData(data, kept, exposed)
