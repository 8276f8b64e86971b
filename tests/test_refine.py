"""Refinement by dense embedding fusion (paper §5): module, passes, variants, training."""

import numpy as np
import pytest
import torch

from uncertsam_utils.model import Predictor
from uncertsam_utils.prompts import sample_clicks
from uncertsam_utils.refine.fusion import DenseFusion, FusionModelMismatchError, is_untrained, load_fusion, save_fusion
from uncertsam_utils.refine.methods import FusionLaplace, FusionOnes, GroundTruthMaskPrompt, MaskPromptRefinement
from uncertsam_utils.refine.passes import box_points, first_pass, second_pass
from uncertsam_utils.refine.training import (FusionTrainConfig, image_prompts, prompted_step, refinement_loss,
                                             resume_path, sigmoid_focal, train_fusion)
from uncertsam_utils.training import encode_split
from uncertsam_utils.artifacts import model_identity

from conftest import smooth_image
from test_varnet import small_fit_data


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def predictor(nano_random):
    return Predictor(nano_random.model)


@pytest.fixture(scope="module")
def scene(predictor):
    image = smooth_image(np.random.default_rng(3), 200, 300)
    boxes = torch.tensor([[30.0, 40.0, 150.0, 170.0], [100.0, 20.0, 240.0, 120.0]])
    with torch.no_grad():
        encoding = predictor.encode(image)
    return image, boxes, encoding


@pytest.fixture(scope="module")
def posterior(nano_random, predictor):
    from uncertsam_utils.uq.laplace import cached_features, fit_posterior, synthetic_images

    features = cached_features(predictor, synthetic_images(2, 256, seed=0), seed=0)
    return fit_posterior(nano_random, features, recipe="exact", structure="diag", seed=0, progress=False)


def test_module_has_the_papers_size_on_official_sam2():
    fusion = DenseFusion(256)
    stem = sum(p.numel() for p in fusion.uncertainty_downscaling.parameters())
    fuse = sum(p.numel() for p in fusion.fusion.parameters())
    assert (stem, fuse) == (4_684, 131_328)


