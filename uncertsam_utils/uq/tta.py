"""Test-time augmentation: the spread of SAM-2's answer over photometrically changed copies.

T copies of the image are augmented, encoded (in batches of ``encoder_batch``) and decoded with
the same boxes, all T × B prompts in one decoder call. p̄ = mean_t σ(z_t); the maps are H(p̄)
(the paper's), the mutual information and the unbiased std over the T probabilities;
logits = logit(p̄), computed in log space from the copies' logits (``measures``: no clamp). Only colours change, so boxes and masks stay aligned.

Transforms (paper_protocol.md §3.1):
- ``hue``: every copy's hue is rotated by U[−0.5, 0.5] of the full circle (the paper's setting);
- ``in_domain``: SAM-2's photometric training jitter: a ColorJitter (brightness ±0.1, contrast
  ±0.03, saturation ±0.03), RandomGrayscale (p = 0.05), a second ColorJitter (brightness ±0.1,
  contrast ±0.05, saturation ±0.05); factors ~ U[1 − x, 1 + x], each jitter's ops in a random
  order, as torchvision does. ("Consistent" vs "per frame" only matters for videos: for one
  image both jitters are drawn anew for every copy.)
- ``identity``: no change (checks the pipeline; its maps are those of the baseline).

Differences from the reference code (§3.1, §8.1.11, §8.2): the augmentation runs on the resized
S × S input tensor (the reference shifts the hue of the full-resolution PIL image before
resizing; the hue rotation does not commute exactly with the antialiased resize, the
differences are at edges), all parameters come from the caller's ``torch.Generator`` (the
reference uses the unseeded global torch RNG and Python ``random``), encoder passes are batched
and the decoder runs once, and ``include_clean=True`` optionally makes the first of the T
copies the unaugmented image (the reference augments every copy).

The colour operations are written here on (T, 3, H, W) tensors with one factor per copy, with
the definitions of ``torchvision.transforms.v2.functional`` for float images (the tests compare
them); torchvision's own kernels take one scalar factor per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.images import to_rgb_uint8
from ..model.predictor import Encoding
from .base import UQMethod, UQResult

# ------------------------------------------------------------------------- colour operations
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, torchvision's rgb_to_grayscale


def _per_copy(factors: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(T,) factors shaped to broadcast against (T, C, H, W) images."""
    return torch.as_tensor(factors, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) → (T, 1, H, W) luma."""
    red, green, blue = images.unbind(dim=-3)
    luma = red.mul(GRAY_WEIGHTS[0]).add_(green, alpha=GRAY_WEIGHTS[1]).add_(blue, alpha=GRAY_WEIGHTS[2])
    return luma.unsqueeze(-3)


def blend(images: torch.Tensor, other: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """factor · image + (1 − factor) · other, clamped to [0, 1]; factor 1 returns the image unchanged.

    ``other`` may be smaller and broadcast (a grey level per copy, a one-channel grey image)."""
    ratio = _per_copy(factors, images)
    return (images * ratio).add_(other * (1.0 - ratio)).clamp_(0.0, 1.0)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with black, i.e. scale."""
    return (images * _per_copy(factors, images)).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with the copy's mean luma (one grey level per copy)."""
    return blend(images, grayscale(images).mean(dim=(-3, -2, -1), keepdim=True), factors)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with the copy's own grey image."""
    return blend(images, grayscale(images), factors)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] → HSV, hue in [0, 1) (fraction of the circle)."""
    red, green, blue = images.unbind(dim=-3)
    value = images.amax(dim=-3)
    chroma = value - images.amin(dim=-3)
    saturation = chroma / torch.where(value > 0, value, torch.ones_like(value))
    safe_chroma = torch.where(chroma > 0, chroma, torch.ones_like(chroma))  # grey pixels: hue 0
    # Hue in sixths of the circle, measured from the channel that is largest (red wins ties, then green).
    hue = torch.where(
        value == red,
        (green - blue) / safe_chroma,
        torch.where(value == green, 2.0 + (blue - red) / safe_chroma, 4.0 + (red - green) / safe_chroma),
    )
    hue = torch.remainder(hue / 6.0, 1.0)
    return torch.stack([hue, saturation, value], dim=-3)


# Where each of red, green, blue starts to fall on the hue circle, in sixths (the hexcone model).
_CHANNEL_OFFSETS = (5.0, 3.0, 1.0)


def _hexcone_rgb(hue_sixths: torch.Tensor, chroma: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """RGB from hue (in sixths, any real number), chroma = s · v and value, each (..., 1, H, W).

    Channel n is v − c · clamp(min(k, 4 − k), 0, 1) with k = (n + 6h) mod 6: the closed form of
    the six-sector table, with no per-sector selection (fewer full-size temporaries)."""
    offsets = torch.tensor(_CHANNEL_OFFSETS, dtype=hue_sixths.dtype, device=hue_sixths.device).reshape(3, 1, 1)
    position = (hue_sixths + offsets).remainder_(6.0)
    ramp = torch.minimum(position, 4.0 - position).clamp_(0.0, 1.0)
    return value - ramp.mul_(chroma)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_hsv``."""
    hue, saturation, value = hsv.split(1, dim=-3)
    return _hexcone_rgb(hue * 6.0, saturation * value, value)


