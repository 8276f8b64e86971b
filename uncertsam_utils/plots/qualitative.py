"""Qualitative figures: one method's rows (image, GT, prediction, map, errors), and every method on
the same objects side by side. Which objects are shown is decided by a stated rule (``example_objects``:
the median-area object of each domain, or the objects ``analysis.select_examples`` picked by Δ), and the
rule is written into the figure's caption."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .overlays import box_to_original_frame, draw_box, error_image, error_legend, outline, tint
from .palette import MAP_LABELS, MAP_RANGES, UNCERTAINTY_CMAP, evaluation_colour, method_colour

MEDIAN_AREA_RULE = ("per domain, the test image whose largest object has the median area (as a share of the image) "
                    "among the domain's test images; its largest object is shown")


@dataclass
class QualitativeRow:
    """One example: everything at the original image resolution."""

    title: str  # e.g. the domain name
    image: np.ndarray  # (H, W, 3) uint8
    box: np.ndarray  # (4,) xyxy prompt box, original-image pixels
    gt: np.ndarray  # (H, W) bool ground-truth mask
    prob: np.ndarray  # (H, W) predicted foreground probability
    uncertainty: np.ndarray  # (H, W)
    extra_boxes: np.ndarray | None = None  # (K, 4) e.g. perturbed prompts, drawn thin


def row_from_result(title, image, gt, result, object_index: int, box_input_frame, image_size: int,
                    *, map_name: str | None = None, extra_boxes_input_frame=None) -> QualitativeRow:
    """A row for object ``object_index`` of a ``UQResult`` (upsampled to the image's size)."""
    full = result.at_original_size()
    extra = None
    if extra_boxes_input_frame is not None:
        extra = box_to_original_frame(np.asarray(extra_boxes_input_frame), result.orig_hw, image_size)
    return QualitativeRow(
        title=title, image=np.asarray(image),
        box=box_to_original_frame(np.asarray(box_input_frame), result.orig_hw, image_size),
        gt=np.asarray(gt, dtype=bool), prob=full.prob[object_index].cpu().numpy(),
        uncertainty=full.maps[map_name or result.default_map][object_index].cpu().numpy(), extra_boxes=extra)


def _save(fig, path) -> None:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)


def _clean(axes) -> None:
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])


def _finish_grid(fig, axes, columns, methods, *, fontsize: int, title, caption, path):
    """The common end of the example grids: bare axes, column titles in each method's colour, the
    title, the caption naming the rule that chose the rows, saved to ``path`` when given."""
    from .palette import evaluation_colour

    _clean(axes)
    for ax, name in zip(axes[0], columns):
        ax.set_title(name, fontsize=fontsize, color=evaluation_colour(name, methods) if name in methods else "black")
    if title:
        fig.suptitle(title, fontsize=11)
    if caption:
        fig.supxlabel(f"Shown: {caption}", fontsize=7, wrap=True)
    _save(fig, path)
    return fig


def qualitative_grid(rows: list[QualitativeRow], method: str, *, map_name: str = "entropy",
                     uncertainty_range: tuple[float, float] | None = None, title: str | None = None,
                     path: str | Path | None = None, cell_size: float = 2.3, threshold: float = 0.5,
                     caption: str | None = MEDIAN_AREA_RULE):
    """The qualitative figure: one row per example, five columns (the error maps with their legend);
    ``caption`` (the rule that chose the rows) under the figure; saved to ``path`` when given."""
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("qualitative_grid needs at least one row")
    colour = method_colour(method)
    vmin, vmax = uncertainty_range or MAP_RANGES.get(map_name) or (
        float(min(r.uncertainty.min() for r in rows)), float(max(r.uncertainty.max() for r in rows)))
    columns = ("image + box", "ground truth", f"prediction (p̄ ≥ {threshold:g})",
               MAP_LABELS.get(map_name, map_name), "error (missed / spurious)")
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(cell_size * len(columns) + 0.6, cell_size * len(rows)),
                             squeeze=False, constrained_layout=True)
    for row, row_axes in zip(rows, axes):
        predicted = row.prob >= threshold
        ax_image, ax_gt, ax_pred, ax_unc, ax_err = row_axes
        ax_image.imshow(row.image)
        for extra in (row.extra_boxes if row.extra_boxes is not None else []):
            draw_box(ax_image, extra, colour, linewidth=0.7, alpha=0.6)
        draw_box(ax_image, row.box, colour)
        ax_gt.imshow(tint(row.image, row.gt, "#ffffff", alpha=0.7))
        ax_pred.imshow(tint(row.image, predicted, colour))
        shown = ax_unc.imshow(row.uncertainty, cmap=UNCERTAINTY_CMAP, vmin=vmin, vmax=vmax)
        fig.colorbar(shown, ax=ax_unc, fraction=0.05, pad=0.02).ax.tick_params(labelsize=6)
        ax_err.imshow(error_image(row.gt, predicted))
        error_legend(ax_err)
        ax_image.set_ylabel(row.title, fontsize=9)
    _clean(axes)
    for ax, name in zip(axes[0], columns):
        ax.set_title(name, fontsize=9)
    fig.suptitle(title or f"{method}: qualitative results", color=colour, fontsize=11)
    if caption:
        fig.supxlabel(f"Shown: {caption}.", fontsize=7, wrap=True)
    _save(fig, path)
    return fig


