"""The shipped nano SAM-2 and its training code (issue 4)."""

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch

from uncertsam_utils.model import Predictor, load_model
from uncertsam_utils.model.checkpoints import NANO_WEIGHTS, sha256_of
from uncertsam_utils.model.nano import (
    EvalItem,
    FitData,
    TrainConfig,
    batch_loss,
    box_raster,
    evaluate_items,
    items_from_samples,
    make_optimizer,
    resume_path,
    sample_batch,
    summarise,
    tight_boxes,
    train,
    train_step,
)

FIT_TEST_IMAGES = 40  # the first images of fit/test (seed 0), regenerated deterministically


def fit_items(split, count, seed=0):
    from uncertsam_utils.data.mini.domains import FIT_SPEC, render_item

    return [render_item(FIT_SPEC, seed, split, i)[1:] for i in range(count)]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_fit():
    return FitData.from_items((image, np.stack(masks)) for image, masks in fit_items("train", 8))


@pytest.fixture(scope="module")
def tiny_val():
    return [EvalItem(image, np.stack(m), tight_boxes(np.stack(m))) for image, m in fit_items("val", 2)]


# ------------------------------------------------------------------------------- shipped model

def test_shipped_weights_load_and_their_hash_matches_the_record():
    record = json.loads(NANO_WEIGHTS.with_suffix(".json").read_text())
    assert sha256_of(NANO_WEIGHTS) == record["sha256"]
    assert NANO_WEIGHTS.stat().st_size <= 20 * 2**20
    for key in ("seed", "steps", "train_seconds", "command", "data"):
        assert key in record
    assert record["data"]["version"] is not None and record["data"]["seed"] is not None
    loaded = load_model("nano")
    assert loaded.checkpoint == NANO_WEIGHTS and loaded.sha256 == record["sha256"]
    assert not loaded.random_weights
    payload = torch.load(NANO_WEIGHTS, map_location="cpu", weights_only=True)
    assert set(payload) == {"model"}


# The shipped model's measured box-only quality (tables/nano_sam2_card.md: 0.868 on all 200 fit-test
# images, 0.857 on the 40-image subset below); the target for the full split is 0.85. The
# floor leaves 0.007 for platform rounding and guards against regressions.
SHIPPED_FIT_TEST_FLOOR = 0.85


def test_shipped_model_follows_the_box_alone_on_fit_test(tmp_path):
    """Box-only mIoU on the first fit-test images, read back through the published layout."""
    from uncertsam_utils.data.layout import SplitReader
    from uncertsam_utils.data.mini import generate_fit

    generate_fit(tmp_path, seed=0, sizes=(1, 1, FIT_TEST_IMAGES), progress=False, workers=1)
    predictor = Predictor(load_model("nano").model)
    items = items_from_samples(SplitReader(tmp_path, "fit", "test"), predictor.image_size)
    summary = summarise(evaluate_items(predictor, items))
    assert summary["masks"] > 2 * FIT_TEST_IMAGES  # scenes with several objects
    assert summary["miou"] >= SHIPPED_FIT_TEST_FLOOR, summary


# ------------------------------------------------------------------------------------- training

def test_sampled_boxes_are_the_flipped_tight_boxes_without_jitter(tiny_fit):
    cfg = dataclasses.replace(TrainConfig(), jitter_frac=0.0, point_prompt_prob=0.0, flip_prob=0.5)
    batch = sample_batch(tiny_fit, np.random.default_rng(5), cfg, p_dense=0.5)
    targets = batch.targets.numpy() > 0.5
    np.testing.assert_array_equal(batch.boxes.numpy(), tight_boxes(targets))
    assert set(batch.kinds) <= {"box", "dense"}
    # each target lies in its image: the image is flipped with its masks
    assert batch.images.shape == (len(set(batch.image_index.tolist())), 3, 256, 256)


def test_box_jitter_stays_within_sam_bounds(tiny_fit):
    cfg = TrainConfig()
    rng = np.random.default_rng(0)
    for _ in range(5):
        batch = sample_batch(tiny_fit, rng, dataclasses.replace(cfg, point_prompt_prob=0.0, flip_prob=0.0), 0.0)
        tight = tight_boxes(batch.targets.numpy() > 0.5)
        side = np.concatenate([tight[:, 2:3] - tight[:, 0:1], tight[:, 3:4] - tight[:, 1:2]], 1)[:, [0, 1, 0, 1]]
        bound = np.minimum(0.1 * side, 5.0) + 1e-4  # 20 px of the 1024 frame = 5 px at 256
        assert (np.abs(batch.boxes.numpy() - tight) <= bound).all()


