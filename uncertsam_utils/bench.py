"""Speed benchmarks that report ratios against a plain SAM-2 prediction measured in the same run.

Timed unit tests are flaky on shared machines; ratios measured side by side are not. Each case
is run ``repeats`` times after one warm-up and its median is reported.

- ``bench core``: encode once + batched decode against a plain prediction;
- ``bench uq``: each registered uncertainty method's time per image against the baseline; with
  ``--flops`` also the floating-point operations of its matrix products (convolutions, matrix
  multiplications, attention), counted by ``torch.utils.flop_counter`` on one more image. The
  count does not depend on the machine: a time ratio near the FLOP ratio means the method's work is
  inherent, not overhead.

One clock per run: every ratio of a run, the ``laplace-fit`` row included, is measured with the
same clock (``Timer``): wall time by default, the process's CPU time on request (CPU devices only:
it would not see GPU work). On CUDA the device is synchronised before each timed region starts
and before it stops, so a region's time includes the kernels it queued, and ``bench uq`` adds the
column ``peak_gpu_mib``: each method's peak ``torch.cuda.max_memory_allocated`` over its timed
images (model weights included; the peak statistics are reset before each region).

Two CPU effects that move the ratios (measured on the 2-core development machine):
- with other jobs on the cores, torch's default OpenMP threads spin-wait on each other and
  every time inflates several-fold; ``--threads 1`` gives steadier numbers there;
- glibc returns allocations over 32 MB to the system on free, so large batches paid kernel
  page-zeroing on every call; the predictor turns that off on CPU (``model/allocator.py``).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class Timing:
    model: str
    case: str
    seconds: float
    ratio_to_plain: float


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class Timer:
    """One clock for every timed region of a run; on CUDA, the device synchronised around each region
    and its peak memory recorded (``peak`` in MiB; nan on other devices)."""

    def __init__(self, clock: str = "wall", device="cpu"):
        import torch

        if clock not in CLOCKS:
            raise ValueError(f"unknown clock {clock!r}; choose from {', '.join(CLOCKS)}")
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and clock != "wall":
            raise ValueError(f"the {clock} clock does not see GPU work: time CUDA runs with the wall clock")
        self.clock, self.now = clock, CLOCKS[clock]

    def measure(self, fn: Callable[[], object]) -> tuple[float, float]:
        """Seconds ``fn`` takes on this clock, and its peak GPU memory in MiB (nan off CUDA)."""
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)  # work queued before the region is not its own
            torch.cuda.reset_peak_memory_stats(self.device)
        start = self.now()
        fn()
        if self.cuda:
            torch.cuda.synchronize(self.device)  # the region's own kernels have finished
        seconds = self.now() - start
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.cuda else float("nan")
        return seconds, peak


def median_seconds(fn: Callable[[], object], repeats: int, timer: Timer | None = None) -> float:
    """Median over ``repeats`` calls after one warm-up, on ``timer`` (default: wall clock, CPU)."""
    timer = timer or Timer()
    fn()  # warm-up: first calls allocate and pick kernels
    return statistics.median(timer.measure(fn)[0] for _ in range(repeats))


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
    timer = Timer("wall", device)
    with torch.inference_mode():
        seconds = {case: median_seconds(fn, repeats, timer) for case, fn in cases.items()}
    base = seconds["plain (encode + decode 1 box)"]
    return [Timing(loaded.label, case, s, s / base) for case, s in seconds.items()]


def write_csv(rows: list, path: Path) -> None:
    """One row per dataclass instance in ``rows``, columns in field order; floats to six significant
    digits (fixed decimals would leave a 0.012 s/image time two digits, and its ratio unverifiable)."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([row.__dict__ for row in rows])
    frame.to_csv(path, index=False, float_format="%.6g")


def format_rows(rows: list[Timing]) -> str:
    width = max(len(r.case) for r in rows)
    lines = [f"model: {rows[0].model}"] if rows else []
    lines += [f"  {r.case:<{width}}  {r.seconds:8.3f} s   {r.ratio_to_plain:5.2f}x plain" for r in rows]
    return "\n".join(lines)


