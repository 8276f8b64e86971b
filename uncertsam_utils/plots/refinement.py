"""The refinement before/after figure (notebook 07): the objects chosen by a stated rule (e.g.
``analysis.select_examples`` by Δ IoU of a variant against the baseline: worst, median, best),
the first pass's uncertainty map and every variant's mask with its IoU, and a legend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .overlays import box_to_original_frame, crop_window, draw_box, outline, tint
from .palette import MAP_LABELS, MAP_RANGES, UNCERTAINTY_CMAP, evaluation_colour
from .comparison import _object_map
from .qualitative import _finish_grid, example_objects

PREDICTION_OUTLINE = "#ffd400"
TARGET_OUTLINE = "#ffffff"


@dataclass
class RefinementExample:
    """One object of one image, everything at the original resolution."""

    title: str
    image: np.ndarray  # (H, W, 3)
    box: np.ndarray  # (4,) original-image pixels
    gt: np.ndarray  # (H, W) bool
    uncertainty: np.ndarray  # (H, W) the map fed to the fusion module (first pass)
    predictions: dict  # method name → (H, W) bool


def refinement_examples(predictor, methods: dict, data_root, datasets=None, *, uncertainty_method,
                        images_per_domain: int = 1, seed: int = 0, split: str = "test", chosen=None,
                        rule: str = "median-area", crop: bool = True) -> list[RefinementExample]:
    """The objects of ``chosen`` (rows dataset, image_id, mask_id[, rule, delta]), or per dataset by ``rule``
    (``plots.example_objects``), predicted by every method of ``methods`` (name → instance), with
    ``uncertainty_method``'s map; cropped to a window around the object (``overlays.crop_window``)."""
    import torch

    from ..uq import image_generator

    labels = {} if chosen is None else {(r.dataset, int(r.image_id), int(r.mask_id)): r
                                        for r in chosen.itertuples(index=False)}
    examples = []
    for shown in example_objects(predictor, data_root, datasets, images_per_domain=images_per_domain, split=split,
                                 rule=rule, chosen=chosen):
        k = shown.largest
        with torch.inference_mode():
            encoding = predictor.encode(shown.image, use_cache=False)
            predictions = {}
            for name, method in [*methods.items(), ("_map", uncertainty_method)]:
                kwargs = {"gt_masks": shown.input_masks} if method.needs_ground_truth else {}
                result = method.predict(predictor, shown.image, shown.boxes, encoding=encoding,
                                        generator=image_generator(seed, shown.dataset, shown.image_id), **kwargs)
                if name == "_map":
                    uncertainty = _object_map(result.uncertainty, k, result.orig_hw)
                else:
                    predictions[name] = _object_map(result.logits, k, result.orig_hw) > 0
        label = labels.get((shown.dataset, shown.image_id, int(shown.mask_ids[k])))
        extra = f"\n{label.rule}, Δ {label.delta:+.3f}" if label is not None and hasattr(label, "rule") else ""
        box, gt = box_to_original_frame(shown.boxes[k], result.orig_hw, predictor.image_size), shown.masks[k].astype(bool)
        ys, xs = crop_window(gt, box) if crop else (slice(None), slice(None))
        shift = np.array([xs.start or 0, ys.start or 0] * 2, dtype=np.float32)
        examples.append(RefinementExample(f"{shown.title}{extra}", shown.image[ys, xs], box - shift, gt[ys, xs],
                                          uncertainty[ys, xs], {n: p[ys, xs] for n, p in predictions.items()}))
    return examples


def _legend(fig) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=TARGET_OUTLINE, linestyle="--", label="ground truth (dashed)"),
               Line2D([], [], color=PREDICTION_OUTLINE, label="prediction (solid), filled in the method's colour")]
    legend = fig.legend(handles=handles, loc="upper right", fontsize=7, frameon=True, facecolor="0.35")
    for text in legend.get_texts():
        text.set_color("white")


def refinement_grid(examples: list[RefinementExample], *, map_label: str = MAP_LABELS["entropy"],
                    title: str | None = None, path: str | Path | None = None, cell_size: float = 2.2,
                    caption: str | None = None):
    """Before/after figure: image with its box, ground truth, the first pass's uncertainty map (colour
    bar) and each method's mask (its colour, outlined in yellow; the ground truth dashed in white) with
    its IoU; a legend of the outlines; ``caption`` (the rule that chose the rows) under it."""
    import matplotlib.pyplot as plt

    if not examples:
        raise ValueError("refinement_grid needs at least one example")
    methods = list(examples[0].predictions)
    columns = ["image + box", "ground truth", map_label, *methods]
    fig, axes = plt.subplots(len(examples), len(columns),
                             figsize=(cell_size * len(columns) + 0.6, cell_size * len(examples) + 0.6),
                             squeeze=False, constrained_layout=True)
    vmin, vmax = MAP_RANGES["entropy"]
    for example, row_axes in zip(examples, axes):
        row_axes[0].imshow(example.image)
        draw_box(row_axes[0], example.box, PREDICTION_OUTLINE)
        row_axes[1].imshow(tint(example.image, example.gt, "#ffffff", alpha=0.7))
        outline(row_axes[1], example.gt, TARGET_OUTLINE)
        shown = row_axes[2].imshow(example.uncertainty, cmap=UNCERTAINTY_CMAP, vmin=vmin, vmax=vmax)
        fig.colorbar(shown, ax=row_axes[2], fraction=0.05, pad=0.02).ax.tick_params(labelsize=6)
        for ax, name in zip(row_axes[3:], methods):
            predicted = example.predictions[name]
            union = np.logical_or(predicted, example.gt).sum()
            iou = np.logical_and(predicted, example.gt).sum() / union if union else float("nan")
            ax.imshow(tint(example.image, predicted, evaluation_colour(name, methods)))
            outline(ax, example.gt, TARGET_OUTLINE, linestyle="--")
            outline(ax, predicted, PREDICTION_OUTLINE)
            ax.set_xlabel(f"IoU {iou:.3f}", fontsize=8)
        row_axes[0].set_ylabel(example.title, fontsize=8)
    _legend(fig)  # a figure-level artist, created before the title as it always was
    return _finish_grid(fig, axes, columns, methods, fontsize=9, title=title, caption=caption, path=path)
