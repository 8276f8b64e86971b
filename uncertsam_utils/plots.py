"""Every figure style of the project in one place: overlays, boxes, qualitative grids, colours.

``METHOD_COLOURS`` gives each uncertainty method one colour used in every figure (boxes,
predictions, curves, bars). ``qualitative_grid`` draws the per-method qualitative figure of
notebooks 02–05: one row per example (e.g. one image per domain), columns image with box,
ground truth, prediction, uncertainty map (with colour bar) and error map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

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


# ---------------------------------------------------------------------- per-method figures

METHOD_COLOURS = {
    "baseline": "#555555",  # grey: plain SAM-2
    "tta": "#1f77b4",  # blue
    "prompt": "#ff7f0e",  # orange
    "laplace": "#2ca02c",  # green
    "laplace-paper": "#98df8a",  # light green: the paper-faithful Laplace recipe
    "varnet": "#9467bd",  # purple
    # refinement variants (notebook 07)
    "mask-prompt": "#8c8c8c",  # light grey: SAM-2 refined by its own mask
    "fusion-laplace": "#006d2c",  # dark green: fused with the Laplace map
    "fusion-ones": "#e7ba52",  # ochre: the ones-map ablation
    "fusion-entropy": "#17becf",  # cyan: fused with SAM's entropy map
    "gt-mask-prompt": "#252525",  # near-black: the ground-truth upper bound
}

MAP_LABELS = {
    "entropy": "entropy of p̄ (nats)",
    "mutual_information": "mutual information (nats)",
    "std": "std of p over samples",
    "log_variance": "log-variance",
}

# Fixed colour ranges where the measure has natural bounds, so that figures compare across methods.
MAP_RANGES = {"entropy": (0.0, math.log(2)), "mutual_information": (0.0, math.log(2)), "std": (0.0, 0.5)}

UNCERTAINTY_CMAP = "magma"
FALSE_NEGATIVE_COLOUR = "#3b8bff"  # object missed
FALSE_POSITIVE_COLOUR = "#ff3b3b"  # background claimed


def method_colour(method: str) -> str:
    """The method's colour; unknown names (e.g. ``tta-in_domain``) fall back to their family's."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    family = method.split("-")[0].split("_")[0]
    return METHOD_COLOURS.get(family, "#000000")


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


def box_to_original_frame(boxes, orig_hw: tuple[int, int], image_size: int) -> np.ndarray:
    """Inverse of ``boxes_to_input_frame``: xyxy boxes from the model's square frame to image pixels."""
    height, width = orig_hw
    scale = np.array([width, height, width, height], dtype=np.float32) / image_size
    return np.asarray(boxes, dtype=np.float32) * scale


def row_from_result(title, image, gt, result, object_index: int, box_input_frame, image_size: int,
                    *, map_name: str | None = None, extra_boxes_input_frame=None) -> QualitativeRow:
    """A row for object ``object_index`` of a ``UQResult`` (upsampled to the image's size)."""
    full = result.at_original_size()
    uncertainty = full.maps[map_name or result.default_map][object_index]
    extra = None
    if extra_boxes_input_frame is not None:
        extra = box_to_original_frame(np.asarray(extra_boxes_input_frame), result.orig_hw, image_size)
    return QualitativeRow(
        title=title,
        image=np.asarray(image),
        box=box_to_original_frame(np.asarray(box_input_frame), result.orig_hw, image_size),
        gt=np.asarray(gt, dtype=bool),
        prob=full.prob[object_index].cpu().numpy(),
        uncertainty=uncertainty.cpu().numpy(),
        extra_boxes=extra,
    )


def _draw_box(ax, box, colour, *, linewidth=2.0, linestyle="-", alpha=1.0):
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = (float(v) for v in box)
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                           linewidth=linewidth, linestyle=linestyle, alpha=alpha))


