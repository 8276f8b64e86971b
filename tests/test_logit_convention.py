"""One logit convention for every method (issue 17): unclamped logits, measures from logits, and two
methods with the same probabilities get the same metrics on every CSV column."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from uncertsam_utils.data.layout import SplitReader, write_split
from uncertsam_utils.evaluation import evaluate, load_results
from uncertsam_utils.metrics import METRIC_COLUMNS
from uncertsam_utils.model import Predictor
from uncertsam_utils.uq import make_method
from uncertsam_utils.uq.base import UQMethod, UQResult
from uncertsam_utils.uq.measures import (
    entropy_from_logits,
    mean_probability_logit,
    mutual_information_from_logits,
    summarise_logit_samples,
)


def test_entropy_from_logits_is_exact_and_has_no_floor():
    z = torch.linspace(-80, 80, 3201)
    exact = _entropy64(z.double())
    np.testing.assert_allclose(entropy_from_logits(z).double().numpy(), exact.numpy(), rtol=2e-6, atol=0)
    assert entropy_from_logits(torch.tensor(0.0)).item() == pytest.approx(math.log(2), abs=1e-7)
    confident = entropy_from_logits(torch.tensor([17.0, 20.0, 30.0, 60.0]))
    assert (confident > 0).all() and (confident.diff() < 0).all()  # distinct, decreasing: no ties at a floor


def _entropy64(z):
    """−p ln p − q ln q with ln p = −softplus(−z), ln q = −softplus(z), q = σ(−z): float64, no cancellation."""
    return torch.nn.functional.softplus(-z) * torch.sigmoid(z) + torch.nn.functional.softplus(z) * torch.sigmoid(-z)


def test_logit_of_the_mean_probability_in_log_space():
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.normal(0, 12, (7, 500))).float()
    z[:, :50] = 30.0 + torch.rand(7, 50)  # every sample saturated: σ rounds to 1 in fp32, the log-space form does not
    mean64 = torch.sigmoid(z.double()).mean(0)
    exact = torch.logsumexp(torch.nn.functional.logsigmoid(z.double()), 0) - torch.logsumexp(
        torch.nn.functional.logsigmoid(-z.double()), 0)
    got = mean_probability_logit(z, 0)
    np.testing.assert_allclose(got.double().numpy(), exact.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(torch.sigmoid(got.double()).numpy(), mean64.numpy(), rtol=1e-5, atol=1e-7)
    assert got[:50].min() > 20  # no ±16.1 clamp
    one = torch.randn(1, 4, 5)
    assert torch.equal(mean_probability_logit(one, 0), one[0])  # z itself for one sample
    mi = mutual_information_from_logits(z, 0)
    assert (mi >= 0).all() and mi[:50].max() < 1e-6
    logits, maps = summarise_logit_samples(one, 0)
    assert torch.equal(logits, one[0]) and "std" not in maps and torch.equal(maps["mutual_information"], torch.zeros(4, 5))


def test_sampled_and_plain_methods_share_the_convention(nano_random):
    predictor = Predictor(nano_random.model)
    rng = np.random.default_rng(3)
    image = (ndimage.gaussian_filter(rng.random((48, 64, 3)), (3, 3, 0)) * 255).astype(np.uint8)
    boxes = np.array([[40.0, 50.0, 160.0, 200.0]], np.float32)
    base = make_method("baseline").predict(predictor, image, boxes)
    tta = make_method("tta", T=1, transform="identity").predict(predictor, image, boxes,
                                                                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(tta.logits, base.logits) and torch.equal(tta.uncertainty, base.uncertainty)
    assert "std" not in tta.maps  # one sample has no spread: reported as 0, like the baseline
    torch.testing.assert_close(base.uncertainty, entropy_from_logits(base.logits))


class Rewrapped(UQMethod):
    """The baseline's logits returned through the sampling path (one sample)."""

    name = "rewrapped"

    def predict(self, predictor, image, boxes, *, encoding=None, generator=None):
        base = make_method("baseline").predict(predictor, image, boxes, encoding=encoding)
        return UQResult.from_samples(self.name, base.logits[None], 0, base.orig_hw, base.info)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(4)
    items = []
    for i in range(2):
        h, w = (40, 56) if i else (52, 44)
        image = (ndimage.gaussian_filter(rng.random((h, w, 3)), (3, 3, 0)) * 255).astype(np.uint8)
        masks = [ndimage.gaussian_filter(rng.random((h, w)), 4) for _ in range(2)]
        items.append((10 + i, image, [m > np.quantile(m, 0.75) for m in masks]))
    write_split(root, "BIG", "test", items)  # BIG: scored at half resolution, the shared target too
    return root


def test_the_same_probabilities_through_another_code_path_score_identically(bench, nano_random, tmp_path):
    methods = {"baseline": make_method("baseline"), "tta1": make_method("tta", T=1, transform="identity"),
               "rewrapped": Rewrapped()}
    evaluate(Predictor(nano_random.model), methods, SplitReader(bench, "BIG", "test"), tmp_path, progress=False)
    frame = load_results(tmp_path)
    columns = list(METRIC_COLUMNS)
    base = frame[frame.method == "baseline"].reset_index(drop=True)[columns]
    for other in ("tta1", "rewrapped"):
        pd.testing.assert_frame_equal(frame[frame.method == other].reset_index(drop=True)[columns], base,
                                      check_exact=True, obj=other)
    # the shared target is the baseline's own error here: the shared columns equal the paper's
    np.testing.assert_array_equal(base["pearson_shared"], base["pearson"])
    np.testing.assert_array_equal(base["spearman_shared_"], base["spearman_"])


def test_a_run_without_the_baseline_still_fills_the_shared_columns(bench, nano_random, tmp_path):
    with_baseline, without = tmp_path / "with", tmp_path / "without"
    predictor = Predictor(nano_random.model)
    prompt = make_method("prompt", K=2)
    evaluate(predictor, {"baseline": make_method("baseline"), "prompt": prompt}, SplitReader(bench, "BIG", "test"),
             with_baseline, progress=False)
    evaluate(predictor, {"prompt": prompt}, SplitReader(bench, "BIG", "test"), without, progress=False)
    a = load_results(with_baseline, methods=["prompt"])
    b = load_results(without)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    assert a["spearman_shared"].notna().all()


def test_identical_samples_give_their_own_logit_and_no_mutual_information():
    z = torch.randn(5, 7) * 20
    same = z[None].expand(10, 5, 7)
    assert torch.equal(mean_probability_logit(same, 0), z)
    assert torch.equal(mutual_information_from_logits(same, 0), torch.zeros(5, 7))