def adjust_hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate each copy's hue by its shift (fraction of the circle, in [−0.5, 0.5]).

    ``images`` (T, 3, H, W) or one (1, 3, H, W) image broadcast against T shifts: the HSV
    conversion then runs once, not T times."""
    hue, saturation, value = rgb_to_hsv(images).split(1, dim=-3)
    shifted_sixths = (hue + _per_copy(shifts, images)).mul_(6.0)
    return _hexcone_rgb(shifted_sixths, saturation * value, value)


def random_grayscale(images: torch.Tensor, make_gray: torch.Tensor) -> torch.Tensor:
    """Replace the copies flagged in ``make_gray`` (T,) bool by their grey image on all 3 channels."""
    flags = torch.as_tensor(make_gray, device=images.device).reshape(-1, 1, 1, 1)
    return torch.where(flags, grayscale(images).expand_as(images), images)


# --------------------------------------------------------------------- ColorJitter, vectorised
JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation)  # op id = position


@dataclass(frozen=True)
class JitterStrength:
    """Factors ~ U[1 − x, 1 + x] per op, as torchvision's ``ColorJitter(brightness=x, ...)``."""

    brightness: float
    contrast: float
    saturation: float


@dataclass
class JitterParams:
    factors: torch.Tensor  # (T, 3): brightness, contrast, saturation factor of each copy
    order: torch.Tensor  # (T, 3): order[t, step] = id of the op copy t applies at that step


SAM2_CONSISTENT_JITTER = JitterStrength(brightness=0.1, contrast=0.03, saturation=0.03)
SAM2_PER_FRAME_JITTER = JitterStrength(brightness=0.1, contrast=0.05, saturation=0.05)
SAM2_GRAYSCALE_PROBABILITY = 0.05
PAPER_HUE_RANGE = 0.5  # the full hue circle


def _uniform(count: int, generator: torch.Generator, *shape: int) -> torch.Tensor:
    """U[0, 1) draws on the generator's device (so CPU generators work for GPU models)."""
    return torch.rand(count, *shape, generator=generator, device=generator.device)


def draw_jitter(count: int, strength: JitterStrength, generator: torch.Generator) -> JitterParams:
    half_widths = torch.tensor([strength.brightness, strength.contrast, strength.saturation], device=generator.device)
    factors = 1.0 + half_widths * (2.0 * _uniform(count, generator, 3) - 1.0)
    order = torch.argsort(_uniform(count, generator, 3), dim=1)  # a uniform random permutation per copy
    return JitterParams(factors=factors, order=order)


def apply_jitter(images: torch.Tensor, params: JitterParams) -> torch.Tensor:
    """Apply each copy's brightness/contrast/saturation factors in that copy's order.

    Copies are grouped by their order (at most 3! = 6 groups) and each group runs as one batch
    through its three ops, so the loops run over orders and ops, never over copies."""
    factors = params.factors.to(images.device, images.dtype)
    order = params.order.to(images.device)
    out = torch.empty(order.shape[0], *images.shape[1:], dtype=images.dtype, device=images.device)
    order_codes = order[:, 0] * 9 + order[:, 1] * 3 + order[:, 2]
    for code in torch.unique(order_codes).tolist():
        chosen = order_codes == code
        group = images.expand_as(out)[chosen]
        for op_id in order[chosen][0].tolist():
            group = JITTER_OPS[op_id](group, factors[chosen, op_id])
        out[chosen] = group
    return out


