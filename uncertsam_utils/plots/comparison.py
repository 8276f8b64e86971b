"""Every method on the same objects, side by side.

Columns: the image (cropped around the object) with its box and the ground truth outlined, the
shared error target (the
baseline's soft error |y − p|, what ``pearson_shared`` correlates with), then each method's default
map as **percentile ranks** within the object's image (0–1, one colour scale for all): maps live on
different scales (nats, variances), and the ranks show where each method puts its uncertainty, which
is what the rank correlations and AUROC measure (ranks within the window shown). The rows are objects chosen by a stated rule
(``analysis.select_examples``), named in the caption.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .overlays import box_to_original_frame, crop_window, draw_box, outline
from .palette import UNCERTAINTY_CMAP
from .qualitative import _finish_grid, example_objects, percentile_map


def _object_map(values, k: int, orig_hw) -> np.ndarray:
    """Object ``k``'s low-resolution map upsampled to the image (only that one: images may be large)."""
    from ..model.predictor import Predictor

    return Predictor.upsample(values[k:k + 1].float(), orig_hw)[0].cpu().numpy()


@dataclass
class ComparisonRow:
    title: str
    image: np.ndarray  # (H, W, 3)
    box: np.ndarray  # (4,) original pixels
    gt: np.ndarray  # (H, W) bool
    reference_error: np.ndarray  # (H, W) the baseline's soft error
    maps: dict  # method -> (H, W) its default map


def comparison_rows(predictor, methods: dict, data_root, chosen, *, seed: int = 0, split: str = "test",
                    reference: str = "baseline", crop: bool = True) -> list[ComparisonRow]:
    """One row per object of ``chosen`` (rows with dataset, image_id, mask_id and optionally rule, delta),
    cropped to a window around the object (``overlays.crop_window``; the maps' percentile ranks are
    taken within that window)."""
    import torch

    from ..metrics import soft_error_from_logits
    from ..uq import image_generator, make_method

    labels = {(r.dataset, int(r.image_id), int(r.mask_id)): r for r in chosen.itertuples(index=False)}
    rows = []
    for shown in example_objects(predictor, data_root, None, split=split, chosen=chosen):
        k = shown.largest
        with torch.inference_mode():
            encoding = predictor.encode(shown.image, use_cache=False)
            base = (methods.get(reference) or make_method("baseline")).predict(predictor, shown.image, shown.boxes,
                                                                               encoding=encoding)
            results = {}
            for name, method in sorted(methods.items(), key=lambda item: hasattr(item[1], "components")):
                kwargs = {}
                if hasattr(method, "components"):  # reuse the evaluated components' results, as the driver does
                    kwargs["precomputed"] = {key: results[other] for key, comp in method.components.items()
                                             for other in results if methods[other] is comp}
                results[name] = method.predict(predictor, shown.image, shown.boxes, encoding=encoding,
                                               generator=image_generator(seed, shown.dataset, shown.image_id), **kwargs)
            maps = {name: _object_map(results[name].uncertainty, k, results[name].orig_hw) for name in methods}
        gt = shown.masks[k].astype(bool)
        logits = torch.from_numpy(_object_map(base.logits, k, base.orig_hw))
        error = soft_error_from_logits(logits, torch.from_numpy(gt)).numpy()
        label = labels.get((shown.dataset, shown.image_id, int(shown.mask_ids[k])))
        extra = f"\n{label.rule}, Δ {label.delta:+.3f}" if label is not None and hasattr(label, "rule") else ""
        box = box_to_original_frame(shown.boxes[k], base.orig_hw, predictor.image_size)
        ys, xs = crop_window(gt, box) if crop else (slice(None), slice(None))
        shift = np.array([xs.start or 0, ys.start or 0] * 2, dtype=np.float32)
        rows.append(ComparisonRow(f"{shown.dataset} #{shown.image_id}{extra}", shown.image[ys, xs], box - shift,
                                  gt[ys, xs], error[ys, xs], {n: m[ys, xs] for n, m in maps.items()}))
    return rows


def method_comparison_grid(rows: list[ComparisonRow], *, title: str | None = None, caption: str | None = None,
                           path: str | Path | None = None, cell_size: float = 1.9):
    """The side-by-side figure (module docstring); saved to ``path`` when given."""
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("method_comparison_grid needs at least one row")
    methods = list(rows[0].maps)
    columns = ["image, box, ground truth", "baseline soft error |y − p|\n(the shared target)", *methods]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(cell_size * len(columns) + 1.0, cell_size * len(rows) + 0.8),
                             squeeze=False, constrained_layout=True)
    for row, row_axes in zip(rows, axes):
        row_axes[0].imshow(row.image)
        draw_box(row_axes[0], row.box, "#ffd400")
        outline(row_axes[0], row.gt, "#ffffff")
        error = row_axes[1].imshow(row.reference_error, cmap="viridis", vmin=0.0, vmax=1.0)
        for ax, name in zip(row_axes[2:], methods):
            ranks = ax.imshow(percentile_map(row.maps[name]), cmap=UNCERTAINTY_CMAP, vmin=0.0, vmax=1.0)
            outline(ax, row.gt, "#ffffff", linestyle="--", linewidth=0.5)
        row_axes[0].set_ylabel(row.title, fontsize=8)
    fig.colorbar(error, ax=axes[:, 1], fraction=0.05, pad=0.02, label="soft error").ax.tick_params(labelsize=6)
    fig.colorbar(ranks, ax=axes[:, -1], fraction=0.05, pad=0.02,
                 label="map value, percentile rank in the image").ax.tick_params(labelsize=6)
    return _finish_grid(fig, axes, columns, methods, fontsize=8, title=title, caption=caption, path=path)