def test_exact_init_reproduces_mask_prompt_refinement(predictor, scene):
    image, boxes, encoding = scene
    fusion = DenseFusion(predictor.prompt_encoder.embed_dim, init="exact", seed=5)
    points, labels = box_points(boxes)
    with torch.no_grad():
        first = first_pass("sam", predictor, encoding, points=points, labels=labels)
        noise = torch.rand(first.entropy.shape, generator=torch.Generator().manual_seed(0))
        fused = second_pass(predictor, encoding, fusion, first.logits, noise, points=points, labels=labels)
        plain = predictor.decode(encoding, boxes=boxes, mask_logits=first.logits)
        paper = second_pass(predictor, encoding, DenseFusion(predictor.prompt_encoder.embed_dim, init="paper"),
                            first.logits, noise, points=points, labels=labels)
    torch.testing.assert_close(fused.logits, plain.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(fused.iou, plain.iou, rtol=0, atol=1e-6)
    assert not torch.allclose(paper.logits, plain.logits, atol=1e-2)  # the paper's random init perturbs SAM
    refined = MaskPromptRefinement().predict(predictor, image, boxes.numpy(), encoding=encoding)
    torch.testing.assert_close(refined.logits, plain.logits.float(), rtol=0, atol=1e-5)
    assert not torch.allclose(refined.logits, first.logits, atol=1e-2)  # the second pass does change the mask


def test_laplace_and_ones_variants_differ_only_in_the_map(predictor, scene, posterior):
    image, boxes, encoding = scene
    fusion = DenseFusion(predictor.prompt_encoder.embed_dim, init="paper", seed=1)
    points, labels = box_points(boxes)
    with torch.no_grad():
        first = first_pass("laplace", predictor, encoding, points=points, labels=labels, posterior=posterior)
        with_map = second_pass(predictor, encoding, fusion, first.logits, first.entropy, points=points, labels=labels)
        with_ones = second_pass(predictor, encoding, fusion, first.logits, torch.ones_like(first.entropy),
                                points=points, labels=labels)
    la = FusionLaplace(fusion=fusion, posterior=posterior).predict(predictor, image, boxes.numpy(), encoding=encoding)
    ones = FusionOnes(fusion=fusion, posterior=posterior).predict(predictor, image, boxes.numpy(), encoding=encoding)
    torch.testing.assert_close(la.logits, with_map.logits, rtol=0, atol=0)
    torch.testing.assert_close(ones.logits, with_ones.logits, rtol=0, atol=0)
    assert not torch.allclose(la.logits, ones.logits, atol=1e-3)
    # the Laplace first pass is the Laplace method's own prediction
    from uncertsam_utils.uq import make_method

    laplace = make_method("laplace", posterior=posterior).predict(predictor, image, boxes.numpy(), encoding=encoding)
    torch.testing.assert_close(first.logits, laplace.logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(first.entropy, laplace.maps["entropy"], rtol=0, atol=1e-6)


def test_variants_need_their_parts(posterior):
    with pytest.raises(ValueError, match="posterior"):
        FusionOnes(fusion=DenseFusion(32))
    with pytest.raises(ValueError, match="fusion module"):
        FusionLaplace(posterior=posterior).predict(None, None, None)
    with pytest.raises(ValueError, match="ground-truth"):
        GroundTruthMaskPrompt().predict(None, None, None)


def test_ground_truth_prompt_gets_the_masks_from_the_evaluation(tmp_path, nano_random, predictor):
    from uncertsam_utils.data.layout import write_split
    from uncertsam_utils.evaluation import build_methods, evaluate_datasets, load_results

    rng = np.random.default_rng(0)
    items = []
    for index in range(2):
        masks = [np.zeros((60, 80), bool) for _ in range(2)]
        masks[0][10:40, 5:35] = True
        masks[1][20:55, 40:75] = True
        items.append((index, smooth_image(rng, 60, 80), masks))
    root = tmp_path / "bench"
    write_split(root, "COIFT", "test", items)
    methods = build_methods(["baseline", "gt-mask-prompt", "mask-prompt"], nano_random)
    evaluate_datasets(predictor, methods, root, ["COIFT"], tmp_path / "eval", progress=False)
    frame = load_results(tmp_path / "eval")
    assert set(frame["method"]) == {"baseline", "gt-mask-prompt", "mask-prompt"}
    by_method = frame.groupby("method")["IoU"].apply(list)
    assert by_method["gt-mask-prompt"] != by_method["baseline"]


def test_save_load_round_trip_and_mismatches(tmp_path, nano_random, tiny_random):
    fusion = DenseFusion(nano_random.model.sam_prompt_encoder.embed_dim, init="paper", seed=2)
    path = save_fusion(fusion, tmp_path / "f.pt", model_identity(nano_random), uncertainty="ones")
    loaded, payload = load_fusion(path, model_identity(nano_random), uncertainty="ones")
    for key, value in fusion.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    with pytest.raises(FusionModelMismatchError):
        load_fusion(path, model_identity(tiny_random))
    with pytest.raises(ValueError, match="'ones' map"):
        load_fusion(path, uncertainty="laplace")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_fusion(tmp_path / "junk.pt")


def test_clicks_are_distinct_labelled_by_the_mask_and_start_inside():
    masks = torch.zeros(400, 24, 24, dtype=torch.bool)
    masks[:, 5:15, 6:18] = True
    masks[0] = False
    masks[0, 3, 3] = True  # one foreground pixel: further positive draws must land outside, labelled 0
    points, labels = sample_clicks(masks, 8, torch.Generator().manual_seed(0), positive_probability=0.5)
    cols, rows = points[..., 0].long(), points[..., 1].long()
    truth = masks[torch.arange(400)[:, None], rows, cols].long()
    assert torch.equal(labels, truth)
    assert (labels[1:, 0] == 1).all() and labels[0, 0] == 1
    flat = rows * 24 + cols
    assert all(len(set(row.tolist())) == 8 for row in flat)
    share = labels[1:, 1:].float().mean().item()
    assert abs(share - 0.5) < 0.03  # 2,793 later clicks, positive with probability 0.5


def test_focal_loss_matches_torchvision():
    from torchvision.ops import sigmoid_focal_loss

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 16, 16, generator=gen) * 4
    targets = (torch.rand(3, 16, 16, generator=gen) > 0.6).float()
    torch.testing.assert_close(sigmoid_focal(logits, targets, 0.25, 2.0),
                               sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="none"))


