"""The evaluation driver (resume, determinism, sharing), the combined methods and the CLI (analysis: test_analysis.py)."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from uncertsam_utils.data.layout import SplitReader, write_split
from uncertsam_utils.evaluation import (
    CSV_COLUMNS,
    EvaluationMismatch,
    build_methods,
    csv_path,
    evaluate,
    evaluate_datasets,
    format_value,
    load_results,
)
from uncertsam_utils.metrics import METRIC_COLUMNS
from uncertsam_utils.model import Predictor
from uncertsam_utils.uq import METHODS, make_method
from uncertsam_utils.uq.base import UQMethod, image_generator
from uncertsam_utils.uq.combined import ProductCombination, RankMeanCombination, combine_maps, rank_normalise

DATASETS = ("BIG", "COIFT")  # BIG: scored at half resolution
IMAGES = 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A tiny benchmark in the published layout: 2 datasets x 3 images of 1-3 blob masks."""
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    for d, dataset in enumerate(DATASETS):
        items = []
        for i in range(IMAGES):
            h, w = (40, 56) if i % 2 else (52, 44)
            image = (ndimage.gaussian_filter(rng.random((h, w, 3)), (3, 3, 0)) * 255).astype(np.uint8)
            masks = []
            for _ in range(1 + (i + d) % 3):
                field = ndimage.gaussian_filter(rng.random((h, w)), 4)
                masks.append(field > np.quantile(field, 0.8))
            items.append((10 + i, image, masks))
        write_split(root, dataset, "test", items)
    return root


@pytest.fixture(scope="module")
def predictor(nano_random):
    return Predictor(nano_random.model)


def make_methods():
    prompt, tta, baseline = make_method("prompt", K=3), make_method("tta", T=2), make_method("baseline")
    return {
        "baseline": baseline,
        "prompt": prompt,
        "tta": tta,
        "combined-rank": RankMeanCombination({"prompt": prompt, "tta": tta}),
        "combined-product": ProductCombination({"baseline": baseline, "prompt": prompt}),
    }


class Counting(UQMethod):
    """Wraps a method and counts its predictions (to see what a rerun recomputes)."""

    name = "counting"

    def __init__(self, inner):
        self._inner = inner
        self.calls = 0

    @property
    def changes_image(self):
        return self._inner.changes_image

    def hyperparameters(self):
        return {"inner": repr(self._inner)}

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None):
        self.calls += 1
        return self._inner.predict(predictor, image, boxes, encoding=encoding, generator=generator)


