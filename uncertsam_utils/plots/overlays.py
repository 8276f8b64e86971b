"""Drawing on images: instance overlays, boxes, outlines, error maps and their legend."""

from __future__ import annotations

import numpy as np

from .palette import FALSE_NEGATIVE_COLOUR, FALSE_POSITIVE_COLOUR, INSTANCE_COLOURS


def overlay_masks(image: np.ndarray, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with each mask (N, H, W) tinted in its instance colour; float RGB in [0, 1]."""
    out = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    out = out.copy()
    for index, mask in enumerate(np.asarray(masks, dtype=bool)):
        colour = INSTANCE_COLOURS[index % len(INSTANCE_COLOURS)]
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
    return out


def draw_boxes(ax, boxes: np.ndarray, linewidth: float = 1.5) -> None:
    """xyxy boxes in the image's pixel frame, coloured like the instances of ``overlay_masks``."""
    for index, box in enumerate(np.asarray(boxes, dtype=float)):
        draw_box(ax, box, INSTANCE_COLOURS[index % len(INSTANCE_COLOURS)], linewidth=linewidth)


def draw_box(ax, box, colour, *, linewidth=2.0, linestyle="-", alpha=1.0) -> None:
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = (float(v) for v in box)
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                           linewidth=linewidth, linestyle=linestyle, alpha=alpha))


def tint(image: np.ndarray, mask: np.ndarray, colour: str, alpha: float = 0.55) -> np.ndarray:
    """The image, dimmed, with ``mask`` painted in ``colour``."""
    from matplotlib.colors import to_rgb

    base = image.astype(np.float32) / 255.0 * 0.6
    paint = np.asarray(to_rgb(colour), dtype=np.float32)
    return np.where(mask[..., None], (1 - alpha) * base + alpha * paint, base)


def outline(ax, mask: np.ndarray, colour: str, *, linestyle: str = "-", linewidth: float = 0.8) -> None:
    if mask.any() and not mask.all():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=linewidth, linestyles=linestyle)


def error_image(gt: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """RGB map of a thresholded prediction's errors: missed object pixels and claimed background pixels."""
    from matplotlib.colors import to_rgb

    out = np.zeros((*gt.shape, 3), dtype=np.float32)
    out[gt & ~predicted] = to_rgb(FALSE_NEGATIVE_COLOUR)
    out[~gt & predicted] = to_rgb(FALSE_POSITIVE_COLOUR)
    return out


def error_legend(ax, *, loc: str = "lower right", fontsize: float = 6.5) -> None:
    """The legend of ``error_image`` (every error map carries one)."""
    from matplotlib.patches import Patch

    handles = [Patch(color=FALSE_NEGATIVE_COLOUR, label="missed (FN)"),
               Patch(color=FALSE_POSITIVE_COLOUR, label="spurious (FP)"), Patch(color="black", label="correct")]
    ax.legend(handles=handles, loc=loc, fontsize=fontsize, framealpha=0.8, handlelength=1.0, borderpad=0.3,
              labelspacing=0.2)


def box_to_original_frame(boxes, orig_hw: tuple[int, int], image_size: int) -> np.ndarray:
    """Inverse of ``boxes_to_input_frame``: xyxy boxes from the model's square frame to image pixels."""
    height, width = orig_hw
    scale = np.array([width, height, width, height], dtype=np.float32) / image_size
    return np.asarray(boxes, dtype=np.float32) * scale


def crop_window(gt: np.ndarray, box, *, pad: float = 0.6, min_side: int = 48) -> tuple[slice, slice]:
    """Rows and columns of a window around an object (its mask and its xyxy box), padded by ``pad`` times
    its size on each side and at least ``min_side`` pixels, clipped to the image: small objects stay visible."""
    height, width = gt.shape
    ys, xs = np.nonzero(gt)
    x0, y0, x1, y1 = (float(v) for v in box)
    if ys.size:
        x0, y0, x1, y1 = min(x0, xs.min()), min(y0, ys.min()), max(x1, xs.max() + 1), max(y1, ys.max() + 1)
    half_w = max((x1 - x0) * (0.5 + pad), min_side / 2)
    half_h = max((y1 - y0) * (0.5 + pad), min_side / 2)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rows = slice(int(max(0, np.floor(cy - half_h))), int(min(height, np.ceil(cy + half_h))))
    cols = slice(int(max(0, np.floor(cx - half_w))), int(min(width, np.ceil(cx + half_w))))
    return rows, cols