def test_prompts_grow_by_one_click_per_step():
    data = small_fit_data("train", 2)
    config = FusionTrainConfig.click_regime(uncertainty="entropy", clicks=4)
    seen = set()
    for seed in range(12):
        prompts = image_prompts(data, 0, config, torch.Generator().manual_seed(seed))
        seen.add(prompts.start_with_box)
        for index in range(config.clicks):
            points, labels = prompts.step(index)
            assert points.shape[:2] == labels.shape == (len(prompts.mask_ids), index + (2 if prompts.start_with_box else 1))
            if prompts.start_with_box:
                assert (labels[:, :2] == torch.tensor([2, 3])).all()
    assert seen == {True, False}


def test_one_training_step_reduces_the_loss(nano_random, predictor):
    data = small_fit_data("train", 2)
    config = FusionTrainConfig.click_regime(uncertainty="entropy", clicks=3, lr=1e-2)
    fusion = DenseFusion(predictor.prompt_encoder.embed_dim, init="exact", seed=0)
    optimizer = torch.optim.SGD(fusion.parameters(), lr=1e-3)
    encoding = encode_split(predictor, data).encoding(torch.tensor([0]))
    from uncertsam_utils.refine.training import frozen

    def step():
        prompts = image_prompts(data, 0, config, torch.Generator().manual_seed(7))
        return prompted_step(predictor, fusion, None, data, 0, prompts, config, encoding)

    with frozen(nano_random.model):
        before = step()
        assert all(p.grad is not None for p in fusion.fusion.parameters())
        assert all(p.grad is None for p in nano_random.model.parameters())  # SAM stays frozen
        optimizer.step()
        optimizer.zero_grad()
        after = step()
    assert after["loss"] < before["loss"]
    assert all(p.requires_grad for p in nano_random.model.parameters())  # restored


def test_refinement_loss_is_zero_for_a_perfect_confident_prediction():
    config = FusionTrainConfig(uncertainty="entropy")
    targets = torch.zeros(2, 32, 32)
    targets[:, 8:24, 8:24] = 1
    logits = torch.nn.functional.interpolate(targets[:, None] * 60 - 30, size=(16, 16), mode="area")[:, 0]
    loss, actual = refinement_loss(logits, torch.ones(2), targets, config)
    assert torch.allclose(actual, torch.ones(2)) and loss.item() < 1e-3


def test_click_training_selects_by_val_loss_and_resumes_exactly(tmp_path, nano_random):
    train, val = small_fit_data("train", 3), small_fit_data("val", 2)
    config = FusionTrainConfig.click_regime(uncertainty="entropy", epochs=2, clicks=2, lr=1e-3, checkpoint_every=2,
                                            select="loss", select_initial=False, patience=None)
    assert config.regime == "click" and FusionTrainConfig().regime == "box"
    quiet = dict(config=config, seed=0, progress=False, log=lambda _msg: None)
    whole = train_fusion(nano_random, train, val, out=tmp_path / "whole.pt", **quiet)
    assert [row["epoch"] for row in whole.history] == [1, 2]
    assert whole.best_epoch == min(whole.history, key=lambda row: row["val_loss"])["epoch"]
    assert not resume_path(tmp_path / "whole.pt").exists()
    stopped = train_fusion(nano_random, train, val, out=tmp_path / "part.pt", stop_after_steps=4, **quiet)
    assert stopped.out is None and resume_path(tmp_path / "part.pt").is_file()
    resumed = train_fusion(nano_random, train, val, out=tmp_path / "part.pt", resume=True, **quiet)
    for field in ("val_loss", "train_loss", "train_iou_refined", "lr"):
        assert [row[field] for row in resumed.history] == [row[field] for row in whole.history], field
    for key, value in whole.fusion.state_dict().items():
        assert torch.equal(value, resumed.fusion.state_dict()[key]), key
    _, payload = load_fusion(tmp_path / "part.pt", model_identity(nano_random), uncertainty="entropy")
    assert payload["training"]["best_epoch"] == whole.best_epoch and payload["training"]["regime"] == "click"
    with pytest.raises(ValueError, match="Laplace first pass"):
        train_fusion(nano_random, train, val, **{**quiet, "config": FusionTrainConfig(uncertainty="ones")})


