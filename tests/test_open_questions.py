"""Notebook 09's experiment plan, maps and statistics (``uncertsam_utils.openq``)."""

import numpy as np
import pandas as pd
import pytest
import torch

from uncertsam_utils.openq.arms import METHODS, QUESTION_METHODS, Arm, plan
from uncertsam_utils.analysis.open_questions import QUESTIONS

DOMAINS = ["BIG", "COIFT", "COD10K-v3"]


def test_plan_trains_each_arm_once_and_lodo_per_domain():
    arms = plan(list(QUESTIONS), [0, 1, 2], DOMAINS)
    assert len(arms) == len(set(arms))
    per_seed = {m: sum(a.method == m and a.seed == 0 for a in arms) for m in METHODS}
    assert per_seed["lodo-laplace"] == len(DOMAINS)
    assert all(n == 1 for m, n in per_seed.items() if m != "lodo-laplace")
    assert {a.seed for a in arms} == {0, 1, 2}
    only_q3 = plan(["spatial_context"], [0], DOMAINS)
    assert {a.method for a in only_q3} == {"dilated-laplace", "dilated-ones", "post-hoc-laplace", "post-hoc-ones"}
    for question in QUESTIONS.values():  # every question: a treatment, its ones-map control and the post-hoc baseline
        assert METHODS[question.control].get("map") == "ones"
        assert question.post_hoc == "post-hoc-laplace"
        assert all(a in METHODS or a == "baseline" for pair in question.comparisons for a in pair)
        named = {question.treatment, question.control, question.post_hoc, *(m for p in question.comparisons for m in p)}
        assert named - {"baseline"} <= set(QUESTION_METHODS[question.slug]), question.slug
    with pytest.raises(ValueError, match="held-out"):
        Arm("lodo-laplace", data="lodo")
    with pytest.raises(ValueError, match="end-to-end"):
        Arm("x", kind="end-to-end", architecture="dilated")
    with pytest.raises(KeyError, match="unknown question"):
        plan(["q9"], [0], DOMAINS)


def test_treatment_and_control_differ_in_the_map_only():
    for question in QUESTIONS.values():
        if question.number == 4:
            continue
        treatment, control = dict(METHODS[question.treatment]), dict(METHODS[question.control])
        assert control.pop("map") == "ones" and treatment.pop("map", "laplace") == "laplace"
        assert treatment == control


