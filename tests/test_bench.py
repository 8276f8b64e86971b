"""``uncertsam bench uq``: rows, columns and the plug-in path (timings themselves are not asserted)."""

import pandas as pd

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
    assert table.loc[0, "ratio_to_baseline"] == 1.0 and (table["seconds_per_image"] > 0).all()


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
    assert table.loc["baseline", "flop_ratio_to_baseline"] == 1.0