def test_box_training_keeps_the_untrained_module_when_training_cannot_improve(tmp_path, nano_random):
    train, val = small_fit_data("train", 3), small_fit_data("val", 2)
    frozen_lr = FusionTrainConfig(uncertainty="entropy", epochs=5, lr=0.0, patience=2)
    result = train_fusion(nano_random, train, val, config=frozen_lr, out=tmp_path / "f.pt", seed=0, progress=False,
                          log=lambda _msg: None)
    rows = result.history
    assert [row["epoch"] for row in rows] == [0, 1, 2]  # patience 2: two epochs without a better val mIoU
    assert len({row["val_miou"] for row in rows}) == 1  # lr 0: every epoch ties with the untrained module ...
    assert result.best_epoch == 0 and result.record["last_epoch"] == 2 and result.record["stopped_early"]  # ... kept
    assert is_untrained(result.fusion)
    learning = FusionTrainConfig(uncertainty="entropy", epochs=2, lr=1e-2, patience=None)
    result = train_fusion(nano_random, train, val, config=learning, out=tmp_path / "g.pt", seed=0, progress=False,
                          log=lambda _msg: None)
    scores = [row["val_miou"] for row in result.history]
    assert result.best_epoch == scores.index(max(scores))  # the first of the best (ties to the earlier epoch)
    selected, payload = load_fusion(tmp_path / "g.pt")
    last, _ = load_fusion(tmp_path / "g.pt", state="last")
    assert not is_untrained(last) and payload["training"]["last_epoch"] == 2
    assert is_untrained(selected) == (result.best_epoch == 0)
    assert len(result.history[0]["val_ious"]) == val.num_masks  # every fit/val mask, for paired comparisons


def test_the_bank_gives_the_on_the_fly_first_passes_bit_for_bit(nano_random, predictor, posterior):
    from uncertsam_utils.refine.bank import FirstPassBank, draw_boxes

    data = small_fit_data("train", 3)
    features = encode_split(predictor, data)
    bank = FirstPassBank(predictor, features, data, kinds=("sam", "laplace"), posterior=posterior, seed=4,
                         max_objects=2)
    capped = FirstPassBank(predictor, features, data, kinds=("laplace", "sam"), posterior=posterior, seed=4,
                           max_objects=2, max_bytes=0)
    for epoch, image in [(1, 2), (0, 0), (1, 0), (0, 2)]:  # any order of access
        entry = bank.entry(epoch, image)
        mask_ids, boxes = draw_boxes(data, image, seed=4, epoch=epoch, max_objects=2, jitter=True)
        assert np.array_equal(entry.mask_ids, mask_ids) and len(mask_ids) <= 2
        points, labels = box_points(boxes)
        encoding = features.encoding(torch.tensor([image]))
        for kind in ("sam", "laplace"):
            direct = first_pass(kind, predictor, encoding, points=points, labels=labels, posterior=posterior)
            for name in ("logits", "entropy", "iou"):
                assert torch.equal(getattr(entry.passes[kind], name), getattr(direct, name)), (kind, name)
        again = capped.entry(epoch, image)  # over the byte cap: recomputed on use, the same numbers
        assert torch.equal(again.passes["laplace"].logits, entry.passes["laplace"].logits)
    assert len(bank) == 4 and len(capped) == 0 and capped.computed == 4
    assert not torch.equal(bank.entry(0, 0).points, bank.entry(1, 0).points)  # new jitter every epoch
    clean = FirstPassBank(predictor, features, data, kinds=("sam",), jitter=False, max_objects=None)
    assert clean.entry(0, 1) is clean.entry(3, 1)  # without jitter the epoch plays no part
    first, stop = data.first[1], data.first[2]
    assert torch.equal(clean.entry(0, 1).points, box_points(torch.from_numpy(data.boxes[first:stop]))[0])
    logits, ones = bank.entry(0, 0).inputs("ones")
    assert torch.equal(logits, bank.entry(0, 0).passes["laplace"].logits) and bool((ones == 1).all())


