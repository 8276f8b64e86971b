"""Open questions (notebook 09): the context fusion module and the end-to-end refiner."""

import numpy as np
import pytest
import torch

from uncertsam_utils.refine.end_to_end import EndToEndRefiner, LearnedLastLayerVariance, end_to_end_loss
from uncertsam_utils.refine.fusion import DenseFusion
from uncertsam_utils.refine.passes import box_points, first_pass, second_pass
from uncertsam_utils.refine.spatial import SpatialFusion, make_fusion
from uncertsam_utils.refine.training import FusionTrainConfig

from test_refine import posterior, predictor, scene  # noqa: F401 (the same module-scoped fixtures)
from test_varnet import small_fit_data

pytestmark = pytest.mark.usefixtures("one_thread")


def test_spatial_exact_init_is_mask_prompt_and_sees_its_neighbours(predictor, scene):
    _, boxes, encoding = scene
    dim = predictor.prompt_encoder.embed_dim
    spatial = SpatialFusion(dim, seed=3)
    assert spatial.receptive_field == 15
    points, labels = box_points(boxes)
    with torch.no_grad():
        first = first_pass("sam", predictor, encoding, points=points, labels=labels)
        noise = torch.rand(first.entropy.shape, generator=torch.Generator().manual_seed(0))
        fused = second_pass(predictor, encoding, spatial, first.logits, noise, points=points, labels=labels)
        plain = predictor.decode(encoding, boxes=boxes, mask_logits=first.logits)
    torch.testing.assert_close(fused.logits, plain.logits, rtol=0, atol=1e-5)
    # once the context branch is non-zero, changing the map at one position moves its neighbours' output
    torch.nn.init.normal_(spatial.context[-1].weight, std=0.1)
    embedding = predictor.prompt_encoder.mask_downscaling(first.logits[:, None])
    e = embedding.shape[-1]
    bumped = noise.clone()
    bumped[:, 28:36, 28:36] += 5.0  # embedding position (e/2, e/2) (the map is 4e wide)
    with torch.no_grad():
        delta = (spatial(embedding, bumped) - spatial(embedding, noise)).abs().sum(1)
        delta_1x1 = (DenseFusion(dim, init="paper")(embedding, bumped) - DenseFusion(dim, init="paper")(embedding, noise))
    assert delta[0, e // 2, e // 2 + 5] > 0  # 5 positions away: inside the 15x15 window
    assert delta_1x1.abs().sum(1)[0, e // 2, e // 2 + 5] == 0  # the paper's 1x1 sees only its own position
    assert make_fusion("1x1", dim).__class__ is DenseFusion and isinstance(make_fusion("dilated", dim), SpatialFusion)
    with pytest.raises(ValueError, match="architecture"):
        make_fusion("attention", dim)


def test_learned_variance_starts_at_the_posterior(predictor, scene, posterior):
    _, boxes, encoding = scene
    variance = LearnedLastLayerVariance.from_posterior(posterior)
    with torch.no_grad():
        out = predictor.decode(encoding, boxes=boxes, return_internals=True)
        torch.testing.assert_close(variance.logit_variance(out.h, out.U), posterior.logit_variance(out.h, out.U),
                                   rtol=1e-4, atol=1e-9)


def test_end_to_end_refiner_starts_at_post_hoc_fusion(nano_random, predictor, scene, posterior):
    _, boxes, encoding = scene
    refiner = EndToEndRefiner(nano_random.model, posterior, map_name="entropy", seed=0)
    own = refiner.predictor(predictor)
    points, labels = box_points(boxes)
    with torch.no_grad():
        passes = refiner.passes(own, encoding, points=points, labels=labels)
        first = first_pass("laplace", predictor, encoding, points=points, labels=labels, posterior=posterior)
        post_hoc = second_pass(predictor, encoding, DenseFusion(predictor.prompt_encoder.embed_dim), first.logits,
                               first.entropy, points=points, labels=labels)
    torch.testing.assert_close(passes.predictive_logits, first.logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(passes.uncertainty, first.entropy, rtol=0, atol=1e-5)
    torch.testing.assert_close(passes.logits, post_hoc.logits, rtol=0, atol=1e-4)
    assert predictor.decoder is nano_random.model.sam_mask_decoder  # the shared predictor is untouched


def test_one_end_to_end_step_reduces_the_loss_and_trains_all_three(nano_random, predictor, posterior):
    data = small_fit_data("train", 1)
    refiner = EndToEndRefiner(nano_random.model, posterior, map_name="entropy", seed=0)
    # a non-zero map pathway, so that the variances get gradients through the map at the first step
    torch.nn.init.normal_(refiner.fusion.fusion.weight[:, refiner.fusion.embed_dim:], std=0.01)
    own = refiner.predictor(predictor)
    ids = np.arange(data.first[0], data.first[1])
    targets = torch.from_numpy(data.masks(ids)).float()
    points, labels = box_points(torch.from_numpy(data.boxes[ids]))
    batch = torch.from_numpy(data.images[[0]]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        encoding = predictor.encode_inputs(batch, [(data.size, data.size)])
    config = FusionTrainConfig(uncertainty="laplace")
    optimizer = torch.optim.SGD(refiner.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in nano_random.model.sam_mask_decoder.parameters()]
    from uncertsam_utils.refine.training import frozen

    with frozen(nano_random.model):  # the prompt encoder (shared with the model) stays frozen, as in training
        loss, parts = end_to_end_loss(refiner.passes(own, encoding, points=points, labels=labels), targets, config)
        loss.backward()
        for name, module in (("decoder", refiner.decoder), ("variance", refiner.variance), ("fusion", refiner.fusion)):
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()), name
        assert all(p.grad is None for p in nano_random.model.parameters())
        optimizer.step()
        optimizer.zero_grad()
        after, _ = end_to_end_loss(refiner.passes(own, encoding, points=points, labels=labels), targets, config)
    assert after.item() < loss.item()
    assert set(parts) >= {"loss", "refined", "first", "nll"}
    for p, q in zip(before, nano_random.model.sam_mask_decoder.parameters()):
        assert torch.equal(p, q)  # the shared model's decoder is a different object and unchanged


# ------------------------------------------------------------------------------- cross-domain exposure

@pytest.fixture(scope="module")
def small_bench(tmp_path_factory):
    """fit/train (6 images) and two test domains with val (2 images each) and test (2 images each) splits."""
    from scipy import ndimage

    from uncertsam_utils.data.layout import write_split

    root = tmp_path_factory.mktemp("exposure")
    rng = np.random.default_rng(0)

    def items(count, first_id):
        out = []
        for i in range(count):
            image = (ndimage.gaussian_filter(rng.random((48, 64, 3)), (3, 3, 0)) * 255).astype(np.uint8)
            field = ndimage.gaussian_filter(rng.random((48, 64)), 4)
            out.append((first_id + i, image, [field > np.quantile(field, 0.8)]))
        return out

    write_split(root, "fit", "train", items(6, 0))
    for dataset in ("BIG", "COIFT"):
        for split in ("val", "test"):
            write_split(root, dataset, split, items(2, 100 if split == "val" else 200))
    return root


def test_exposure_data_keeps_the_budget_and_never_reads_a_test_split(small_bench, monkeypatch):
    from uncertsam_utils.data import layout
    from uncertsam_utils.training.exposure import domain_samples, exposure_data, exposure_pool

    reads = []
    original = layout.SplitReader.__init__

    def recording(self, root, dataset, split, *args, **kwargs):
        reads.append((dataset, split))
        original(self, root, dataset, split, *args, **kwargs)

    monkeypatch.setattr(layout.SplitReader, "__init__", recording)
    both = exposure_data(small_bench, ["BIG", "COIFT"], images=6, size=64)
    assert both.sources == ["fit", "fit", "BIG", "BIG", "COIFT", "COIFT"] and both.data.num_images == 6
    assert both.counts() == {"fit": 2, "BIG": 2, "COIFT": 2} and both.exposed == ["BIG", "COIFT"]
    lodo = exposure_data(small_bench, ["BIG", "COIFT"], images=6, hold_out="BIG", size=64)
    assert lodo.counts() == {"fit": 4, "COIFT": 2} and lodo.exposed == ["COIFT"]
    fit_only = exposure_data(small_bench, [], images=6, size=64)
    assert fit_only.counts() == {"fit": 6}
    pool = exposure_pool(small_bench, ["BIG", "COIFT"], fit_images=5, per_domain=1, size=64)
    assert pool.sources == ["fit"] * 5 + ["BIG", "COIFT"]
    np.testing.assert_array_equal(pool.data.images[5], both.data.images[2])  # BIG's first val image
    assert reads and all(split != "test" for _, split in reads), reads
    assert {d for d, s in reads if s == "val"} == {"BIG", "COIFT"}
    with pytest.raises(ValueError, match="test split is for evaluation"):
        domain_samples(small_bench, ["BIG"], split="test")
    with pytest.raises(ValueError, match="do not fit a budget"):
        exposure_data(small_bench, ["BIG", "COIFT"], images=3, size=64)
    with pytest.raises(ValueError, match="held-out"):
        exposure_data(small_bench, ["BIG"], images=6, hold_out="COIFT", size=64)


# ------------------------------------------------------------------------------- the evaluation bank

@pytest.fixture(scope="module")
def eval_bench(tmp_path_factory):
    """Two test domains (BIG: half resolution) of 3 images of 1-3 blob masks, in the published layout."""
    from scipy import ndimage

    from uncertsam_utils.data.layout import write_split

    root = tmp_path_factory.mktemp("bank")
    rng = np.random.default_rng(0)
    for d, dataset in enumerate(("BIG", "COIFT")):
        items = []
        for i in range(3):
            h, w = (40, 56) if i % 2 else (52, 44)
            image = (ndimage.gaussian_filter(rng.random((h, w, 3)), (3, 3, 0)) * 255).astype(np.uint8)
            masks = []
            for _ in range(1 + (i + d) % 3):
                field = ndimage.gaussian_filter(rng.random((h, w)), 4)
                masks.append(field > np.quantile(field, 0.8))
            items.append((10 + i, image, masks))
        write_split(root, dataset, "test", items)
    return root


def test_bank_scores_equal_the_drivers_columns(eval_bench, predictor, tmp_path):
    import pandas as pd

    from uncertsam_utils.evaluation import build_methods, evaluate_datasets, load_results
    from uncertsam_utils.evaluation.bank import EvaluationBank
    from uncertsam_utils.metrics.accuracy import error_pearson
    from uncertsam_utils.uq.measures import entropy_from_logits

    datasets = ["BIG", "COIFT"]
    methods = build_methods(["baseline", "mask-prompt"], None)
    evaluate_datasets(predictor, methods, eval_bench, datasets, tmp_path, seed=42, progress=False)
    driver = load_results(tmp_path, datasets=datasets, methods=list(methods))
    bank = EvaluationBank.build(predictor, eval_bench, datasets, kinds=("sam",), seed=42, progress=False)

    def refined(image):
        points, labels = image.prompt
        first = image.passes["sam"]
        return second_pass(predictor, image.encoding, None, first.logits, None, points=points, labels=labels).logits

    ours = pd.concat([bank.score("baseline", lambda image: image.passes["sam"].logits, seed=0),
                      bank.score("mask-prompt", refined, seed=0)])
    assert (ours["seed"] == 0).all()
    keys = ["dataset", "method", "image_id", "mask_id"]
    both = driver.merge(ours, on=keys, suffixes=("_driver", "_bank"))
    assert len(both) == len(driver) == len(ours) > 0
    for column in ("IoU", "BIoU_2"):
        np.testing.assert_allclose(both[f"{column}_bank"], both[f"{column}_driver"], rtol=1e-5, atol=1e-6)
    assert set(bank.score("x", refined, datasets=["COIFT"])["dataset"]) == {"COIFT"}
    pearson = []
    for image in bank.images:
        logits = image.passes["sam"].logits
        pearson += list(error_pearson(image.targets, logits, {"e": entropy_from_logits(logits)},
                                      image.orig_hw)["e"])
    baseline = both[both["method"] == "baseline"].sort_values(["dataset", "image_id", "mask_id"])
    order = [(im.dataset, im.image_id, m) for im in bank.images for m in im.mask_ids]
    assert order == sorted(order)
    np.testing.assert_allclose(pearson, baseline["pearson"], rtol=1e-4, atol=1e-5)
