"""The nano SAM-2 model card: box-only accuracy on the fit test split and on every test domain.

Protocol (the paper's): the tight ground-truth box alone as the sparse prompt (corners labelled
2/3, in the model's square input frame), single-mask output from token 0, low-resolution logits
upsampled bilinearly to the original image size and thresholded at 0; IoU and boundary IoU
(dilation ratio 0.02, ``BIoU_2``) per mask; mIoU / mBIoU are means over masks (NaN skipped).

``uncertsam train nano-card`` and notebook 00 (so ``make reproduce``) write ``tables/nano_sam2_card.md``
and ``tables/nano_sam2_card.csv`` from the shipped weights, without retraining. The card names the
data by what it is (UncertSAM-mini's version and seed, or the root folder's name), never by a path
of the machine that wrote it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

CARD_NAME = "nano_sam2_card"
BIOU_RATIO = 0.02


@dataclass
class EvalItem:
    image: np.ndarray  # (H, W, 3) uint8, original size
    masks: np.ndarray  # (N, H, W) bool, original size
    boxes: np.ndarray  # (N, 4) float32 xyxy in the model's square input frame


def items_from_samples(samples: Iterable, size: int) -> list[EvalItem]:
    """``layout.Sample``s → ``EvalItem``s with boxes in the ``size``² input frame."""
    return [EvalItem(s.image, np.asarray(s.masks, bool), np.asarray(s.boxes(size), np.float32)) for s in samples if len(s.masks)]


def evaluate_items(predictor, items: Sequence[EvalItem], *, images_per_batch: int = 8) -> list[dict]:
    """Box-only per-mask scores: one row (image, mask, iou, biou) per mask, in item order."""
    from ...metrics import boundary_iou, iou

    rows = []
    with torch.inference_mode():
        for start in range(0, len(items), images_per_batch):
            chunk = items[start:start + images_per_batch]
            encoding = predictor.encode([item.image for item in chunk], use_cache=False)
            boxes = torch.from_numpy(np.concatenate([item.boxes for item in chunk]))
            index = torch.cat([torch.full((len(item.boxes),), i, dtype=torch.long) for i, item in enumerate(chunk)])
            logits = predictor.decode(encoding, boxes=boxes, image_index=index).logits
            offset = 0
            for i, item in enumerate(chunk):
                n = len(item.boxes)
                pred = predictor.upsample(logits[offset:offset + n], item.image.shape[:2]) > 0
                gt = torch.from_numpy(item.masks)
                scores_iou = iou(pred, gt).tolist()
                scores_biou = boundary_iou(pred, gt, BIOU_RATIO).tolist()
                for j in range(n):
                    rows.append({"image": start + i, "mask": j, "iou": scores_iou[j], "biou": scores_biou[j]})
                offset += n
    return rows


def summarise(rows: Sequence[dict]) -> dict:
    ious = np.array([r["iou"] for r in rows], float)
    bious = np.array([r["biou"] for r in rows], float)
    images = len({r["image"] for r in rows})
    return {
        "images": images,
        "masks": len(rows),
        "miou": float(np.nanmean(ious)) if len(rows) else math.nan,
        "mbiou": float(np.nanmean(bious)) if len(rows) and not np.isnan(bious).all() else math.nan,
    }


def evaluate_split(predictor, root: Path, dataset: str, split: str = "test", limit: int | None = None) -> dict:
    from ...training.data import read_split

    items = items_from_samples(read_split(root, dataset, split, limit), predictor.image_size)
    return summarise(evaluate_items(predictor, items))


def card_datasets(root: Path) -> list[str]:
    """``fit`` first, then every test domain under ``root`` that has a test split (layout order)."""
    root = Path(root)
    try:
        from ...data.layout import DATASETS

        order = list(DATASETS)
    except ImportError:
        order = []
    present = sorted(p.parent.name for p in root.glob("*/test") if p.is_dir() and p.parent.name != "fit")
    domains = [d for d in order if d in present] + [d for d in present if d not in order]
    return (["fit"] if (root / "fit" / "test").is_dir() else []) + domains


def nano_card(root: Path, checkpoint: str | Path | None = None, *, out_dir: Path | None = None,
              progress: bool = True, limit: int | None = None) -> tuple[Path, list[dict]]:
    """Evaluate the nano model (default: the shipped weights) and write the card (md + csv).
    ``limit``: the first N test images of each dataset (None: all; the smoke profile's quick card)."""
    import pandas as pd

    from ...paths import tables_dir
    from ..predictor import Predictor
    from ..registry import load_model

    loaded = load_model("nano", checkpoint)
    predictor = Predictor(loaded.model.eval())
    record_path = Path(loaded.checkpoint).with_suffix(".json")
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    rows = []
    datasets = card_datasets(root)
    if progress:
        from tqdm.auto import tqdm

        datasets = tqdm(datasets, desc="nano card", unit="dataset", leave=False)
    for dataset in datasets:
        summary = evaluate_split(predictor, root, dataset, "test", limit)
        rows.append({"dataset": dataset, "split": "test", **summary})
    domain_rows = [r for r in rows if r["dataset"] != "fit"]
    if domain_rows:
        rows.append({"dataset": f"mean of the {len(domain_rows)} domains", "split": "test",
                     "images": sum(r["images"] for r in domain_rows), "masks": sum(r["masks"] for r in domain_rows),
                     "miou": float(np.mean([r["miou"] for r in domain_rows])),
                     "mbiou": float(np.nanmean([r["mbiou"] for r in domain_rows]))})
    out_dir = Path(out_dir) if out_dir is not None else tables_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=["dataset", "split", "images", "masks", "miou", "mbiou"])
    frame.round(4).to_csv(out_dir / f"{CARD_NAME}.csv", index=False)
    md = out_dir / f"{CARD_NAME}.md"
    md.write_text(_markdown(loaded, record, rows, root, limit))
    return md, rows


