"""The training inputs every arm of notebook 09 shares, and the training of one arm.

One pool of training images (``training.exposure.exposure_data`` with every test domain's ``val``):
the first ``images`` of fit/train, then the domains' val images, encoded once (``FusionInputs``); an
arm trains on a subset of it with ``images`` images per epoch (fit-only: the fit images; exposure:
fewer fit images and every val image; leave-one-domain-out: all val images but the held-out
domain's). The first passes of a seed (``FirstPassBank``: the objects and jittered boxes of (seed,
epoch, image), the Laplace predictive's logits and entropy) are computed once for the pool and read by
every arm of that seed through views (``SubsetBank``, ``SubsetFeatures``), so an image gets the same
prompt and first pass in every arm that trains on it, end-to-end arms included (they draw the same
boxes, ``bank.draw_boxes``, and decode them with their own decoder). Validation: the first
``val_images`` of fit/val under the clean box, shared by every arm.

The recipe (``ArmRecipe``) is Table 1's box regime (``refine.training.FusionTrainConfig``: lr 1e-4,
AdamW, SAM's schedule, loss 20·focal + Dice + IoU L1, exact init) for ``epochs`` epochs without
early stopping, every arm the same number of optimisation steps; the untrained module is epoch 0 and
the selection (``selected``) keeps the epoch with the highest fit/val mIoU, ties to the earlier; the
last epoch's module is kept as well (``trained``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..refine.bank import BankEntry, FirstPassBank
from ..refine.passes import FirstPass
from . import maps as arm_maps
from .arms import Arm

_ARM_TAG = 0x6F70656E  # "open": the arms' order streams, apart from Table 1's fusion runs


@dataclass(frozen=True)
class ArmRecipe:
    epochs: int = 1
    images: int = 400  # training images per epoch (fit/train, or fit/train and domain val at the same count)
    val_images: int = 200  # fit/val images of the selection
    domain_val_images: int | None = None  # per domain (None: the whole val split)
    lr: float = 1e-4
    decoder_lr: float = 1e-5  # end-to-end arms: the trained decoder's rate (the new parts train at ``lr``)
    prompt_K: int = 10  # prompt perturbations of the combined maps

    def fusion_config(self, map_name: str):
        """Table 1's box-regime configuration for an arm fed ``map_name`` (no early stopping)."""
        from ..refine.training import FusionTrainConfig

        return FusionTrainConfig(uncertainty="ones" if map_name == "ones" else "laplace", epochs=self.epochs,
                                 lr=self.lr, val_images=self.val_images, select="miou", select_initial=True,
                                 patience=None)


@dataclass
class SubsetFeatures:
    """The pool's encodings seen through an arm's subset (local image index → pool index)."""

    features: object  # training.FrozenFeatures of the pool
    subset: np.ndarray

    def encoding(self, image_ids: torch.Tensor):
        return self.features.encoding(torch.as_tensor(self.subset[image_ids.cpu().numpy()]))


@dataclass
class SubsetBank:
    """A bank seen through an arm's subset."""

    bank: object
    subset: np.ndarray

    def entry(self, epoch: int, image: int) -> BankEntry:
        return self.bank.entry(epoch, int(self.subset[int(image)]))


@dataclass
class MappedBank:
    """A Laplace bank whose entries carry a combined map in place of the Laplace entropy (arms fed a
    combined map train as ``uncertainty="laplace"`` on these entries). Prompt perturbation's maps are
    computed once per (epoch, image) and shared by the combinations."""

    bank: FirstPassBank
    map_name: str
    predictor: object
    features: object
    K: int
    seed: int | None  # None: validation (clean boxes, one draw per image)
    prompts: dict = field(default_factory=dict)  # shared between the MappedBanks of one bank

    def entry(self, epoch: int, image: int) -> BankEntry:
        entry = self.bank.entry(epoch, image)
        key = (0 if self.seed is None else int(epoch), int(image))
        if key not in self.prompts:
            generator = arm_maps.draws(self.seed, key[0], image)
            encoding = self.features.encoding(torch.tensor([int(image)]))
            with torch.no_grad():
                self.prompts[key] = arm_maps.prompt_entropy(self.predictor, encoding, entry.points.reshape(-1, 4),
                                                            generator, self.K)
        first = entry.passes["laplace"]
        fed = arm_maps.fed_map(self.map_name, first.entropy, self.prompts[key])
        return BankEntry(entry.mask_ids, entry.points, entry.labels, {"laplace": FirstPass(first.logits, fed, first.iou)})