def _overlay(image: np.ndarray, mask: np.ndarray, colour: str, alpha: float = 0.55) -> np.ndarray:
    """The image, dimmed, with ``mask`` painted in ``colour``."""
    from matplotlib.colors import to_rgb

    base = image.astype(np.float32) / 255.0 * 0.6
    tint = np.asarray(to_rgb(colour), dtype=np.float32)
    return np.where(mask[..., None], (1 - alpha) * base + alpha * tint, base)


def error_image(gt: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """RGB map of a thresholded prediction's errors: missed object pixels and claimed background pixels."""
    from matplotlib.colors import to_rgb

    out = np.zeros((*gt.shape, 3), dtype=np.float32)
    out[gt & ~predicted] = to_rgb(FALSE_NEGATIVE_COLOUR)
    out[~gt & predicted] = to_rgb(FALSE_POSITIVE_COLOUR)
    return out


def qualitative_grid(rows: list[QualitativeRow], method: str, *, map_name: str = "entropy",
                     uncertainty_range: tuple[float, float] | None = None, title: str | None = None,
                     path: str | Path | None = None, cell_size: float = 2.3, threshold: float = 0.5):
    """The qualitative figure: one row per example, five columns; saved to ``path`` when given.

    ``map_name`` labels the colour bar and picks the colour range (``MAP_RANGES``; otherwise the
    range over all rows, so rows stay comparable). Returns the matplotlib figure."""
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
            _draw_box(ax_image, extra, colour, linewidth=0.7, alpha=0.6)
        _draw_box(ax_image, row.box, colour)
        ax_gt.imshow(_overlay(row.image, row.gt, "#ffffff", alpha=0.7))
        ax_pred.imshow(_overlay(row.image, predicted, colour))
        shown = ax_unc.imshow(row.uncertainty, cmap=UNCERTAINTY_CMAP, vmin=vmin, vmax=vmax)
        fig.colorbar(shown, ax=ax_unc, fraction=0.05, pad=0.02).ax.tick_params(labelsize=6)
        ax_err.imshow(error_image(row.gt, predicted))
        ax_image.set_ylabel(row.title, fontsize=9)
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[0], columns):
        ax.set_title(name, fontsize=9)
    fig.suptitle(title or f"{method}: qualitative results", color=colour, fontsize=11)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


# ------------------------------------------------------------------- evaluation figures (notebook 06)

# Colours of the combined maps (not in METHOD_COLOURS); other unknown names get a tab10 colour.
COMBINATION_COLOURS = {"combined-rank": "#d62728", "combined-product": "#8c564b"}


def evaluation_colour(method: str, methods=()) -> str:
    """``method_colour``, or the combination's colour, or a distinct tab10 colour by position."""
    colour = COMBINATION_COLOURS.get(method) or method_colour(method)
    if colour != "#000000":
        return colour
    import matplotlib.colors

    index = list(methods).index(method) if method in methods else 0
    return matplotlib.colors.to_hex(matplotlib.colormaps["tab10"](index % 10))


