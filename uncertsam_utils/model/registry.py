"""Build SAM-2 models: official 2.0/2.1 configs from the ``sam2`` package, or our own configs.

``load_model(name, checkpoint)`` is the one way to get a model:
- ``checkpoint=None``: the default weights (the shipped nano file, or the official file in
  ``checkpoint_dir()``; a missing official file is an error that says how to get it);
- ``checkpoint="random"``: seeded random weights, for tests and timing only; the returned
  ``LoadedModel.label`` says so, and every output that names the model carries that label;
- ``checkpoint=PATH``: a ``{'model': state_dict}`` file, loaded with ``weights_only=True`` and
  checked tensor by tensor against the config (a mismatch names both).

A file whose SHA-256 the registry knows (an official checkpoint under its own file name, the shipped
nano weights) is verified on load; the sum is remembered by the file's size and modification
time (``checkpoints.cached_sha256``), so only the first load of a file reads it whole.

Models are built with SAM-2's stability fallback off, so single-mask output always comes from
mask token 0 (see ``Predictor``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import (
    CHECKPOINTS,
    NANO_WEIGHTS,
    CheckpointInfo,
    cached_sha256,
    checkpoint_dir,
    manual_placement_hint,
    resolve_name,
)

RANDOM = "random"


class CheckpointMismatchError(ValueError):
    pass


@dataclass
class LoadedModel:
    model: torch.nn.Module
    info: CheckpointInfo
    checkpoint: Path | None  # None for random weights
    sha256: str | None
    seed: int | None = None  # the init seed of random weights
    extra: dict = field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        return self.checkpoint is None

    @property
    def image_size(self) -> int:
        return int(self.model.image_size)

    @property
    def label(self) -> str:
        if self.random_weights:
            return f"{self.info.name} (RANDOM WEIGHTS, seed {self.seed}: for tests and timing only)"
        return self.info.name

    def identity(self) -> dict:
        """What an artifact fitted on this model records, to refuse loading onto another model, and
        what a cache key holds about it. Random weights have no file hash: their init seed tells two
        of them apart (the key is left out for real weights, so their records stay as they were)."""
        identity = {"name": self.info.name, "config": Path(self.info.config).name, "sha256": self.sha256}
        if self.random_weights:
            identity["random_seed"] = self.seed
        return identity


def _compose_config(info: CheckpointInfo):
    from omegaconf import OmegaConf

    if Path(info.config).is_absolute():
        cfg = OmegaConf.load(info.config)
    else:
        import sam2  # noqa: F401  (initialises hydra's config module for the package configs)
        from hydra import compose

        cfg = compose(config_name=info.config)
    OmegaConf.resolve(cfg)
    return cfg


def build_model(info: CheckpointInfo, *, seed: int = 0) -> torch.nn.Module:
    """Instantiate the architecture of ``info`` with seeded random weights (CPU, eval mode)."""
    from hydra.utils import instantiate

    cfg = _compose_config(info)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = instantiate(cfg.model, _recursive_=True)
    decoder = model.sam_mask_decoder
    decoder.dynamic_multimask_via_stability = False  # token 0, always (see Predictor)
    return model.eval()


def _describe_mismatch(state: dict, model_state: dict, limit: int = 3) -> tuple[list[str], list[str], list[str]]:
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs config {tuple(v.shape)}"
        for k, v in model_state.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    return missing[:limit] + ([f"... {len(missing)} in all"] if len(missing) > limit else []), unexpected[:limit] + (
        [f"... {len(unexpected)} in all"] if len(unexpected) > limit else []
    ), wrong[:limit] + ([f"... {len(wrong)} in all"] if len(wrong) > limit else [])


def load_state(path: Path) -> dict:
    """Read a ``{'model': state_dict}`` checkpoint safely (``weights_only=True``)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise CheckpointMismatchError(f"checkpoint {path} is not in the official {{'model': state_dict}} format")
    return payload["model"]