class TrainingPool:
    """Everything the arms share: the pool's data and encodings, fit/val, the seeds' banks (``build``)."""

    def __init__(self, loaded, inputs, exposure, recipe: ArmRecipe):
        self.loaded, self.inputs, self.exposure, self.recipe = loaded, inputs, exposure, recipe
        self.banks: dict[int, FirstPassBank] = {}
        self.prompt_maps: dict = {}  # (seed or "val") → {(epoch, image): map}

    @classmethod
    def build(cls, root, loaded, datasets, recipe: ArmRecipe, *, posterior, log=print) -> "TrainingPool":
        from ..model.predictor import Predictor
        from ..refine.training import FusionInputs
        from ..training import load_fit_split
        from ..training.exposure import exposure_pool

        tic = time.process_time()
        exposure = exposure_pool(root, datasets, fit_images=recipe.images, size=loaded.image_size,
                                 per_domain=recipe.domain_val_images)
        val = load_fit_split(root, "val", loaded.image_size, limit=recipe.val_images)
        inputs = FusionInputs.build(Predictor(loaded.model.eval()), exposure.data, val, kinds=("laplace",),
                                    posterior=posterior)
        log(f"training pool: {exposure.counts()} images and {val.num_images} fit/val images, read and encoded in "
            f"{time.process_time() - tic:.0f} CPU s")
        return cls(loaded, inputs, exposure, recipe)

    def subset(self, arm: Arm) -> np.ndarray:
        """The pool indices an arm trains on (``recipe.images`` of them)."""
        sources = np.asarray(self.exposure.sources)
        fit = np.flatnonzero(sources == "fit")
        if arm.data == "fit":
            return fit[: self.recipe.images]
        shifted = np.flatnonzero((sources != "fit") & (sources != (arm.hold_out or "")))
        count = self.recipe.images - len(shifted)
        if count < 0:
            raise ValueError(f"{len(shifted)} domain val images exceed the budget of {self.recipe.images} images")
        return np.concatenate([fit[:count], shifted])

    def bank(self, seed: int) -> FirstPassBank:
        if seed not in self.banks:  # one seed at a time: the arms are trained seed by seed
            self.banks = {seed: self.inputs.train_bank(seed, self.recipe.fusion_config("laplace"))}
            self.prompt_maps = {k: v for k, v in self.prompt_maps.items() if k == "val"}
        return self.banks[seed]

    def views(self, arm: Arm):
        """(inputs, bank) of a post-hoc arm: its subset of the pool and its map."""
        subset = self.subset(arm)
        bank, val_bank = self.bank(arm.seed), self.inputs.val_bank
        if arm_maps.needs_prompt(arm.map):
            predictor, K = self.inputs.predictor, self.recipe.prompt_K
            bank = MappedBank(bank, arm.map, predictor, self.inputs.train_features, K, arm.seed,
                              self.prompt_maps.setdefault(arm.seed, {}))
            val_bank = MappedBank(val_bank, arm.map, predictor, self.inputs.val_features, K, None,
                                  self.prompt_maps.setdefault("val", {}))
        inputs = dataclasses.replace(self.inputs, train_features=SubsetFeatures(self.inputs.train_features, subset),
                                     val_bank=val_bank)
        return inputs, SubsetBank(bank, subset), subset