@dataclass
class ExampleImage:
    """A test image of a qualitative figure with the objects that keep a box at the model's input size."""

    dataset: str
    image_id: int
    image: np.ndarray
    masks: np.ndarray  # (B, H, W) original resolution
    input_masks: np.ndarray  # (B, S, S) the model's input frame
    boxes: np.ndarray  # (B, 4) input frame
    largest: int  # the object the figure shows (the largest, or the chosen one)
    mask_ids: np.ndarray | None = None

    @property
    def title(self) -> str:
        return f"{self.dataset}\n#{self.image_id}"


def _example(predictor, reader, image_id: int, mask_id: int | None = None) -> ExampleImage | None:
    from ..data.resize import boxes_from_masks, resize_masks

    sample = reader.load(image_id)
    input_masks = resize_masks(sample.masks, predictor.image_size)
    boxes, vanished = boxes_from_masks(input_masks)
    if vanished.all():
        return None
    masks, ids = sample.masks[~vanished], np.asarray(sample.mask_ids)[~vanished]
    if mask_id is None:
        shown = int(masks.reshape(len(masks), -1).sum(1).argmax())
    elif int(mask_id) in ids.tolist():
        shown = ids.tolist().index(int(mask_id))
    else:
        raise KeyError(f"{reader.dataset} image {image_id} has no evaluated mask {mask_id}")
    return ExampleImage(reader.dataset, image_id, sample.image, masks, input_masks[~vanished], boxes[~vanished], shown,
                        ids)


def median_area_images(reader, count: int = 1) -> list[int]:
    """The ``count`` image ids whose largest object's area share is nearest the median of the split's."""
    shares = []
    for image_id in reader.image_ids:
        masks = reader.load(image_id).masks
        shares.append((float(masks.reshape(len(masks), -1).sum(1).max()) / masks[0].size, image_id))
    shares.sort()
    middle = (len(shares) - 1) // 2
    order = sorted(range(len(shares)), key=lambda i: (abs(i - middle), i))
    return [shares[i][1] for i in order[:count]]


def example_objects(predictor, data_root, datasets, *, images_per_domain: int = 1, split: str = "test",
                    rule: str = "median-area", chosen=None):
    """``ExampleImage``s: with ``chosen`` (rows dataset, image_id, mask_id, e.g. of ``analysis.select_examples``)
    exactly those objects; else per dataset ``images_per_domain`` images by ``rule``: ``median-area``
    (``MEDIAN_AREA_RULE``) or ``first`` (the lowest image ids)."""
    from ..data.layout import SplitReader

    if chosen is not None:
        readers = {}
        for row in chosen.itertuples(index=False):
            reader = readers.setdefault(row.dataset, SplitReader(data_root, row.dataset, split, resize_check_size=None))
            found = _example(predictor, reader, int(row.image_id), int(row.mask_id))
            if found is not None:
                yield found
        return
    if rule not in ("median-area", "first"):
        raise ValueError(f"unknown example rule {rule!r}; choose median-area or first")
    for dataset in datasets:
        reader = SplitReader(data_root, dataset, split)
        ids = median_area_images(reader, images_per_domain) if rule == "median-area" else reader.image_ids[
            :images_per_domain]
        for image_id in ids:
            found = _example(predictor, reader, image_id)
            if found is not None:
                yield found


def qualitative_rows(predictor, method, data_root, datasets, *, images_per_domain: int = 1, seed: int = 0,
                     split: str = "test", map_name: str | None = None, rule: str = "median-area",
                     chosen=None) -> list[QualitativeRow]:
    """Rows for ``qualitative_grid`` from ``example_objects`` (its ``rule`` or ``chosen`` objects).

    Every object of an image is predicted together (as the evaluation does, with the same per-image
    generator ``image_generator(seed, dataset, image_id)``); the row shows the example's object.
    Perturbed prompts in ``result.info["boxes"]`` (prompt perturbation) are drawn thin."""
    import torch

    from ..uq import image_generator

    rows = []
    for shown in example_objects(predictor, data_root, datasets, images_per_domain=images_per_domain, split=split,
                                 rule=rule, chosen=chosen):
        with torch.inference_mode():
            result = method.predict(predictor, shown.image, shown.boxes,
                                    generator=image_generator(seed, shown.dataset, shown.image_id))
        k = shown.largest
        perturbed = result.info.get("boxes")
        rows.append(row_from_result(
            shown.title, shown.image, shown.masks[k], result, k, shown.boxes[k], predictor.image_size,
            map_name=map_name, extra_boxes_input_frame=None if perturbed is None else perturbed[k, 1:].cpu().numpy()))
    return rows


def percentile_map(values: np.ndarray) -> np.ndarray:
    """A map's values as their percentile rank in [0, 1] (ties share their average rank)."""
    from ..metrics._ranking import average_ranks

    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    ranks = average_ranks(flat)
    return ((ranks - 1.0) / max(1, flat.size - 1)).reshape(values.shape)
