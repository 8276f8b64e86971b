"""``uncertsam bench uq``: rows, columns, the plug-in path, and one clock with CUDA synchronised around each
timed region (shown with a fake clock and a fake torch.cuda; real timings are not asserted)."""

import pandas as pd
import pytest

from uncertsam_utils import bench
from uncertsam_utils.cli import main


def test_bench_uq_writes_one_row_per_model_and_method(tmp_path, nano_random, monkeypatch):
    monkeypatch.setattr(bench, "load_bench_model", lambda name, device="cpu": nano_random)
    out = tmp_path / "uq.csv"
    assert main(["bench", "uq", "--models", "nano", "--methods", "prompt", "--repeats", "1", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["model", "method", "seconds_per_image", "ratio_to_baseline"]
    assert table["method"].tolist() == ["baseline", "prompt"]  # the baseline is always measured, first
    assert table["model"].str.contains("RANDOM WEIGHTS").all()
    assert (table["seconds_per_image"] > 0).all()
    # each ratio is the method's time over the baseline's of the same run (not 1 by construction)
    seconds = table.set_index("method")["seconds_per_image"]
    ratios = table.set_index("method")["ratio_to_baseline"]
    assert ratios["prompt"] == pytest.approx(seconds["prompt"] / seconds["baseline"], rel=1e-4)  # six significant digits
    assert ratios["prompt"] != 1.0


def test_bench_uq_gives_every_method_its_own_encoder_pass(nano_random, monkeypatch):
    """The predictor caches the last encoding: a method run on the image the previous method just
    encoded would be timed without its encoder pass."""
    from uncertsam_utils.model import Predictor

    calls = []
    original = Predictor.encode_inputs
    monkeypatch.setattr(Predictor, "encode_inputs", lambda self, inputs, hw: calls.append(len(inputs)) or original(self, inputs, hw))
    bench.bench_uq_model(nano_random, ["baseline", "prompt"], repeats=2)
    assert calls == [1] * 6  # (warm-up + 2 repeats) x (baseline, prompt), one encoder pass each


def test_matmul_flops_counts_matrix_products_exactly():
    import torch

    a, b = torch.randn(5, 7), torch.randn(7, 3)
    assert bench.matmul_flops(lambda: a @ b) == 2 * 5 * 7 * 3
    x, y = torch.randn(4, 5, 7), torch.randn(4, 7, 3)
    assert bench.matmul_flops(lambda: (torch.bmm(x, y), torch.exp(x))) == 4 * 2 * 5 * 7 * 3  # exp is not counted


def test_bench_uq_flops_of_prompt_perturbation_are_the_extra_decoded_prompts(tmp_path, nano_random):
    """With flops, prompt perturbation's count exceeds the baseline's by exactly the decoder FLOPs
    of its K - 1 extra prompts per object, counted independently on one encoding."""
    import torch

    from uncertsam_utils.model import Predictor

    rows = bench.bench_uq_model(nano_random, ["baseline", "prompt"], repeats=1, flops=True)
    bench.write_csv(rows, tmp_path / "uq.csv")
    assert list(pd.read_csv(tmp_path / "uq.csv").columns) == [
        "model", "method", "seconds_per_image", "ratio_to_baseline", "gflop_per_image", "flop_ratio_to_baseline"]
    table = pd.DataFrame([row.__dict__ for row in rows]).set_index("method")
    predictor = Predictor(nano_random.model)
    size = predictor.image_size
    boxes = torch.as_tensor(bench.bench_boxes(3, size))
    with torch.inference_mode():
        encoding = predictor.encode(bench.bench_image(size))
        one = bench.matmul_flops(lambda: predictor.decode(encoding, boxes=boxes))
        ten = bench.matmul_flops(lambda: predictor.decode(encoding, boxes=boxes[:, None].expand(-1, 10, -1)))
    extra = (table.loc["prompt", "gflop_per_image"] - table.loc["baseline", "gflop_per_image"]) * 1e9
    assert abs(extra - (ten - one)) <= 1e-6 * ten
    assert table.loc["prompt", "flop_ratio_to_baseline"] == pytest.approx(
        table.loc["prompt", "gflop_per_image"] / table.loc["baseline", "gflop_per_image"], rel=1e-9)


# ------------------------------------------------------------------------- one clock, CUDA regions
class _FakeCuda:
    """Stands in for torch.cuda on a CPU machine: logs each call, reports a fixed peak."""

    def __init__(self, monkeypatch, log):
        import torch

        self.log = log
        monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: log.append("reset"))
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: log.append("peak") or 3 * 2**20)


