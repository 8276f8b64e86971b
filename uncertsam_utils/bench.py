"""Speed benchmarks that report ratios against a plain SAM-2 prediction measured in the same run.

Timed unit tests are flaky on shared machines; ratios measured side by side are not. Each case
is run ``repeats`` times after one warm-up and its median is reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class Timing:
    model: str
    case: str
    seconds: float
    ratio_to_plain: float


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_image(size: int, seed: int = 0) -> np.ndarray:
    """A smooth random image (a benchmark input, not a meaningful scene)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((size // 32 + 1, size // 32 + 1, 3))
    return (np.kron(coarse, np.ones((32, 32, 1)))[:size, :size] * 255).astype(np.uint8)


def bench_boxes(count: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0, 0.6 * size, (count, 2))
    hi = lo + rng.uniform(0.1 * size, 0.4 * size, (count, 2))
    return np.concatenate([lo, np.minimum(hi, size - 1)], axis=1).astype(np.float32)


def bench_core(model_name: str = "sam2.1_hiera_tiny", checkpoint: str | None = "random", *, boxes: int = 10, repeats: int = 3, device: str = "cpu") -> list[Timing]:
    import torch

    from .model import Predictor, load_model

    loaded = load_model(model_name, checkpoint, device=device)
    predictor = Predictor(loaded.model)
    image = bench_image(predictor.image_size)
    one = bench_boxes(1, predictor.image_size)
    many = bench_boxes(boxes, predictor.image_size)

    def plain():
        return predictor.decode(predictor.encode(image, use_cache=False), boxes=one)

    def batched():
        return predictor.decode(predictor.encode(image, use_cache=False), boxes=many)

    def sequential():
        encoding = predictor.encode(image, use_cache=False)
        return [predictor.decode(encoding, boxes=box[None]) for box in many]

    cases = {
        "plain (encode + decode 1 box)": plain,
        f"encode once + decode {boxes} boxes in one call": batched,
        f"encode once + {boxes} sequential decodes": sequential,
    }
    with torch.inference_mode():
        seconds = {case: median_seconds(fn, repeats) for case, fn in cases.items()}
    base = seconds["plain (encode + decode 1 box)"]
    return [Timing(loaded.label, case, s, s / base) for case, s in seconds.items()]


def write_csv(rows: list[Timing], path: Path) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([row.__dict__ for row in rows])
    frame.to_csv(path, index=False, float_format="%.4f")


def format_rows(rows: list[Timing]) -> str:
    width = max(len(r.case) for r in rows)
    lines = [f"model: {rows[0].model}"] if rows else []
    lines += [f"  {r.case:<{width}}  {r.seconds:8.3f} s   {r.ratio_to_plain:5.2f}x plain" for r in rows]
    return "\n".join(lines)


def _run_core(args) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = bench_core(args.model, args.checkpoint, boxes=args.boxes, repeats=args.repeats, device=args.device)
    print(format_rows(rows))
    if args.out:
        write_csv(rows, Path(args.out))
        print(f"wrote {args.out}")
    return 0


def register(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="speed benchmarks (ratios to a plain SAM-2 prediction)")
    kinds = bench.add_subparsers(dest="bench_kind", metavar="KIND", required=True)
    core = kinds.add_parser("core", help="encode once + batched decode vs. a plain prediction")
    core.add_argument("--model", default="sam2.1_hiera_tiny", help="registry name (default: official hiera tiny)")
    core.add_argument("--checkpoint", default="random", help="'random' (default), or a checkpoint path; omit weights with 'random'")
    core.add_argument("--boxes", type=int, default=10)
    core.add_argument("--repeats", type=int, default=3)
    core.add_argument("--device", default="cpu")
    core.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    core.add_argument("--out", help="also write the figures as CSV (model, case, seconds, ratio_to_plain)")
    core.set_defaults(handler=_run_core)
