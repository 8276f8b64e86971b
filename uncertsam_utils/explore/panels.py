"""The explorer's figure: each method's prediction and uncertainty map side by side, on one image.

One row per method; columns: the prediction (p̄ ≥ 0.5) over the image with the boxes, the
method's uncertainty map with its colour bar, and, where the boxes have ground truth, the errors
of the prediction (missed object pixels, spurious background pixels). Maps with natural bounds
(entropy, mutual information, std) share one fixed range across methods, so that rows compare; a
map without (e.g. the variance network's log-variance) gets its own range, stated on its bar.
With several boxes, each pixel shows the object whose box it is in, or the most uncertain one.
"""

from __future__ import annotations

import numpy as np

from ..plots import (FALSE_NEGATIVE_COLOUR, FALSE_POSITIVE_COLOUR, MAP_LABELS, MAP_RANGES, UNCERTAINTY_CMAP,
                     error_image, method_colour, overlay_masks)
from .core import Exploration, to_pixels


def combine_objects(maps: np.ndarray) -> np.ndarray:
    """(B, H, W) per-object maps → (H, W): the pixel-wise maximum (one object: itself)."""
    return np.asarray(maps).max(axis=0)


def _draw_boxes(ax, boxes_px, matched, colour) -> None:
    from matplotlib.patches import Rectangle

    for box, has_truth in zip(boxes_px, matched >= 0):
        x0, y0, x1, y1 = (float(v) for v in box)
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.8,
                               linestyle="-" if has_truth else "--"))


def _truth_union(exploration: Exploration, objects) -> np.ndarray | None:
    """The union of the ground-truth masks of the shown boxes that have one (None: none has)."""
    matched = exploration.matched[objects]
    if exploration.truth is None or (matched < 0).all():
        return None
    return exploration.truth[matched[matched >= 0]].any(axis=0)


def method_panels(exploration: Exploration, image_size: int, *, objects=None, threshold: float = 0.5,
                  cell: float = 2.6, title: str | None = None):
    """The side-by-side figure of ``exploration`` (``objects``: indices of the boxes shown; None: all)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    objects = np.arange(len(exploration.boxes)) if objects is None else np.atleast_1d(objects)
    truth = _truth_union(exploration, objects)
    names = list(exploration.results)
    columns = ["prediction + boxes", "uncertainty map"] + (["errors (vs. ground truth)"] if truth is not None else [])
    height, width = exploration.image.hw
    column = cell * min(1.6, max(0.6, width / height))  # portrait images get narrower columns
    fig, axes = plt.subplots(len(names), len(columns), figsize=(column * len(columns) + 1.2, cell * len(names) + 0.5),
                             squeeze=False, constrained_layout=True)
    image = exploration.image.image
    boxes_px = to_pixels(exploration.boxes[objects], exploration.image.hw, image_size)
    for row, name in zip(axes, names):
        result = exploration.results[name]
        predicted = (result.prob[objects].cpu().numpy() >= threshold)
        colour = method_colour(name)
        row[0].imshow(overlay_masks(image, predicted, alpha=0.45))
        _draw_boxes(row[0], boxes_px, exploration.matched[objects], colour)
        row[0].set_ylabel(name, color=colour, fontsize=10, fontweight="bold")
        map_name = result.default_map
        values = combine_objects(result.maps[map_name][objects].cpu().numpy())
        vmin, vmax = MAP_RANGES.get(map_name) or (float(np.nanmin(values)), float(np.nanmax(values)))
        shown = row[1].imshow(values, cmap=UNCERTAINTY_CMAP, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-6)
        bar = fig.colorbar(shown, ax=row[1], fraction=0.046, pad=0.02)
        bar.set_label(MAP_LABELS.get(map_name, map_name), fontsize=7)
        bar.ax.tick_params(labelsize=6)
        if truth is not None:
            row[2].imshow(error_image(truth, predicted.any(axis=0)))
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, heading in zip(axes[0], columns):
        ax.set_title(heading, fontsize=9)
    if truth is not None:
        axes[-1][2].legend(handles=[Patch(color=FALSE_NEGATIVE_COLOUR, label="missed (object)"),
                                    Patch(color=FALSE_POSITIVE_COLOUR, label="spurious (background)")],
                           loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=7, ncol=1, frameon=False)
    fig.suptitle(title or f"{exploration.image.label}: {len(objects)} box(es); dashed: no ground truth", fontsize=10)
    return fig


def metrics_table(exploration: Exploration, columns) -> "object":
    """The per-mask metrics of the boxes with ground truth: rows method × box, the ``columns`` asked."""
    frame = exploration.metrics
    if frame.empty:
        return frame
    wanted = [c for c in columns if c in frame.columns]
    return frame.set_index(["box", "mask_id", "method"])[wanted].sort_index(level=[0, 1], sort_remaining=False)