def _counting_clock(log):
    ticks = iter(range(10**6))
    return lambda: log.append("clock") or float(next(ticks))


def test_timer_synchronises_cuda_around_the_region_and_reads_its_peak(monkeypatch):
    log = []
    _FakeCuda(monkeypatch, log)
    monkeypatch.setitem(bench.CLOCKS, "wall", _counting_clock(log))
    seconds, peak = bench.Timer("wall", "cuda").measure(lambda: log.append("work"))
    assert log == ["sync", "reset", "clock", "work", "sync", "clock", "peak"]
    assert (seconds, peak) == (1.0, 3.0)
    log.clear()
    seconds, peak = bench.Timer("wall", "cpu").measure(lambda: log.append("work"))
    assert log == ["clock", "work", "clock"] and seconds == 1.0 and peak != peak  # nan off CUDA


def test_the_cpu_clock_is_refused_on_cuda_before_any_model_loads(monkeypatch, capsys):
    import pytest

    with pytest.raises(ValueError, match="wall clock"):
        bench.Timer("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown clock"):
        bench.Timer("sundial", "cpu")
    monkeypatch.setattr(bench, "load_bench_model", lambda *a, **k: pytest.fail("a model was loaded"))
    assert main(["bench", "uq", "--models", "nano", "--device", "cuda", "--clock", "cpu"]) == 2
    assert "does not see GPU work" in capsys.readouterr().err


def test_every_ratio_of_a_run_comes_from_one_clock_with_cuda_synchronised_around_each_region(
        tmp_path, nano_random, monkeypatch):
    """With a fake clock that advances by one per reading, every timed region lasts exactly 1, the
    Laplace fit's included (it had a wall clock of its own before); on (fake) CUDA each region is
    synchronised before it starts and before it stops, and each method gets a peak-memory column."""
    from uncertsam_utils.model import Predictor

    log = []
    _FakeCuda(monkeypatch, log)
    monkeypatch.setitem(bench.CLOCKS, "wall", _counting_clock(log))
    real_timer = bench.Timer
    monkeypatch.setattr(bench, "Timer", lambda clock, device: real_timer(clock, "cuda"))
    original = Predictor.encode_inputs
    monkeypatch.setattr(Predictor, "encode_inputs",
                        lambda self, inputs, hw: log.append("encode") or original(self, inputs, hw))
    rows = bench.bench_uq_model(nano_random, ["laplace"], repeats=2)
    assert [r.method for r in rows] == ["baseline", "laplace", "laplace-fit"]
    assert all(r.seconds_per_image == 1.0 and r.ratio_to_baseline == 1.0 for r in rows)
    assert all(isinstance(r, bench.GpuTiming) and r.peak_gpu_mib == 3.0 for r in rows)
    letters = {"sync": "S", "reset": "R", "clock": "C", "peak": "P", "encode": "e"}
    events = "".join(letters[e] for e in log)
    untimed, timed = events[:events.index("S")], events[events.index("S"):]
    assert set(untimed) == {"e"}  # set-up (the benchmark's own posterior) and the 3 cases' warm-up
    assert timed == "SRCeSCP" * 6  # 2 repeats x 3 regions, one encoder pass each, synchronised around it
    bench.write_csv(rows, tmp_path / "uq.csv")
    assert list(pd.read_csv(tmp_path / "uq.csv").columns) == [
        "model", "method", "seconds_per_image", "ratio_to_baseline", "peak_gpu_mib"]