def test_fed_maps_and_combinations_match_the_packages(nano_random):
    from uncertsam_utils.model import Predictor
    from uncertsam_utils.openq import maps
    from uncertsam_utils.uq.combined import ProductCombination, RankMeanCombination
    from uncertsam_utils.uq.laplace import cached_features, fit_posterior, synthetic_images
    from uncertsam_utils.uq import make_method
    from uncertsam_utils.refine.passes import box_points, first_pass

    from conftest import smooth_image

    predictor = Predictor(nano_random.model)
    features = cached_features(predictor, synthetic_images(2, 256, seed=0), seed=0)
    posterior = fit_posterior(nano_random, features, recipe="exact", structure="diag", seed=0, progress=False)
    image = smooth_image(np.random.default_rng(3), 200, 300)
    boxes = np.array([[30.0, 40.0, 150.0, 170.0], [100.0, 20.0, 240.0, 120.0]], dtype=np.float32)
    with torch.no_grad():
        encoding = predictor.encode(image)
        points, labels = box_points(torch.from_numpy(boxes))
        first = first_pass("laplace", predictor, encoding, points=points, labels=labels, posterior=posterior)
        prompt = maps.prompt_entropy(predictor, encoding, torch.from_numpy(boxes), torch.Generator().manual_seed(5), 4)
    components = {"laplace": make_method("laplace", posterior=posterior), "prompt": make_method("prompt", K=4)}
    for name, cls in (("combined-product", ProductCombination), ("combined-rank", RankMeanCombination)):
        expected = cls(components).predict(predictor, image, boxes, encoding=encoding,
                                           generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(maps.fed_map(name, first.entropy, prompt), expected.maps["combined"],
                                   rtol=1e-5, atol=1e-6)
    assert torch.equal(maps.fed_map("laplace", first.entropy), first.entropy)
    assert torch.equal(maps.fed_map("ones", first.entropy), torch.ones_like(first.entropy))
    with pytest.raises(ValueError, match="prompt perturbation"):
        maps.fed_map("combined-product", first.entropy)
    a, b = maps.draws(0, 0, 3), maps.draws(0, 1, 3)
    assert not torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert torch.equal(torch.rand(4, generator=maps.draws(None, 0, 3)), torch.rand(4, generator=maps.draws(None, 5, 3)))


# ------------------------------------------------------------------------------ the pool and the arms

@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    """fit/train (6 images), fit/val (2) and two domains with val (2 each) and test (2 each)."""
    from scipy import ndimage

    from uncertsam_utils.data.layout import write_split

    root = tmp_path_factory.mktemp("openq")
    rng = np.random.default_rng(0)

    def items(count, first_id):
        out = []
        for i in range(count):
            image = (ndimage.gaussian_filter(rng.random((48, 64, 3)), (3, 3, 0)) * 255).astype(np.uint8)
            masks = []
            for _ in range(1 + i % 2):
                field = ndimage.gaussian_filter(rng.random((48, 64)), 4)
                masks.append(field > np.quantile(field, 0.8))
            out.append((first_id + i, image, masks))
        return out

    write_split(root, "fit", "train", items(6, 0))
    write_split(root, "fit", "val", items(2, 50))
    for dataset in ("BIG", "COIFT"):
        write_split(root, dataset, "val", items(2, 100))
        write_split(root, dataset, "test", items(2, 200))
    return root


def test_arms_share_the_pool_and_start_from_the_same_untrained_module(tiny_bench, nano_random):
    from uncertsam_utils.openq.pool import ArmRecipe, TrainingPool
    from uncertsam_utils.openq.train import train_arm
    from uncertsam_utils.uq.laplace import cached_features, fit_posterior, synthetic_images
    from uncertsam_utils.model import Predictor

    torch.set_num_threads(1)
    predictor = Predictor(nano_random.model)
    features = cached_features(predictor, synthetic_images(2, 256, seed=0), seed=0)
    posterior = fit_posterior(nano_random, features, recipe="exact", structure="diag", seed=0, progress=False)
    recipe = ArmRecipe(epochs=1, images=5, val_images=2, prompt_K=2)
    pool = TrainingPool.build(tiny_bench, nano_random, ["BIG", "COIFT"], recipe, posterior=posterior, log=lambda _m: None)
    assert pool.exposure.sources == ["fit"] * 5 + ["BIG", "BIG", "COIFT", "COIFT"]
    subsets = {data: pool.subset(Arm("x", data=data, hold_out="BIG" if data == "lodo" else None))
               for data in ("fit", "exposure", "lodo")}
    assert list(subsets["fit"]) == [0, 1, 2, 3, 4] and list(subsets["exposure"]) == [0, 5, 6, 7, 8]
    assert list(subsets["lodo"]) == [0, 1, 2, 7, 8]  # every subset: the same budget of 5 images
    quiet = dict(log=lambda _m: None)
    results = {name: train_arm(pool, Arm(name, seed=0, **METHODS[name]), **quiet)
               for name in ("post-hoc-laplace", "post-hoc-ones", "e2e-laplace", "dilated-laplace", "combined-rank")}
    bank = pool.bank(0)
    assert bank.computed == len(bank) == 5  # the fit images' first passes, computed once for every arm of seed 0
    untrained = {name: r.history[0]["val_miou"] for name, r in results.items()}
    np.testing.assert_allclose(list(untrained.values()), untrained["post-hoc-laplace"], atol=1e-4)
    for name, result in results.items():
        assert [row["epoch"] for row in result.history] == [0, 1], name
        assert (result.selected is None) == (result.best_epoch == 0)
        assert result.last is not None and result.cpu_seconds > 0
    lodo = train_arm(pool, Arm("lodo-laplace", data="lodo", hold_out="COIFT", seed=1), **quiet)
    assert lodo.best_epoch == 0 and np.isnan(lodo.history[-1]["val_miou"])  # not validated


# ------------------------------------------------------------------------------ the reporting

def _results(effects: dict, *, seeds=(0, 1, 2), datasets=("BIG", "COIFT", "ISTD"), images=8, noise=0.02, seed=0):
    """Per-mask scores of the references and of each method of ``effects`` (method → IoU shift), both states,
    every seed scoring the same masks (a base IoU per mask, a seed offset and per-mask noise)."""
    rng = np.random.default_rng(seed)
    keys = [(d, i, m) for d in datasets for i in range(images) for m in range(2)]
    base = rng.uniform(0.3, 0.8, len(keys))
    frame = pd.DataFrame(keys, columns=["dataset", "image_id", "mask_id"])
    rows = [frame.assign(method=name, IoU=base + shift, BIoU_2=base / 2, seed=np.nan, state="reference")
            for name, shift in (("baseline", 0.0), ("mask-prompt", 0.01), ("untrained", 0.01))]
    for method, shift in effects.items():
        for s in seeds:
            for state in ("trained", "selected"):
                iou = base + shift + rng.normal(0, 0.003) + rng.normal(0, noise, len(keys))
                rows.append(frame.assign(method=method, IoU=iou, BIoU_2=iou / 2, seed=s, state=state))
    return pd.concat(rows, ignore_index=True)


Q1_METHODS = ("e2e-laplace", "e2e-ones", "post-hoc-laplace", "post-hoc-ones")


def test_method_table_is_the_mean_over_seeds_of_the_mean_over_domains():
    from uncertsam_utils.analysis.open_questions import method_table

    results = _results(dict(zip(Q1_METHODS, (0.05, 0.0, 0.0, 0.0))))
    training = pd.DataFrame({"method": ["e2e-laplace"] * 3, "hold_out": [None] * 3, "seed": [0, 1, 2],
                             "selected_epoch": [0, 1, 0]})
    table = method_table(results, training, QUESTIONS["end_to_end"], ["BIG", "COIFT", "ISTD"])
    assert list(table["method"][:3]) == ["baseline", "mask-prompt", "untrained"]
    row = table[(table["method"] == "e2e-laplace") & (table["state"] == "trained")].iloc[0]
    part = results[(results["method"] == "e2e-laplace") & (results["state"] == "trained")]
    per_seed = [np.mean([part[(part["seed"] == s) & (part["dataset"] == d)]["IoU"].mean()
                         for d in ("BIG", "COIFT", "ISTD")]) for s in (0, 1, 2)]
    assert row["mIoU"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert row["sd over seeds"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
    assert row["seeds"] == 3
    selected = table[(table["method"] == "e2e-laplace") & (table["state"] == "selected")].iloc[0]
    assert selected["selected epochs"] == "0/1/0"


def test_claims_follow_the_stated_rule_and_the_sentences_give_the_interval():
    from uncertsam_utils.analysis.open_questions import (describe_question, headline, question_claim,
                                                         tests_table)

    question = QUESTIONS["end_to_end"]
    verdicts = {}
    for label, shifts in {"better": (0.05, 0.0, 0.0, 0.0), "worse": (-0.05, 0.0, 0.0, 0.0),
                          "equal": (0.0, 0.0, 0.0, 0.0)}.items():
        results = _results(dict(zip(Q1_METHODS, shifts)), noise=0.01)
        tests = tests_table(results, question, n_boot=300, seed=0)
        assert set(tests["state"]) == {"trained", "selected"}
        mean = tests[(tests["dataset"] == "mean") & (tests["method_a"] == "e2e-laplace")
                     & (tests["method_b"] == "e2e-ones") & (tests["state"] == "trained")].iloc[0]
        a = results[(results["method"] == "e2e-laplace") & (results["state"] == "trained")]
        b = results[(results["method"] == "e2e-ones") & (results["state"] == "trained")]
        direct = (a.groupby("dataset")["IoU"].mean() - b.groupby("dataset")["IoU"].mean()).mean()
        assert mean["difference"] == pytest.approx(direct, abs=1e-9)  # seeds paired, masks shared
        assert mean["lo"] < mean["difference"] < mean["hi"]
        claim = question_claim(question, tests, rests_on="3 training seeds")
        verdicts[label] = claim.verdict
        text = describe_question(question, pd.DataFrame({"state": [], "selected epochs": []}), tests, claim)
        assert f"**{claim.verdict}**" in text
        line = headline(question, tests, claim)
        assert line.startswith(f"Q1 end_to_end: {claim.verdict}; e2e-laplace − e2e-ones {mean['difference']:+.4f}")
        if label == "equal":
            small = abs(mean["lo"]) < 0.005 and abs(mean["hi"]) < 0.005
            assert ("no difference: the interval lies within ±0.005" in text) == small
            assert f"[{mean['lo']:+.4f}, {mean['hi']:+.4f}]" in text
    assert verdicts == {"better": "holds", "worse": "does not hold", "equal": "inconclusive"}
