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