# -------------------------------------------------------------------------------- bench uq
DEFAULT_UQ_MODELS = ("sam2.1_hiera_tiny", "nano")


@dataclass
class MethodTiming:
    model: str
    method: str
    seconds_per_image: float
    ratio_to_baseline: float


@dataclass
class MethodCost(MethodTiming):
    """A timing with the method's matrix-product FLOPs per image (``bench uq --flops``)."""

    gflop_per_image: float
    flop_ratio_to_baseline: float


@dataclass
class GpuTiming(MethodTiming):
    """A timing on CUDA, with the method's peak GPU memory in MiB."""

    peak_gpu_mib: float


@dataclass
class GpuCost(MethodCost):
    """A timing with FLOPs on CUDA, with the method's peak GPU memory in MiB."""

    peak_gpu_mib: float


def matmul_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix products ``fn`` runs (torch's counter: mm, bmm, convolutions, attention;
    element-wise work such as softmax, normalisation or activations is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def load_bench_model(name: str, device: str = "cpu"):
    """Official models with random weights (timing does not depend on them); the nano model with its
    shipped weights when the file exists, else random weights (the label says which)."""
    from .model import load_model
    from .model.checkpoints import NANO_WEIGHTS

    if name == "nano" and NANO_WEIGHTS.is_file():
        return load_model(name, None, device=device)
    return load_model(name, "random", device=device)


def bench_uq_model(loaded, method_names, *, objects: int = 3, repeats: int = 5, seed: int = 0,
                   clock: str = "wall", flops: bool = False) -> list[MethodTiming]:
    """Median seconds per image of each method on one model, with the baseline measured alongside.

    Every call, of every method, sees an image of its own: the predictor caches the last
    encoding, and a method run on the image the previous method just encoded would skip its
    encoder pass. Each time thus includes the encoder passes a new image costs. Methods are
    interleaved within each repeat, so load from other jobs on a shared machine hits them alike.
    With ``laplace``, the row ``laplace-fit`` times fitting its posterior per image (one curvature
    pass, closed form) in the same loop, on the same clock. ``clock="cpu"`` measures the process's
    CPU time (all threads, user + system) instead of wall time: with one thread it barely depends on
    what else runs on the machine. ``flops`` adds each method's matrix-product FLOPs on one more
    image of its own (``MethodCost`` rows; the ``laplace-fit`` row's are nan). On CUDA the rows
    carry each method's peak GPU memory (``GpuTiming``, ``GpuCost``)."""
    import torch

    from .model import Predictor

    predictor = Predictor(loaded.model)
    timer = Timer(clock, next(loaded.model.parameters()).device)
    cases = _method_cases(loaded, predictor, method_names, objects=objects, images=repeats + 1 + int(flops), seed=seed)
    names = list(cases)
    if "laplace" in names:
        cases["laplace-fit"] = _laplace_fit_case(predictor, images=repeats + 1, seed=seed)
    times: dict[str, list[float]] = {n: [] for n in cases}
    peaks: dict[str, list[float]] = {n: [] for n in cases}
    with torch.inference_mode():
        for run in cases.values():
            run(0)  # warm-up: first calls allocate and pick kernels
        for index in range(1, repeats + 1):
            for name, run in cases.items():
                seconds, peak = timer.measure(partial(run, index))
                times[name].append(seconds)
                peaks[name].append(peak)
        counted = {name: matmul_flops(partial(cases[name], repeats + 1)) for name in names} if flops else {}
    medians = {n: statistics.median(t) for n, t in times.items()}
    base = medians["baseline"]
    rows = [MethodTiming(loaded.label, n, medians[n], medians[n] / base) for n in cases]
    if flops:  # the fit's FLOPs are not counted (nan)
        rows = _extend(rows, MethodCost, gflop_per_image={n: c / 1e9 for n, c in counted.items()},
                       flop_ratio_to_baseline={n: c / counted["baseline"] for n, c in counted.items()})
    if timer.cuda:
        rows = _extend(rows, GpuCost if flops else GpuTiming, peak_gpu_mib={n: max(p) for n, p in peaks.items()})
    return rows


def _method_cases(loaded, predictor, method_names, *, objects: int, images: int, seed: int) -> dict:
    """``{name: run(index)}``: the baseline first, each method predicting on image ``index`` of its own."""
    import torch

    from .uq import METHODS, image_generator

    names = ["baseline", *[n for n in method_names if n != "baseline"]]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; registered: {', '.join(METHODS)}")
    size = predictor.image_size
    boxes = bench_boxes(objects, size, seed)
    cases = {}
    for position, name in enumerate(names):
        method = METHODS[name].for_benchmark(loaded, torch.Generator().manual_seed(seed))
        own = [bench_image(size, seed + index * len(names) + position) for index in range(images)]

        def run(index: int, method=method, own=own) -> None:
            method.predict(predictor, own[index], boxes, generator=image_generator(seed, "bench", index))

        cases[name] = run
    return cases


def _laplace_fit_case(predictor, *, images: int, seed: int):
    """``run(index)``: the Laplace posterior's curvature pass (exact recipe, diag) on fitting image
    ``index`` of its own: encode, decode its jittered box, closed-form GGN; no prior search."""
    import torch

    from .uq.laplace import PromptFeatures, feature_loader, get_recipe, make_laplace, synthetic_images

    spec = get_recipe("exact")
    data = synthetic_images(images, predictor.image_size, seed=seed)
    laplace = make_laplace(predictor.treated_layer, "diag", spec.pixel_likelihood, spec.fit_size)

    def run(index: int) -> None:
        with torch.inference_mode(False):  # the fit runs outside the methods' inference mode
            laplace.fit(feature_loader(PromptFeatures(predictor, data[index:index + 1], seed=seed)), progress_bar=False)

    return run


def _extend(rows: list, cls, **columns: dict) -> list:
    """Rows of ``cls``: each row's fields plus, per named column, its method's value (nan where absent)."""
    nan = float("nan")
    return [cls(**row.__dict__, **{c: values.get(row.method, nan) for c, values in columns.items()}) for row in rows]


def bench_uq(models=DEFAULT_UQ_MODELS, methods=None, *, objects: int = 3, repeats: int = 5, device: str = "cpu",
             seed: int = 0, clock: str = "wall", flops: bool = False) -> list[MethodTiming]:
    """``bench_uq_model`` for each model; ``methods`` None means every uncertainty method (not the
    refinement variants, which the Table 1 notebook times)."""
    from .uq import UQ_METHOD_NAMES

    Timer(clock, device)  # a clock that cannot time this device is refused before any model loads
    names = list(UQ_METHOD_NAMES) if methods is None else list(methods)
    rows: list[MethodTiming] = []
    for model_name in models:
        loaded = load_bench_model(model_name, device)
        rows += bench_uq_model(loaded, names, objects=objects, repeats=repeats, seed=seed, clock=clock, flops=flops)
    return rows


def format_uq_rows(rows: list[MethodTiming]) -> str:
    lines = []
    for model in dict.fromkeys(r.model for r in rows):
        lines.append(f"model: {model}")
        lines += [
            f"  {r.method:<12} {r.seconds_per_image:8.3f} s/image   {r.ratio_to_baseline:5.2f}x baseline"
            + (_format_flops(r) if isinstance(r, MethodCost) else "")
            + (f"   {r.peak_gpu_mib:9.1f} MiB peak" if isinstance(r, (GpuTiming, GpuCost)) else "")
            for r in rows
            if r.model == model
        ]
    return "\n".join(lines)


def _format_flops(row: MethodCost) -> str:
    if math.isnan(row.gflop_per_image):
        return "   FLOPs not counted"
    return f"   {row.gflop_per_image:8.3f} GFLOP/image {row.flop_ratio_to_baseline:5.2f}x baseline"