# ----------------------------------------------------------------------------- augmentations
def hue_copies(clean: torch.Tensor, count: int, generator: torch.Generator, hue_range: float = PAPER_HUE_RANGE) -> torch.Tensor:
    """``count`` copies of a (3, S, S) image, each with its hue rotated by U[−hue_range, hue_range]."""
    shifts = hue_range * (2.0 * _uniform(count, generator) - 1.0)
    return adjust_hue(clean[None], shifts)


def in_domain_copies(clean: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` copies with SAM-2's photometric training augmentations (see the module docstring)."""
    copies = apply_jitter(clean.expand(count, *clean.shape), draw_jitter(count, SAM2_CONSISTENT_JITTER, generator))
    copies = random_grayscale(copies, (_uniform(count, generator) < SAM2_GRAYSCALE_PROBABILITY).to(copies.device))
    return apply_jitter(copies, draw_jitter(count, SAM2_PER_FRAME_JITTER, generator))


def identity_copies(clean: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    return clean.expand(count, *clean.shape)


TRANSFORMS = {"hue": hue_copies, "in_domain": in_domain_copies, "identity": identity_copies}


# ----------------------------------------------------------------------------------- method
def concat_encodings(parts: list[Encoding]) -> Encoding:
    return Encoding(
        image_embed=torch.cat([p.image_embed for p in parts]),
        high_res_feats=[torch.cat(level) for level in zip(*(p.high_res_feats for p in parts))],
        orig_hw=[hw for p in parts for hw in p.orig_hw],
    )


def encode_in_batches(predictor, inputs: torch.Tensor, orig_hw: tuple[int, int], batch_size: int) -> Encoding:
    """Encode (T, 3, S, S) inputs ``batch_size`` at a time (peak memory grows with the batch)."""
    return concat_encodings([predictor.encode_inputs(chunk, [orig_hw]) for chunk in inputs.split(batch_size)])


class TestTimeAugmentation(UQMethod):
    name = "tta"
    changes_image = True
    uses_random = True
    __test__ = False  # not a pytest class, despite the name

    def __init__(self, T: int = 10, transform: str = "hue", include_clean: bool = False, encoder_batch: int = 10):
        """``T`` samples in all; with ``include_clean`` the first is the unaugmented image."""
        if T < 1 or encoder_batch < 1:
            raise ValueError(f"T and encoder_batch must be at least 1, got T={T}, encoder_batch={encoder_batch}")
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown TTA transform {transform!r}; available: {', '.join(TRANSFORMS)}")
        self.T = int(T)
        self.transform = transform
        self.include_clean = bool(include_clean)
        self.encoder_batch = int(encoder_batch)

    def augmented_copies(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The T (or T − 1 with ``include_clean``) augmented copies of the resized (3, S, S) image."""
        return TRANSFORMS[self.transform](clean, self.T - int(self.include_clean), generator)

    def augmented_inputs(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """All T model inputs (T, 3, S, S) in [0, 1], the clean one first if included (for figures)."""
        augmented = self.augmented_copies(clean, generator)
        return torch.cat([clean[None], augmented]) if self.include_clean else augmented

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None) -> UQResult:
        """``encoding`` of the clean image is reused for the clean copy when ``include_clean``."""
        generator = self._require_generator(generator)
        rgb = to_rgb_uint8(image)
        orig_hw = tuple(rgb.shape[:2])
        with torch.inference_mode():
            clean = predictor.to_input(rgb)
            augmented = self.augmented_copies(clean, generator)
            parts = []
            if self.include_clean:
                parts.append(encoding if encoding is not None else predictor.encode_inputs(clean[None], [orig_hw]))
            if augmented.shape[0]:
                parts.append(encode_in_batches(predictor, augmented, orig_hw, self.encoder_batch))
            encodings = concat_encodings(parts)
            boxes = torch.as_tensor(boxes, dtype=torch.float32, device=predictor.device)
            copy_index = torch.arange(self.T, device=predictor.device)[:, None].expand(self.T, boxes.shape[0])
            out = predictor.decode(encodings, boxes=boxes.expand(self.T, *boxes.shape), image_index=copy_index)
        info = {"iou_pred": out.iou.mean(dim=0), "samples": self.T, "transform": self.transform}
        return UQResult.from_samples(self.name, out.logits.float(), 0, orig_hw, info)  # over the T copies
