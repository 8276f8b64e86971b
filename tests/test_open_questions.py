"""Notebook 09's experiment plan, maps and statistics (``uncertsam_utils.openq``)."""

import numpy as np
import pandas as pd
import pytest
import torch

from uncertsam_utils.openq.arms import METHODS, QUESTIONS, Arm, plan

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