def test_dense_box_raster_and_curriculum_schedule():
    raster = box_raster(torch.tensor([[0.0, 0.0, 127.0, 255.0]]), 64, 256, 10.0)
    assert raster.shape == (1, 64, 64)
    assert (raster[0, :, :32] == 10).all() and (raster[0, :, 32:] == -10).all()
    cfg = dataclasses.replace(TrainConfig(), steps=1000, dense_box_until=0.5)
    assert cfg.dense_probability(0) == 1.0 and cfg.dense_probability(250) == 0.5
    assert cfg.dense_probability(500) == 0.0 and cfg.dense_probability(999) == 0.0


def test_one_training_step_reduces_the_loss_on_a_fixed_batch(tiny_fit):
    cfg = dataclasses.replace(TrainConfig(), warmup_steps=1)  # full learning rate from the first step
    model = load_model("nano", "random", seed=0).model.train()
    predictor = Predictor(model)
    optimizer, scheduler = make_optimizer(model, cfg)
    batch = sample_batch(tiny_fit, np.random.default_rng(0), cfg, p_dense=0.5)
    with torch.no_grad():
        before = batch_loss(predictor, batch, cfg)[0].item()
    parts = train_step(predictor, optimizer, scheduler, batch, cfg)
    with torch.no_grad():
        after = batch_loss(predictor, batch, cfg)[0].item()
    assert parts["loss"] == pytest.approx(before, rel=1e-5)
    assert after < before


def test_iterative_step_decodes_the_box_prompts_again_with_their_own_mask(tiny_fit, monkeypatch):
    cfg = dataclasses.replace(TrainConfig(), refine_prob=1.0)
    predictor = Predictor(load_model("nano", "random", seed=0).model)
    batch = sample_batch(tiny_fit, np.random.default_rng(0), cfg, p_dense=0.0)
    assert batch.refine and "box" in batch.kinds
    calls = []
    original = Predictor.decode
    monkeypatch.setattr(Predictor, "decode", lambda self, *a, **k: calls.append(k) or original(self, *a, **k))
    loss, parts = batch_loss(predictor, batch, cfg)
    boxes = batch.group("box")
    first = calls[0] if calls[0].get("mask_logits") is None else None
    refine_call = calls[-1]
    assert first is not None and refine_call["mask_logits"] is not None
    assert torch.equal(refine_call["boxes"], batch.boxes[boxes])
    with torch.no_grad():  # the mask prompt is the first pass's own token-0 logits, detached
        encoding = predictor.encode_inputs(batch.images, [(256, 256)])
        again = original(predictor, encoding, boxes=batch.boxes[boxes], image_index=batch.image_index[boxes])
    torch.testing.assert_close(refine_call["mask_logits"], again.logits, rtol=0, atol=1e-5)
    assert not refine_call["mask_logits"].requires_grad and "refined_iou" in parts
    single_pass, _ = batch_loss(predictor, dataclasses.replace(batch, refine=False), cfg)
    assert loss.item() > single_pass.item()  # the refined pass's losses are added


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, tiny_fit, tiny_val):
    cfg = dataclasses.replace(TrainConfig(), steps=4, checkpoint_every=2, val_every=2, warmup_steps=2)
    whole = train(tmp_path / "whole.pt", tiny_fit, tiny_val, cfg=cfg, progress=False, log=lambda _: None)
    first = train(tmp_path / "parts.pt", tiny_fit, tiny_val, cfg=cfg, stop_after=2, progress=False, log=lambda _: None)
    assert first.out is None and resume_path(tmp_path / "parts.pt").is_file()
    second = train(tmp_path / "parts.pt", tiny_fit, tiny_val, cfg=cfg, resume=True, progress=False, log=lambda _: None)
    assert second.step == 4 and not resume_path(tmp_path / "parts.pt").exists()
    a, b = whole.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole.record["validation"] == second.record["validation"]
    assert sha256_of(tmp_path / "whole.pt") == sha256_of(tmp_path / "parts.pt")
    # a resume file from another run is refused, not silently continued
    train(tmp_path / "other.pt", tiny_fit, None, cfg=cfg, stop_after=1, progress=False, log=lambda _: None)
    with pytest.raises(ValueError, match="different run"):
        train(tmp_path / "other.pt", tiny_fit, None, cfg=cfg, seed=1, resume=True, progress=False, log=lambda _: None)


def test_train_command_group_parses():
    from uncertsam_utils.cli import train as train_cli

    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "nano", "--data", "d", "--out", "w.pt", "--steps", "10", "--resume"])
    assert (args.data, args.out, args.steps, args.resume, args.seed, args.threads) == ("d", "w.pt", 10, True, 0, 1)
    assert parser.parse_args(["train", "nano-card"]).handler is not None
