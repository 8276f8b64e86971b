"""``uncertsam bench core | uq``: speed as ratios to a plain SAM-2 prediction (``uncertsam_utils.bench``)."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_group, set_threads, user_errors


def _report(rows: list, text: str, out: str | None) -> int:
    """Print the table and, with --out, write it as CSV."""
    from ..bench import write_csv

    print(text)
    if out:
        write_csv(rows, Path(out))
        print(f"wrote {out}")
    return 0


def _run_uq(args) -> int:
    from ..bench import bench_uq, format_uq_rows

    set_threads(args.threads)
    methods = None if not args.methods else [m.strip() for m in args.methods.split(",") if m.strip()]
    with user_errors(ValueError, KeyError):  # an unknown method or model, the cpu clock on CUDA
        rows = bench_uq(args.models.split(","), methods, objects=args.objects, repeats=args.repeats,
                        device=args.device, seed=args.seed, clock=args.clock, flops=args.flops)
    return _report(rows, format_uq_rows(rows), args.out)


def _run_core(args) -> int:
    from ..bench import bench_core, format_rows

    set_threads(args.threads)
    rows = bench_core(args.model, args.checkpoint, boxes=args.boxes, repeats=args.repeats, device=args.device)
    return _report(rows, format_rows(rows), args.out)


def _add_core(kinds) -> None:
    core = add_command(kinds, "core", _run_core, "encode once + batched decode vs. a plain prediction")
    core.add_argument("--model", default="sam2.1_hiera_tiny", help="registry name (default: official hiera tiny)")
    core.add_argument("--checkpoint", default="random", help="'random' (default), or a checkpoint path; omit weights with 'random'")
    core.add_argument("--boxes", type=int, default=10)
    core.add_argument("--repeats", type=int, default=3)
    core.add_argument("--device", default="cpu")
    core.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    core.add_argument("--out", help="also write the figures as CSV (model, case, seconds, ratio_to_plain)")


def _add_uq(kinds) -> None:
    from ..bench import CLOCKS, DEFAULT_UQ_MODELS

    uq = add_command(kinds, "uq", _run_uq, "each uncertainty method's time per image, as a ratio to the baseline")
    uq.add_argument("--models", default=",".join(DEFAULT_UQ_MODELS),
                    help="comma-separated registry names (default: %(default)s); official models use random weights, "
                    "nano its shipped weights when present")
    uq.add_argument("--methods", default="", help="comma-separated method names (default: every uncertainty method); "
                    "the baseline is always measured")
    uq.add_argument("--objects", type=int, default=3, help="box prompts per image (default 3)")
    uq.add_argument("--repeats", type=int, default=5, help="timed images per method after one warm-up (default 5)")
    uq.add_argument("--seed", type=int, default=0)
    uq.add_argument("--device", default="cpu")
    uq.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    uq.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                    help="one clock for every ratio: wall time (default; on CUDA synchronised around each timed "
                    "region) or the process's CPU time (CPU only; steadier on a shared machine with --threads 1)")
    uq.add_argument("--flops", action="store_true",
                    help="also count each method's matrix-product FLOPs per image (one more image each; adds the "
                    "columns gflop_per_image, flop_ratio_to_baseline)")
    uq.add_argument("--out", help="also write CSV (model, method, seconds_per_image, ratio_to_baseline; on CUDA also "
                    "peak_gpu_mib, each method's peak torch.cuda.max_memory_allocated)")


def register(subparsers) -> None:
    kinds = add_group(subparsers, "bench", "speed benchmarks (ratios to a plain SAM-2 prediction)", "bench_kind", "KIND")
    _add_core(kinds)
    _add_uq(kinds)