def apply_checkpoint(model: torch.nn.Module, path: Path, config: str) -> None:
    state = load_state(path)
    model_state = model.state_dict()
    missing, unexpected, wrong = _describe_mismatch(state, model_state)
    if missing or unexpected or wrong:
        details = "; ".join(
            part
            for part in (
                f"shape differs: {', '.join(wrong)}" if wrong else "",
                f"missing from checkpoint: {', '.join(missing)}" if missing else "",
                f"not in config: {', '.join(unexpected)}" if unexpected else "",
            )
            if part
        )
        guess = _guess_config(state)
        hint = f" It looks like a checkpoint for {guess}." if guess else ""
        raise CheckpointMismatchError(f"checkpoint {path} does not match config {config}: {details}.{hint}")
    model.load_state_dict(state, strict=True)


def _guess_config(state: dict) -> str | None:
    """Name the registry entry whose trunk width matches the checkpoint, for the error message."""
    key = "image_encoder.trunk.patch_embed.proj.weight"
    if key not in state:
        return None
    width = state[key].shape[0]
    widths = {96: "hiera tiny or small", 112: "hiera base_plus", 144: "hiera large"}
    return widths.get(width, f"a Hiera trunk of width {width}")


def _default_checkpoint(info: CheckpointInfo) -> Path:
    if info.family == "nano":
        if not NANO_WEIGHTS.is_file():
            raise FileNotFoundError(
                f"the nano SAM-2 weights are missing at {NANO_WEIGHTS}; train them with "
                "`uncertsam train nano` or restore the file from the repository"
            )
        return NANO_WEIGHTS
    path = checkpoint_dir() / info.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint for {info.name} at {path}. Run `uncertsam checkpoints download {info.name}` "
            f"online, or: {manual_placement_hint(info, path)}"
        )
    return path


def _expected_sha256(info: CheckpointInfo, path: Path) -> str | None:
    if info.family == "nano" and path.resolve() == NANO_WEIGHTS.resolve():
        record = NANO_WEIGHTS.with_suffix(".json")
        return json.loads(record.read_text())["sha256"] if record.is_file() else None
    if info.is_official and path.name == info.filename:
        return info.sha256
    return None


def _mismatch_message(info: CheckpointInfo, path: Path, digest: str, expected: str) -> str:
    if info.family == "nano":
        remedy = "restore the file from the repository or retrain it (`uncertsam train nano`)"
    else:
        remedy = (f"it is damaged, or another file under the official name: delete it and run `uncertsam checkpoints "
                  f"download {info.name}` (a checkpoint of your own needs a name of its own)")
    return f"checkpoint {path} has SHA-256 {digest}, but {info.name} expects {expected}; {remedy}"


def load_model(
    name: str = "nano",
    checkpoint: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    verify_hash: bool | None = None,
) -> LoadedModel:
    """Build ``name`` and load its weights; see the module docstring for ``checkpoint``.

    ``verify_hash`` compares the file's SHA-256 with the registry's where the registry knows it:
    None (default) with the sum remembered for the unchanged file, True reading the file again,
    False not at all. A mismatch is a ``CheckpointMismatchError`` naming the file and both sums."""
    info = resolve_name(name)
    model = build_model(info, seed=seed)
    if checkpoint == RANDOM:
        return LoadedModel(model.to(device), info, None, None, seed=seed)
    path = Path(checkpoint) if checkpoint is not None else _default_checkpoint(info)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    digest = cached_sha256(path, refresh=verify_hash is True)
    expected = _expected_sha256(info, path)
    if verify_hash is not False and expected is not None and digest != expected:
        raise CheckpointMismatchError(_mismatch_message(info, path, digest, expected))
    apply_checkpoint(model, path, info.config)
    return LoadedModel(model.to(device), info, path, digest)


def available_models() -> list[CheckpointInfo]:
    return list(CHECKPOINTS.values())