def files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def full_run(bench, predictor, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    torch.set_num_threads(1)
    evaluate_datasets(predictor, make_methods(), bench, DATASETS, out, seed=42, progress=False)
    return out


def test_one_sorted_csv_per_dataset_and_method_with_every_column(full_run, bench):
    masks = {d: sum(len(SplitReader(bench, d, "test").load(i).mask_ids) for i in (10, 11, 12)) for d in DATASETS}
    for dataset in DATASETS:
        for method in make_methods():
            path = csv_path(full_run, dataset, method)
            frame = pd.read_csv(path, keep_default_na=False, na_values=["nan"])
            assert tuple(frame.columns) == CSV_COLUMNS
            assert CSV_COLUMNS[4:32] == ("IoU", "dice", "MAE", "BER", "acc", "prec", "rec", "F1", "IoU_", "dice_",
                                         "MAE_", "BER_", "acc_", "prec_", "rec_", "F1_", "BIoU_2", "BIoU_1",
                                         "pearson", "ECE", "sharp", "brier", "avg_sample_std", "pearson_", "ECE_",
                                         "sharp_", "brier_", "avg_sample_std_")
            assert len(frame) == masks[dataset]
            assert (frame["dataset"] == dataset).all() and (frame["method"] == method).all()
            keys = list(zip(frame["image_id"], frame["mask_id"]))
            assert keys == sorted(keys) and len(set(keys)) == len(keys)
            assert frame["acc"].between(0, 1).all() and frame["pearson"].between(-1, 1).all()
    assert not list(full_run.rglob(".parts")), "parts are removed once a dataset is assembled"
    manifest = json.loads((full_run / "evaluation.json").read_text())
    assert manifest["settings"]["seed"] == 42 and set(manifest["methods"]) == set(make_methods())
    no_std = pd.read_csv(csv_path(full_run, "COIFT", "baseline"))
    assert (no_std["avg_sample_std"] == 0).all()  # the baseline has no sample spread (reported as 0)
    assert (pd.read_csv(csv_path(full_run, "COIFT", "prompt"))["avg_sample_std"] > 0).all()


@pytest.mark.parametrize("workers", [0, 1])
def test_interrupted_run_resumes_to_byte_identical_csvs(full_run, bench, predictor, tmp_path, workers):
    out = tmp_path / "resumed"
    seen = []

    def stop_after_four(dataset, image_id):
        seen.append((dataset, image_id))
        if len(seen) == 4:  # the whole first dataset and one image of the second
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate_datasets(predictor, make_methods(), bench, DATASETS, out, seed=42, progress=False,
                          after_image=stop_after_four, metric_workers=workers)
    assert csv_path(out, "BIG", "baseline").is_file() and not csv_path(out, "COIFT", "baseline").exists()
    # the reported image is on disk; with a metrics worker, so is the next one (already in flight)
    assert len(list((out / "COIFT" / ".parts" / "prompt").glob("*.csv"))) == 1 + workers
    evaluate_datasets(predictor, make_methods(), bench, DATASETS, out, seed=42, progress=False,
                      metric_workers=1 - workers)
    assert files(out) == files(full_run)


def test_a_rerun_computes_nothing_and_changes_no_byte(bench, predictor, tmp_path):
    counting = Counting(make_method("baseline"))
    evaluate_datasets(predictor, {"baseline": counting}, bench, DATASETS, tmp_path, seed=42, progress=False)
    assert counting.calls == len(DATASETS) * IMAGES
    before = files(tmp_path)
    evaluate_datasets(predictor, {"baseline": counting}, bench, DATASETS, tmp_path, seed=42, progress=False)
    assert counting.calls == len(DATASETS) * IMAGES
    assert files(tmp_path) == before


def test_stale_temporary_files_of_a_killed_run_are_ignored(full_run, bench, predictor, tmp_path):
    out = tmp_path / "killed"
    part = out / "COIFT" / ".parts" / "baseline"
    part.mkdir(parents=True)
    (part / ".00000010.csv.tmp-999").write_text("half a row")  # killed mid-write
    evaluate_datasets(predictor, {"baseline": make_method("baseline")}, bench, ["COIFT"], out, seed=42,
                      progress=False)
    assert csv_path(out, "COIFT", "baseline").read_bytes() == csv_path(full_run, "COIFT", "baseline").read_bytes()
    assert not list(out.rglob("*.tmp-*"))


def test_a_different_configuration_is_refused(full_run, bench, predictor):
    with pytest.raises(EvaluationMismatch, match="other settings"):
        evaluate_datasets(predictor, {"baseline": make_method("baseline")}, bench, DATASETS, full_run, seed=1,
                          progress=False)
    with pytest.raises(EvaluationMismatch, match="other hyperparameters"):
        evaluate_datasets(predictor, {"prompt": make_method("prompt", K=4)}, bench, DATASETS, full_run, seed=42,
                          progress=False)


def test_encoder_runs_once_per_image_for_methods_that_keep_the_image(bench, predictor, tmp_path, monkeypatch):
    calls = []
    original = Predictor.encode

    def counting_encode(self, images, **kwargs):
        calls.append(1)
        return original(self, images, **kwargs)

    monkeypatch.setattr(Predictor, "encode", counting_encode)
    methods = {k: v for k, v in make_methods().items() if k in ("baseline", "prompt", "combined-product")}
    evaluate(predictor, methods, SplitReader(bench, "COIFT", "test"), tmp_path, seed=42, progress=False)
    assert len(calls) == IMAGES


def test_a_combination_equals_its_standalone_computation(full_run, bench, predictor, tmp_path):
    """Run alone, the combination computes its components itself (with copies of the image's
    generator): the same bytes as when the driver hands it the standalone results."""
    alone = {"combined-rank": RankMeanCombination({"prompt": make_method("prompt", K=3), "tta": make_method("tta", T=2)})}
    evaluate_datasets(predictor, alone, bench, ["COIFT"], tmp_path, seed=42, progress=False)
    assert (csv_path(tmp_path, "COIFT", "combined-rank").read_bytes()
            == csv_path(full_run, "COIFT", "combined-rank").read_bytes())


def test_max_images_takes_the_first_ids(bench, predictor, tmp_path):
    evaluate(predictor, {"baseline": make_method("baseline")}, SplitReader(bench, "COIFT", "test"), tmp_path,
             max_images=2, progress=False)
    frame = pd.read_csv(csv_path(tmp_path, "COIFT", "baseline"))
    assert sorted(frame["image_id"].unique()) == [10, 11]


def test_cli_eval(bench, tmp_path):
    from uncertsam_utils.cli import eval as eval_cli

    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args(["eval", "--data", str(bench), "--datasets", "COIFT", "--method", "baseline", "prompt",
                              "--K", "2", "--checkpoint", "random", "--max-images", "1", "--threads", "1",
                              "--quiet", "--out", str(tmp_path)])
    assert args.handler(args) == 0
    assert csv_path(tmp_path, "COIFT", "prompt").is_file()
    manifest = json.loads((tmp_path / "evaluation.json").read_text())
    assert manifest["settings"]["run"]["model"]["name"] == "nano_sam2_256"
    assert "K=2" in manifest["methods"]["prompt"]["repr"]


def test_build_methods_shares_component_instances(nano_random):
    methods = build_methods(["prompt", "combined-product"], nano_random, K=4, components=["baseline", "prompt"])
    assert methods["combined-product"].components["prompt"] is methods["prompt"]
    assert methods["prompt"].K == 4
    with pytest.raises(ValueError, match="variance head"):
        build_methods(["varnet"], nano_random)
    with pytest.raises(KeyError, match="unknown method"):
        build_methods(["nope"], nano_random)


def test_format_value_is_fixed():
    assert format_value(0.123456789) == "0.123457"
    assert format_value(-0.0) == "0" and format_value(float("nan")) == "nan"
    assert format_value(1.5e-9) == "1.5e-09" and format_value(7) == "7"


# ----------------------------------------------------------------------------------- combinations

def test_rank_normalisation_and_combinations():
    maps = torch.tensor([[[0.1, 0.5], [0.5, 0.9]], [[2.0, 2.0], [2.0, 2.0]]])
    ranks = rank_normalise(maps)
    torch.testing.assert_close(ranks[0], torch.tensor([[0.0, 0.5], [0.5, 1.0]]))  # ties share their rank
    torch.testing.assert_close(ranks[1], torch.full((2, 2), 0.5))  # a constant map
    other = torch.tensor([[[4.0, 3.0], [2.0, 1.0]], [[0.0, 1.0], [2.0, 3.0]]])
    torch.testing.assert_close(combine_maps([maps, other], "product"), maps * other)
    mean = combine_maps([maps, other], "rank_mean")
    torch.testing.assert_close(mean[0], (ranks[0] + torch.tensor([[1.0, 2 / 3], [1 / 3, 0.0]])) / 2)
    with pytest.raises(ValueError):
        combine_maps([maps], "median")
    with pytest.raises(ValueError, match="at least two"):
        RankMeanCombination({"prompt": make_method("prompt")})
    assert {"combined-rank", "combined-product"} <= set(METHODS)


def test_combination_components_see_the_standalone_generator_stream(predictor):
    rng = np.random.default_rng(3)
    image = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    boxes = np.array([[20.0, 30.0, 150.0, 170.0]], np.float32)
    prompt, tta = make_method("prompt", K=3), make_method("tta", T=2)
    combined = ProductCombination({"prompt": prompt, "tta": tta}, prediction="mean")
    result = combined.predict(predictor, image, boxes, generator=image_generator(42, "X", 1))
    alone_p = prompt.predict(predictor, image, boxes, generator=image_generator(42, "X", 1))
    alone_t = tta.predict(predictor, image, boxes, generator=image_generator(42, "X", 1))
    torch.testing.assert_close(result.maps["prompt:entropy"], alone_p.maps["entropy"])
    torch.testing.assert_close(result.uncertainty, alone_p.maps["entropy"] * alone_t.maps["entropy"])
    torch.testing.assert_close(result.prob, (alone_p.prob + alone_t.prob) / 2)
    assert combined.changes_image and combined.uses_random


def test_load_results_reads_every_csv(full_run):
    frame = load_results(full_run)
    assert set(frame["dataset"]) == set(DATASETS) and set(frame["method"]) == set(make_methods())
    assert list(frame.columns) == list(CSV_COLUMNS)
    assert frame[list(METRIC_COLUMNS)].dtypes.map(lambda t: t.kind == "f").all()


# ----------------------------------------------------------------------------------- fitted parts

def test_fitted_parts_are_looked_up_and_reported_missing(bench, nano_random, tmp_path, monkeypatch):
    from uncertsam_utils.evaluation import find_fitted_parts

    monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path / "cache"))
    parts = find_fitted_parts(bench, nano_random, ["laplace", "varnet", "prompt"])
    assert parts == {"posterior": dict.fromkeys(("laplace", "laplace-untempered", "laplace-paper", "baseline-ts")),
                     "head": None}
    with pytest.raises(ValueError, match="fitted Laplace posterior"):
        build_methods(["combined-product"], nano_random, **parts)  # its default components need Laplace
    given = find_fitted_parts(bench, nano_random, ["laplace"], posterior="p.pt", head="h.pt")
    assert given["posterior"]["laplace"] == "p.pt" and given["head"] == "h.pt"


def test_laplace_and_its_combination_in_the_driver(bench, nano_random, tmp_path):
    from uncertsam_utils.uq.laplace.fitting import benchmark_posterior

    path = benchmark_posterior(nano_random, "exact", torch.Generator().manual_seed(0), images=2).save(tmp_path / "p.pt")
    methods = build_methods(["laplace", "prompt", "combined-product"], nano_random, K=2, posterior=path)
    assert methods["combined-product"].components["laplace"] is methods["laplace"]
    evaluate(Predictor(nano_random.model), methods, SplitReader(bench, "COIFT", "test"), tmp_path / "out",
             max_images=1, progress=False)
    frame = load_results(tmp_path / "out")
    laplace = frame[frame.method == "laplace"].reset_index(drop=True)
    combined = frame[frame.method == "combined-product"].reset_index(drop=True)
    pd.testing.assert_series_equal(laplace["IoU"], combined["IoU"])  # the first component's prediction
    assert (laplace["avg_sample_std"] > 0).all()