def _time_line(record: dict) -> str:
    seconds, cpu = record.get("train_seconds"), record.get("cpu_seconds")
    if seconds is None:
        return "| training time | unknown |"
    threads = record.get("threads")
    line = (f"| training time | {seconds / 60:.1f} min wall ({record.get('seconds_per_step')} s/step), "
            f"{threads} torch thread{'s' if threads != 1 else ''}")
    if cpu is not None:
        line += f"; {cpu / 60:.1f} min of CPU time"
    return line + " |"


def describe_data(root: Path) -> str:
    """The benchmark at ``root`` in words: UncertSAM-mini's version and generator seed, or the folder's name."""
    from ...data.mini import read_marker

    marker = read_marker(root)
    if marker is not None:
        return f"UncertSAM-mini v{marker.get('version')} (generator seed {marker.get('seed')})"
    return f"`{Path(root).name}`"


def _markdown(loaded, record: dict, rows: list[dict], root: Path, limit: int | None = None) -> str:
    params = sum(p.numel() for p in loaded.model.parameters())
    data = record.get("data", {})
    lines = [
        "# Nano SAM-2 (`nano_sam2_256`) model card",
        "",
        "The project's own small SAM-2 (the `sam2` package's classes, `configs/nano_sam2_256.yaml`, image size 256),",
        "trained from scratch on the UncertSAM-mini fit set by `uncertsam train nano`. Generated by",
        "`uncertsam train nano-card`; do not edit by hand.",
        "",
        "| | |",
        "|---|---|",
        f"| parameters | {params:,} |",
        f"| weights | `{Path(loaded.checkpoint).name}`, SHA-256 `{loaded.sha256}` |",
        f"| training data | UncertSAM-mini v{data.get('version')} (generator seed {data.get('seed')}), "
        f"{data.get('split', 'fit/train')}: {record.get('train_data', {}).get('images')} images, "
        f"{record.get('train_data', {}).get('masks')} masks |",
        f"| steps | {record.get('steps')} (batch: {record.get('recipe', {}).get('images_per_step')} images × "
        f"≤ {record.get('recipe', {}).get('objects_per_image')} objects) |",
        f"| seed | {record.get('seed')} |",
        _time_line(record),
        f"| command | `{record.get('command')}` |",
        f"| evaluated on | {describe_data(root)}, test splits"
        + (f", first {limit} images of each |" if limit is not None else " |"),
        "",
        "Protocol: tight ground-truth box alone (sparse corners 2/3), single mask from token 0, logits upsampled",
        f"bilinearly to the original size, threshold 0; mIoU and mBIoU (boundary IoU, dilation ratio {BIOU_RATIO})",
        "are means over masks.",
        "",
        "| dataset | split | images | masks | mIoU | mBIoU |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['split']} | {r['images']} | {r['masks']} | {r['miou']:.4f} | {r['mbiou']:.4f} |")
    return "\n".join(lines) + "\n"
