"""SAM-style prompt noise, shared by prompt perturbation (eval), the nano trainer and the Laplace fit.

SAM's training noise, which the paper reuses for prompt perturbation, is defined in the 1024-px
input frame: each box coordinate moves by U[−1, 1] · min(0.1 · side, 20 px), with side = box
width for x and height for y, and each point coordinate by U[−20, 20] px; results are clamped
to the frame. The noise is uniform, not Gaussian. Pixel caps are given in that 1024 frame and
scaled to the model's input frame, so a 256-px model gets a 5-px cap and the noise is the
same fraction of the image at every model size.

Every function takes an explicit ``torch.Generator`` (no global RNG). Noise is drawn on the
generator's device and then moved to the prompts' device, so a CPU generator gives the same
noise whether the model runs on CPU or GPU.
"""

from __future__ import annotations

import torch

SAM_REFERENCE_SIZE = 1024  # the frame in which SAM's and the paper's pixel caps are defined
BOX_NOISE_FRACTION = 0.1  # of the box side (width for x, height for y)
BOX_NOISE_MAX_PIXELS = 20.0  # in the 1024 frame
POINT_NOISE_MAX_PIXELS = 20.0  # in the 1024 frame


def scaled_pixels(pixels_at_reference: float, image_size: int) -> float:
    """A pixel distance given in the 1024 frame, expressed in a ``image_size`` frame."""
    return float(pixels_at_reference) * image_size / SAM_REFERENCE_SIZE


def _uniform_symmetric(shape, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """U[−1, 1] noise drawn from ``generator`` on its own device, returned on ``device``."""
    unit = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float32)
    return (2.0 * unit - 1.0).to(device)


def box_noise_bounds(
    boxes: torch.Tensor,
    image_size: int,
    *,
    fraction: float = BOX_NOISE_FRACTION,
    max_pixels: float = BOX_NOISE_MAX_PIXELS,
) -> torch.Tensor:
    """The largest displacement of each coordinate of xyxy ``boxes`` (..., 4): min(fraction · side, cap)."""
    width = boxes[..., 2] - boxes[..., 0]
    height = boxes[..., 3] - boxes[..., 1]
    sides = torch.stack([width, height, width, height], dim=-1)
    return (fraction * sides).clamp(max=scaled_pixels(max_pixels, image_size))


def jitter_boxes(
    boxes,
    image_size: int,
    generator: torch.Generator,
    *,
    fraction: float = BOX_NOISE_FRACTION,
    max_pixels: float = BOX_NOISE_MAX_PIXELS,
) -> torch.Tensor:
    """SAM's box noise on xyxy ``boxes`` (..., 4) in the ``image_size`` input frame.

    Each coordinate independently moves by U[−1, 1] · min(fraction · side, cap), cap =
    ``max_pixels`` (1024 frame) scaled to ``image_size``; the result is clamped to
    [0, image_size − 1]. Corners cannot cross: each moves by at most ``fraction`` < 0.5 of the side.
    To draw K noisy copies of B boxes, expand the boxes to (B, K, 4) first.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    bounds = box_noise_bounds(boxes, image_size, fraction=fraction, max_pixels=max_pixels)
    noise = _uniform_symmetric(boxes.shape, generator, boxes.device) * bounds
    return (boxes + noise).clamp(0.0, image_size - 1)


def jitter_points(
    points,
    image_size: int,
    generator: torch.Generator,
    *,
    max_pixels: float = POINT_NOISE_MAX_PIXELS,
) -> torch.Tensor:
    """Points (..., 2) xy moved by U[−cap, cap] per coordinate (cap scaled from the 1024 frame), clamped."""
    points = torch.as_tensor(points, dtype=torch.float32)
    noise = _uniform_symmetric(points.shape, generator, points.device) * scaled_pixels(max_pixels, image_size)
    return (points + noise).clamp(0.0, image_size - 1)


def labels_from_masks(points, masks, image_size: int) -> torch.Tensor:
    """Point labels (1 inside, 0 outside) read from ground-truth masks, as SAM's point noise does.

    ``points`` (B, ..., 2) in the ``image_size`` input frame, ``masks`` (B, H, W) at any
    resolution (e.g. the original image's): a point reads the mask pixel it falls in after
    scaling to the mask's grid and truncating, so a jittered point can flip label.
    Returns (B, ...) long labels.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    masks = torch.as_tensor(masks).to(points.device).bool()
    if masks.ndim != 3 or masks.shape[0] != points.shape[0]:
        raise ValueError(f"masks must be (B, H, W) with B = {points.shape[0]}, got {tuple(masks.shape)}")
    height, width = masks.shape[-2:]
    flat_points = points.reshape(points.shape[0], -1, 2)
    cols = (flat_points[..., 0] * (width / image_size)).long().clamp(0, width - 1)
    rows = (flat_points[..., 1] * (height / image_size)).long().clamp(0, height - 1)
    labels = masks.reshape(masks.shape[0], -1).gather(1, rows * width + cols)
    return labels.long().reshape(points.shape[:-1])


def sample_clicks(masks, count: int, generator: torch.Generator, *, positive_probability: float = 0.5):
    """SAM-style click prompts on (B, S, S) input-frame masks: ``count`` distinct pixels per object,
    the first from the foreground, each later one from the foreground with ``positive_probability``
    and from the background otherwise, uniformly and without repeats (the paper's "uniform" sampler).

    Returns points (B, count, 2) xy and labels (B, count), the label being the mask's value at the
    point: when an object has fewer foreground (or background) pixels than asked for, the extra
    draws land on the other region and are labelled by what they hit, never mislabelled.
    """
    masks = torch.as_tensor(masks).bool()
    batch, height, width = masks.shape
    flat = masks.reshape(batch, -1)
    # Random keys, foreground and background ranked separately: the top ``count`` of each region are
    # a uniform draw without replacement from it (a region's pixels always outrank the other's).
    keys = torch.rand((batch, height * width), generator=generator, device=generator.device).to(masks.device)
    fg_rank = torch.topk(keys + flat.float(), count, dim=1).indices
    bg_rank = torch.topk(keys + (~flat).float(), count, dim=1).indices
    want_positive = torch.rand((batch, count), generator=generator, device=generator.device).to(masks.device) < positive_probability
    want_positive[:, 0] = True
    # The j-th foreground click is the j-th foreground draw, the j-th background click the j-th
    # background draw. A region with too few pixels continues into the other region's draws after
    # the ones that region's own clicks took, so clicks never repeat within an object.
    fg_used = torch.cumsum(want_positive.long(), dim=1) - 1
    bg_used = torch.cumsum((~want_positive).long(), dim=1) - 1
    n_fg, n_bg = flat.sum(1, keepdim=True), (~flat).sum(1, keepdim=True)
    n_pos, n_neg = want_positive.sum(1, keepdim=True), (~want_positive).sum(1, keepdim=True)

    def take(rank: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        return rank.gather(1, position.clamp(0, count - 1))

    positive = torch.where(fg_used < n_fg, take(fg_rank, fg_used), take(bg_rank, n_neg + fg_used - n_fg))
    negative = torch.where(bg_used < n_bg, take(bg_rank, bg_used), take(fg_rank, n_pos + bg_used - n_bg))
    index = torch.where(want_positive, positive, negative)
    points = torch.stack([index % width, index // width], dim=-1).float()
    labels = flat.gather(1, index).long()
    return points, labels
