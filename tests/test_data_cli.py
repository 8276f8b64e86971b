"""``uncertsam data download | import | inspect | mini`` through the real CLI entry point."""

import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from uncertsam_utils.cli import build_parser, main
from uncertsam_utils.data import DATASETS, SPLITS, SplitReader, write_split


def _write_small_split(root, dataset="ISTD", split="test"):
    rng = np.random.default_rng(0)
    items = []
    for image_id in (1, 2):
        mask = np.zeros((30, 40), bool)
        mask[5:20, 5:30] = True
        items.append((image_id, (rng.random((30, 40, 3)) * 255).astype(np.uint8), [mask]))
    write_split(root, dataset, split, items)


def test_parser_has_the_data_actions_and_the_benchmark_names():
    parser = build_parser()
    args = parser.parse_args(["data", "import", "COD10K-v3", "--src", "a", "--out", "b"])
    assert args.name == "COD10K-v3" and args.seed == 0 and callable(args.handler)
    args = parser.parse_args(["data", "download", "--out", "x"])
    assert args.datasets == list(DATASETS) and args.splits == list(SPLITS)
    assert parser.parse_args(["data", "inspect", "root"]).split is None
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "import", "Pascal", "--src", "a", "--out", "b"])


def test_mini_runs_make_mini_with_the_options(monkeypatch, tmp_path, capsys):
    from uncertsam_utils.data import mini

    calls = {}
    monkeypatch.setattr(mini, "make_mini", lambda out, seed, **kw: calls.update(out=out, seed=seed, **kw) or out)
    assert main(["data", "mini", "--out", str(tmp_path), "--seed", "2", "--small", "--workers", "1"]) == 0
    assert calls == {"out": tmp_path, "seed": 2, "small": True, "workers": 1}
    assert capsys.readouterr().out.strip() == str(tmp_path)
    args = build_parser().parse_args(["data", "mini"])
    assert args.out is None and args.seed == 0 and not args.small and args.workers is None


def test_inspect_prints_counts_and_skips(tmp_path, capsys):
    _write_small_split(tmp_path)
    _write_small_split(tmp_path, split="val")
    (tmp_path / "ISTD" / "test" / "images" / "00000002.jpg").unlink()
    assert main(["data", "inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ISTD/val: 2 images with 2 masks, nothing skipped" in out
    assert "ISTD/test: 1 images with 1 masks, 1 skipped" in out and "00000002.jpg" in out
    assert main(["data", "inspect", str(tmp_path), "--dataset", "ISTD", "--split", "val", "--check-images"]) == 0


def test_inspect_reports_broken_splits_as_user_errors(tmp_path, capsys):
    _write_small_split(tmp_path)
    (tmp_path / "ISTD" / "test" / "annotations" / "dataset.json").write_text("{broken")
    assert main(["data", "inspect", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "not valid JSON" in captured.out and "1 problem(s)" in captured.err
    assert main(["data", "inspect", str(tmp_path / "empty")]) == 2
    assert "no dataset folders" in capsys.readouterr().err


def test_import_through_the_cli(tmp_path, capsys):
    src = tmp_path / "COIFT"
    for k in range(4):
        mask = np.zeros((30, 40), np.uint8)
        mask[5:25, 10:30] = 255
        (src / "images").mkdir(parents=True, exist_ok=True)
        (src / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((30, 40, 3), 40 * k, np.uint8)).save(src / "images" / f"{k}.jpg")
        Image.fromarray(mask).save(src / "masks" / f"{k}.png")
    assert main(["data", "import", "COIFT", "--src", str(src), "--out", str(tmp_path / "out")]) == 0
    assert "COIFT ->" in capsys.readouterr().out
    total = sum(len(SplitReader(tmp_path / "out", "COIFT", s)) for s in ("train", "val", "test")
                if (tmp_path / "out" / "COIFT" / s).exists())
    assert total == 4
    assert main(["data", "import", "COIFT", "--src", str(src), "--out", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "import", "ISTD", "--src", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert main(["data", "import", "ISTD", "--src", str(src), "--out", str(tmp_path), "--include-noncam"]) == 2


def test_import_sa1b_and_a_partial_download_through_the_cli(tmp_path, capsys):
    from test_data_import_sa1b import _native
    from test_data_importers_partial import _sbu_test

    src = _native(tmp_path / "SA-1B")
    args = ["data", "import", "SA-1B", "--src", str(src), "--out", str(tmp_path / "out")]
    assert main([*args, "--images", "5", "--val-images", "2", "--seed", "3"]) == 0
    assert "fit -> " in capsys.readouterr().out
    assert [len(SplitReader(tmp_path / "out", "fit", s)) for s in ("train", "val")] == [5, 2]
    assert main([*args, "--images", "50", "--overwrite"]) == 2
    assert "12 SA-1B images found, cannot select 50 train" in capsys.readouterr().err
    _sbu_test(tmp_path / "SBU")
    assert main(["data", "import", "SBU-shadow", "--src", str(tmp_path / "SBU"), "--out", str(tmp_path / "out"),
                 "--images", "3"]) == 2
    assert "--images only applies to SA-1B" in capsys.readouterr().err
    assert main(["data", "import", "SBU-shadow", "--src", str(tmp_path / "SBU"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "SBU-shadow -> " in out and "test: 2 images" in out and "missing: SBU-shadow's native part 'train'" in out


def test_download_offline_is_a_quick_user_error(tmp_path, monkeypatch, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    assert main(["data", "download", "--out", str(tmp_path / "bench"), "--datasets", "ISTD", "--splits", "val"]) == 2
    assert "by hand" in capsys.readouterr().err


def test_help_does_not_import_the_heavy_data_modules():
    code = ("import sys; import uncertsam_utils.cli.data; "
            "heavy = [m for m in ('numpy', 'pycocotools', 'PIL', 'uncertsam_utils.data.layout') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