def test_a_family_shares_encodings_and_banks_and_caches_each_module(tmp_path, monkeypatch, nano_random, posterior):
    from uncertsam_utils.data.mini import generate_fit
    from uncertsam_utils.refine import bank as bank_module, training as training_module
    from uncertsam_utils.refine.family import train_fusion_family

    monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path / "cache"))
    root = generate_fit(tmp_path / "data", seed=0, sizes=(3, 2, 1), progress=False, workers=1)
    calls = {"encode": 0, "entries": 0}
    encode, compute = training_module.encode_split, bank_module.FirstPassBank.compute

    def counting_encode(*args, **kwargs):
        calls["encode"] += 1
        return encode(*args, **kwargs)

    def counting_compute(self, epoch, image):
        calls["entries"] += self.jitter  # training entries only
        return compute(self, epoch, image)

    monkeypatch.setattr(training_module, "encode_split", counting_encode)
    monkeypatch.setattr(bank_module.FirstPassBank, "compute", counting_compute)
    config = FusionTrainConfig(epochs=1, val_images=2)
    quiet = dict(config=config, posterior=posterior, progress=False, log=lambda _msg: None)
    files = train_fusion_family(root, nano_random, ["laplace", "ones"], seeds=[0, 1], **quiet)
    assert calls == {"encode": 2, "entries": 2 * 3}  # two splits encoded once; each seed's bank drawn once
    assert all(len(paths) == 2 and all(p.is_file() for p in paths) for paths in files.values())
    assert len({p for paths in files.values() for p in paths}) == 4
    _, first = load_fusion(files["laplace"][0])
    _, second = load_fusion(files["laplace"][1])
    assert first["training"]["seed"] == 0 and second["training"]["seed"] == 1
    assert train_fusion_family(root, nano_random, ["laplace", "ones"], seeds=[0, 1], **quiet) == files
    assert calls["encode"] == 2  # all cached: nothing trained
    none = train_fusion_family(root, nano_random, ["ones"], seeds=[0], config=config, progress=False,
                               log=lambda _msg: None)
    assert none == {"ones": [None]}  # a Laplace first pass without a posterior
    from uncertsam_utils.refine.family import seeded_methods

    last = seeded_methods("fusion-laplace", files["laplace"], [0, 1], nano_random, posterior, state="last",
                          label="fusion-laplace.trained")
    assert list(last) == ["fusion-laplace.trained.s0", "fusion-laplace.trained.s1"]
    assert repr(last["fusion-laplace.trained.s1"]).count("#last") == 1
    selected = seeded_methods("fusion-laplace", files["laplace"], [0, 1], nano_random, posterior)
    assert str(files["laplace"][0]) in repr(selected["fusion-laplace.s0"]) and "#" not in repr(selected["fusion-laplace.s0"])


def test_untrained_modules_are_recognised():
    exact = DenseFusion(32, init="exact", seed=3)
    assert is_untrained(exact) and not is_untrained(DenseFusion(32, init="paper", seed=3))
    with torch.no_grad():
        exact.uncertainty_downscaling[0].weight.add_(1.0)  # the stem does not matter while the map half is 0
    assert is_untrained(exact)
    with torch.no_grad():
        exact.fusion.weight[0, 40] = 1e-8
    assert not is_untrained(exact)


