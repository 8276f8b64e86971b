"""Every figure style of the project in one place: overlays, boxes, qualitative grids, colours."""

from __future__ import annotations

import numpy as np

# One colour per object instance in overlays (tab10 without its grey).
INSTANCE_COLOURS = np.array(
    [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
     (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207)], dtype=np.float32
) / 255.0


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
    from matplotlib.patches import Rectangle

    for index, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=float)):
        colour = INSTANCE_COLOURS[index % len(INSTANCE_COLOURS)]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=linewidth))