def metric_by_dataset(per_image, summary, metric: str = "pearson", *, datasets=None, methods=None, ax=None,
                      ylabel: str | None = None, title: str | None = None, seed: int = 0):
    """The Figure 3 style: per dataset, one column of points per method (one point per image: the mean
    of the metric over its masks, jittered), with the mean over masks and its bootstrap interval.

    ``per_image``: rows (dataset, method, image_id, <metric>) (``analysis.image_means``);
    ``summary``: the long table of ``analysis.summarise`` (dataset, method, metric, mean, lo, hi).
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    datasets = list(datasets) if datasets is not None else sorted(per_image["dataset"].unique())
    methods = list(methods) if methods is not None else sorted(per_image["method"].unique())
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(datasets) + 0.12 * len(datasets) * len(methods) + 2), 4.5))
    else:
        fig = ax.figure
    rng = np.random.default_rng(seed)
    width = 0.8 / max(1, len(methods))
    stats = summary[summary["metric"] == metric].set_index(["dataset", "method"])
    for j, method in enumerate(methods):
        colour = evaluation_colour(method, methods)
        for i, dataset in enumerate(datasets):
            x = i - 0.4 + width * (j + 0.5)
            rows = per_image[(per_image["dataset"] == dataset) & (per_image["method"] == method)]
            values = rows[metric].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if values.size:
                jitter = rng.uniform(-0.3, 0.3, values.size) * width
                ax.scatter(x + jitter, values, s=6, color=colour, alpha=0.35, linewidths=0, zorder=2)
            if (dataset, method) in stats.index:
                row = stats.loc[(dataset, method)]
                if np.isfinite(row["mean"]):
                    err = None
                    if np.isfinite(row["lo"]):
                        err = [[max(0.0, row["mean"] - row["lo"])], [max(0.0, row["hi"] - row["mean"])]]
                    ax.errorbar([x], [row["mean"]], yerr=err, fmt="o", color=colour, markeredgecolor="black",
                                markersize=6, capsize=3, elinewidth=1.2, zorder=3,
                                label=method if i == 0 else None)
    ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=1)
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets, rotation=20, ha="right")
    ax.set_xlim(-0.6, len(datasets) - 0.4)
    ax.set_ylabel(ylabel or metric)
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def qualitative_rows(predictor, method, data_root, datasets, *, images_per_domain: int = 1, seed: int = 0,
                     split: str = "test", map_name: str | None = None) -> list[QualitativeRow]:
    """Rows for ``qualitative_grid``: the first ``images_per_domain`` images of each dataset.

    Every object of an image is predicted together (as the evaluation does, with the same per-image
    generator ``image_generator(seed, dataset, image_id)``); the row shows the largest object.
    Perturbed prompts in ``result.info["boxes"]`` (prompt perturbation) are drawn thin."""
    import torch

    from .uq import image_generator

    rows = []
    for shown in example_objects(predictor, data_root, datasets, images_per_domain=images_per_domain, split=split):
        with torch.inference_mode():
            result = method.predict(predictor, shown.image, shown.boxes,
                                    generator=image_generator(seed, shown.dataset, shown.image_id))
        largest = shown.largest
        perturbed = result.info.get("boxes")
        rows.append(row_from_result(
            shown.title, shown.image, shown.masks[largest], result, largest, shown.boxes[largest],
            predictor.image_size, map_name=map_name,
            extra_boxes_input_frame=None if perturbed is None else perturbed[largest, 1:].cpu().numpy(),
        ))
    return rows


@dataclass
class ExampleImage:
    """A test image of a qualitative figure with the objects that keep a box at the model's input size."""

    dataset: str
    image_id: int
    image: np.ndarray
    masks: np.ndarray  # (B, H, W) original resolution
    input_masks: np.ndarray  # (B, S, S) the model's input frame
    boxes: np.ndarray  # (B, 4) input frame
    largest: int  # the object the figure shows

    @property
    def title(self) -> str:
        return f"{self.dataset}\n#{self.image_id}"


def example_objects(predictor, data_root, datasets, *, images_per_domain: int = 1, split: str = "test"):
    """The first ``images_per_domain`` images of each dataset that have an object with a box (``ExampleImage``)."""
    from .data.layout import SplitReader
    from .data.resize import boxes_from_masks, resize_masks

    for dataset in datasets:
        reader = SplitReader(data_root, dataset, split)
        for image_id in reader.image_ids[:images_per_domain]:
            sample = reader.load(image_id)
            input_masks = resize_masks(sample.masks, predictor.image_size)
            boxes, vanished = boxes_from_masks(input_masks)
            if vanished.all():
                continue
            masks = sample.masks[~vanished]
            largest = int(masks.reshape(len(masks), -1).sum(1).argmax())
            yield ExampleImage(dataset, image_id, sample.image, masks, input_masks[~vanished], boxes[~vanished], largest)


# ------------------------------------------------------------------- refinement figure (notebook 07)

@dataclass
class RefinementExample:
    """One object of one image, everything at the original resolution."""

    title: str
    image: np.ndarray  # (H, W, 3)
    box: np.ndarray  # (4,) original-image pixels
    gt: np.ndarray  # (H, W) bool
    uncertainty: np.ndarray  # (H, W) the map fed to the fusion module (first pass)
    predictions: dict  # method name → (H, W) bool