def test_train_fusion_command_writes_a_module_and_eval_scores_it(tmp_path, nano_random):
    import argparse

    from uncertsam_utils.cli import eval as eval_cli
    from uncertsam_utils.cli import train as train_cli
    from uncertsam_utils.cli import UserError
    from uncertsam_utils.data.mini import generate_fit
    from uncertsam_utils.refine.passes import UNCERTAINTY_SOURCES

    assert set(train_cli.FUSION_MAPS) == set(UNCERTAINTY_SOURCES)
    root = generate_fit(tmp_path / "data", seed=0, sizes=(2, 1, 1), progress=False, workers=1)
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    train_cli.register(subparsers)
    eval_cli.register(subparsers)
    out = tmp_path / "fusion.pt"
    argv = ["train", "fusion", "--data", str(root), "--uncertainty", "entropy", "--checkpoint", "random",
            "--out", str(out), "--epochs", "1", "--regime", "click", "--quiet"]
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    _, payload = load_fusion(out, model_identity(nano_random), uncertainty="entropy")
    training = payload["training"]
    assert "train fusion" in training["command"] and training["regime"] == "click" and training["last_epoch"] == 1
    assert training["best_epoch"] in (0, 1) and [row["epoch"] for row in training["history"]] == [0, 1]
    with pytest.raises(UserError, match="exists"):
        args = parser.parse_args(argv)
        args.handler(args)
    with pytest.raises(UserError, match="--posterior"):
        args = parser.parse_args([*argv[:5], "ones", *argv[6:], "--force"])
        args.handler(args)
    args = parser.parse_args(["eval", "--data", str(root), "--datasets", "fit", "--split", "test", "--checkpoint",
                              "random", "--method", "fusion-entropy", "mask-prompt", "--fusion", f"fusion-entropy={out}",
                              "--out", str(tmp_path / "eval"), "--quiet", "--metric-workers", "0"])
    assert args.handler(args) == 0
    assert (tmp_path / "eval" / "fit" / "fusion-entropy.csv").is_file()


def test_untrained_modules_are_evaluated_once_and_equal_their_representative(predictor, scene, posterior):
    import pandas as pd

    from uncertsam_utils.refine.dedup import copy_duplicates, unique_methods
    from uncertsam_utils.refine.methods import FusionEntropy

    image, boxes, encoding = scene
    dim = predictor.prompt_encoder.embed_dim
    trained = DenseFusion(dim, init="exact", seed=0)
    with torch.no_grad():
        trained.fusion.weight[:, dim:] += 0.01
    methods = {"mask-prompt": MaskPromptRefinement(),
               "fusion-laplace.s0": FusionLaplace(fusion=DenseFusion(dim, seed=0), posterior=posterior),
               "fusion-ones.s1": FusionOnes(fusion=DenseFusion(dim, seed=1), posterior=posterior),
               "fusion-entropy.s2": FusionEntropy(fusion=DenseFusion(dim, seed=2)),
               "fusion-laplace.trained": FusionLaplace(fusion=trained, posterior=posterior)}
    unique, same_as = unique_methods(methods)
    assert list(unique) == ["mask-prompt", "fusion-laplace.s0", "fusion-laplace.trained"]
    assert same_as == {"fusion-ones.s1": "fusion-laplace.s0", "fusion-entropy.s2": "mask-prompt"}
    predicted = {name: m.predict(predictor, image, boxes.numpy(), encoding=encoding) for name, m in methods.items()}
    for name, source in same_as.items():  # identical by construction, bit for bit
        assert torch.equal(predicted[name].logits, predicted[source].logits), name
    assert not torch.equal(predicted["fusion-laplace.trained"].logits, predicted["fusion-laplace.s0"].logits)
    rows = pd.DataFrame({"method": ["mask-prompt", "fusion-laplace.s0"], "IoU": [0.5, 0.7]})
    full = copy_duplicates(rows, same_as)
    assert full.set_index("method")["IoU"].to_dict() == {"mask-prompt": 0.5, "fusion-laplace.s0": 0.7,
                                                         "fusion-ones.s1": 0.7, "fusion-entropy.s2": 0.5}
    with pytest.raises(ValueError, match="no results"):
        copy_duplicates(rows[rows["method"] == "mask-prompt"], same_as)