def refinement_examples(predictor, methods: dict, data_root, datasets, *, uncertainty_method, images_per_domain: int = 1,
                        seed: int = 0, split: str = "test") -> list[RefinementExample]:
    """The largest object of the first ``images_per_domain`` test images of each dataset, predicted by
    every method of ``methods`` (name → instance) and with ``uncertainty_method``'s map."""
    import torch

    from .uq import image_generator

    examples = []
    for shown in example_objects(predictor, data_root, datasets, images_per_domain=images_per_domain, split=split):
        largest = shown.largest
        with torch.inference_mode():
            encoding = predictor.encode(shown.image, use_cache=False)
            predictions = {}
            for name, method in [*methods.items(), ("_map", uncertainty_method)]:
                kwargs = {"gt_masks": shown.input_masks} if method.needs_ground_truth else {}
                result = method.predict(predictor, shown.image, shown.boxes, encoding=encoding,
                                        generator=image_generator(seed, shown.dataset, shown.image_id), **kwargs)
                full = result.at_original_size()
                if name == "_map":
                    uncertainty = full.uncertainty[largest].cpu().numpy()
                else:
                    predictions[name] = (full.logits[largest] > 0).cpu().numpy()
        examples.append(RefinementExample(
            shown.title, shown.image, box_to_original_frame(shown.boxes[largest], result.orig_hw, predictor.image_size),
            shown.masks[largest].astype(bool), uncertainty, predictions))
    return examples


def _outline(ax, mask: np.ndarray, colour: str, *, linestyle: str = "-") -> None:
    if mask.any() and not mask.all():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=0.8, linestyles=linestyle)


def refinement_grid(examples: list[RefinementExample], *, map_label: str = MAP_LABELS["entropy"],
                    title: str | None = None, path: str | Path | None = None, cell_size: float = 2.2):
    """Before/after figure: image with its box, ground truth, the first pass's uncertainty map (colour
    bar) and each method's mask (its colour, outlined in yellow; the ground truth dashed in white) with
    its IoU; saved to ``path`` when given."""
    import matplotlib.pyplot as plt

    if not examples:
        raise ValueError("refinement_grid needs at least one example")
    methods = list(examples[0].predictions)
    columns = ["image + box", "ground truth", map_label, *methods]
    fig, axes = plt.subplots(len(examples), len(columns),
                             figsize=(cell_size * len(columns) + 0.6, cell_size * len(examples)),
                             squeeze=False, constrained_layout=True)
    vmin, vmax = MAP_RANGES["entropy"]
    for example, row_axes in zip(examples, axes):
        row_axes[0].imshow(example.image)
        _draw_box(row_axes[0], example.box, "#ffd400")
        row_axes[1].imshow(_overlay(example.image, example.gt, "#ffffff", alpha=0.7))
        _outline(row_axes[1], example.gt, "#ffffff")
        shown = row_axes[2].imshow(example.uncertainty, cmap=UNCERTAINTY_CMAP, vmin=vmin, vmax=vmax)
        fig.colorbar(shown, ax=row_axes[2], fraction=0.05, pad=0.02).ax.tick_params(labelsize=6)
        for ax, name in zip(row_axes[3:], methods):
            predicted = example.predictions[name]
            union = np.logical_or(predicted, example.gt).sum()
            iou = np.logical_and(predicted, example.gt).sum() / union if union else float("nan")
            ax.imshow(_overlay(example.image, predicted, evaluation_colour(name, methods)))
            _outline(ax, example.gt, "#ffffff", linestyle="--")  # the target, dashed
            _outline(ax, predicted, "#ffd400")  # the prediction, solid: visible on dark fills too
            ax.set_xlabel(f"IoU {iou:.3f}", fontsize=8)
        row_axes[0].set_ylabel(example.title, fontsize=9)
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[0], columns):
        ax.set_title(name, fontsize=9, color=evaluation_colour(name, methods) if name in methods else "black")
    if title:
        fig.suptitle(title, fontsize=11)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig
