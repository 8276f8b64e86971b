"""The variance network (issue 7): head, loss, training, files, the UQ method, token capture."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import smooth_image

from uncertsam_utils.model import Predictor, load_model
from uncertsam_utils.uq import METHODS, make_method
from uncertsam_utils.uq.varnet import VarianceNetwork
from uncertsam_utils.uq.varnet.head import (
    HeadModelMismatchError,
    VarianceHead,
    clamp_log_variance,
    gaussian_nll,
    load_head,
    save_head,
)
from uncertsam_utils.uq.varnet.training import (
    VarnetTrainConfig,
    make_optimizer,
    optimisation_step,
    pixel_terms,
    resume_path,
    train_variance_head,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def random_boxes(rng, n, size):
    lo = rng.uniform(0, 0.5 * size, (n, 2))
    hi = lo + rng.uniform(0.15 * size, 0.45 * size, (n, 2))
    return np.concatenate([lo, hi], axis=1).astype(np.float32)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ranks = lambda x: x.reshape(-1).argsort().argsort().double()  # noqa: E731 (ties are negligible here)
    return float(torch.corrcoef(torch.stack([ranks(a), ranks(b)]))[0, 1])


def test_head_has_the_papers_size():
    head = VarianceHead(256)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(head.upscaling) == 166_112 and count(head.hypernetwork) == 139_808
    s = head(torch.randn(2, 3, 256, 8, 8), torch.randn(2, 3, 256))
    assert s.shape == (2, 3, 32, 32) and s.min() >= -5 and s.max() <= 5


def test_loss_gradient_drives_s_to_the_log_squared_error():
    generator = torch.Generator().manual_seed(0)
    prob = torch.rand(2000, generator=generator)
    target = (torch.rand(2000, generator=generator) < 0.5).float()
    optimum = torch.log((prob - target) ** 2).clamp(-5, 5)
    s = torch.zeros(2000, requires_grad=True)
    optimizer = torch.optim.SGD([s], lr=0.5)
    for _ in range(150):
        optimizer.zero_grad()
        gaussian_nll(clamp_log_variance(s), prob, target).sum().backward()
        optimizer.step()
    reached = clamp_log_variance(s).detach()
    inside = optimum > -4.9  # where the optimum is inside the clamp, s reaches it exactly
    torch.testing.assert_close(reached[inside], optimum[inside], atol=2e-3, rtol=0)
    assert (reached[~inside] <= -4.9).all()  # elsewhere s sits at the lower clamp
    # The probability gets no gradient: SAM is frozen.
    frozen = prob.clone().requires_grad_(True)
    gaussian_nll(torch.zeros(2000, requires_grad=True), frozen, target).sum().backward()
    assert frozen.grad is None


def test_clamp_lets_gradients_bring_values_back_but_not_further_out():
    s = torch.tensor([7.0, 7.0, -7.0, -7.0, 0.0], requires_grad=True)
    clamped = clamp_log_variance(s)
    assert clamped.tolist() == [5.0, 5.0, -5.0, -5.0, 0.0]
    clamped.backward(torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0]))
    # Descent moves by −grad: inward for the 1st (7 → lower) and 4th (−7 → higher) only.
    assert s.grad.tolist() == [1.0, 0.0, 0.0, -1.0, 1.0]


def synthetic_tokens(generator, n, dim=32, e=8):
    """Image tokens whose channel 0 carries a smooth field; the target flips with a probability
    (the expected error) that is ~0.01 where the field is low and ~0.46 where it is high.

    The frozen prediction is confident foreground (p = σ(4)), so the squared error is large
    exactly where the field is large: a head that learns anything must follow channel 0."""
    field = torch.rand(n, 1, e // 2, e // 2, generator=generator)
    field = F.interpolate(field, size=(e, e), mode="bilinear", align_corners=False)[:, 0]
    tokens = torch.randn(n, dim, e, e, generator=generator)
    tokens[:, 0] = 3.0 * (field - 0.5)
    mask_token = torch.randn(n, dim, generator=generator) * 0.1 + 1.0  # similar objects
    m = 4 * e
    field_m = F.interpolate(field[:, None], size=(m, m), mode="bilinear", align_corners=False)[:, 0]
    flip_probability = 0.01 + 0.45 * torch.sigmoid(12 * (field_m - 0.5))
    targets = (torch.rand(n, m, m, generator=generator) >= flip_probability).float()
    decoded = SimpleNamespace(image_tokens=tokens, mask_token=mask_token, logits=torch.full((n, m, m), 4.0))
    return decoded, targets, flip_probability


def test_trained_head_gives_larger_variance_where_the_error_is_larger():
    generator = torch.Generator().manual_seed(1)
    head = VarianceHead(32, seed=0)
    steps = 100
    config = VarnetTrainConfig(lr=1e-2, grad_clip=1.0)  # a faster lr than the paper's, for a short test
    optimizer, scheduler = make_optimizer(head, config, steps)
    for _ in range(steps):
        decoded, targets, _ = synthetic_tokens(generator, 8)
        optimisation_step(head, optimizer, scheduler, decoded, targets, config.grad_clip)
    decoded, targets, flip_probability = synthetic_tokens(generator, 32)  # held out
    with torch.no_grad():
        loss, log_variance, abs_error, _ = pixel_terms(head.eval(), decoded, targets)
        untrained_loss = pixel_terms(VarianceHead(32, seed=0).eval(), decoded, targets).loss
    variance = log_variance.exp()
    # Where errors are frequent the variance is several times larger than where they are rare ...
    assert variance[flip_probability > 0.3].mean() > 3.0 * variance[flip_probability < 0.1].mean()
    assert spearman(log_variance, flip_probability) > 0.7
    # ... and larger on the pixels that are actually wrong than on those that are right.
    assert variance[abs_error > 0.5].mean() > 1.3 * variance[abs_error < 0.5].mean()
    assert loss.mean() < untrained_loss.mean() - 0.5


def test_return_tokens_are_what_the_decoder_computes(nano_random, rng):
    """Rebuild the decoder's token-0 logits from the captured tokens with its own layers."""
    predictor = Predictor(nano_random.model)
    decoder = predictor.decoder
    with torch.no_grad():
        encoding = predictor.encode(smooth_image(rng, 200, 300))
        boxes = random_boxes(rng, 3, predictor.image_size)[None]
        plain = predictor.decode(encoding, boxes=boxes)
        out = predictor.decode(encoding, boxes=boxes, return_tokens=True)
        assert out.image_tokens.shape == (1, 3, 64, 16, 16) and out.mask_token.shape == (1, 3, 64)
        tokens = out.image_tokens.reshape(3, 64, 16, 16)
        conv1, norm1, act1, conv2, act2 = decoder.output_upscaling
        feat_s0, feat_s1 = encoding.high_res_feats
        upscaled = act2(conv2(act1(norm1(conv1(tokens) + feat_s1))) + feat_s0)
        hyper = decoder.output_hypernetworks_mlps[0](out.mask_token.reshape(3, 64))
        rebuilt = torch.einsum("nc,nchw->nhw", hyper, upscaled)
    torch.testing.assert_close(out.logits, plain.logits)  # capturing changes nothing
    torch.testing.assert_close(rebuilt, out.logits.reshape(3, 64, 64), atol=1e-4, rtol=1e-5)


def test_varnet_method_one_pass_sam_segmentation_and_maps(nano_random, rng, monkeypatch):
    assert METHODS["varnet"] is VarianceNetwork
    method = VarianceNetwork.for_benchmark(nano_random, torch.Generator().manual_seed(0))
    predictor = Predictor(nano_random.model)
    image, boxes = smooth_image(rng, 180, 240), random_boxes(rng, 4, predictor.image_size)
    calls = {"encode": 0, "decode": 0}
    for name, owner, attr in (("encode", nano_random.model, "forward_image"), ("decode", predictor, "_predict_masks")):
        original = getattr(owner, attr)
        monkeypatch.setattr(owner, attr, lambda *a, _f=original, _n=name, **k: (calls.__setitem__(_n, calls[_n] + 1), _f(*a, **k))[1])
    result = method.predict(predictor, image, boxes)
    assert calls == {"encode": 1, "decode": 1}
    monkeypatch.undo()
    baseline = make_method("baseline").predict(predictor, image, boxes)
    torch.testing.assert_close(result.logits, baseline.logits)
    torch.testing.assert_close(result.maps["entropy"], baseline.maps["entropy"])
    assert result.default_map == "variance" and set(result.maps) == {"variance", "log_variance", "entropy"}
    torch.testing.assert_close(result.uncertainty, result.maps["log_variance"].exp())
    s = result.maps["log_variance"]
    assert s.shape == (4, 64, 64) and s.min() >= -5 and s.max() <= 5
    assert result.at_original_size().uncertainty.shape == (4, 180, 240)


def test_saved_head_loads_with_identical_maps(tmp_path, nano_random, rng):
    method = VarianceNetwork(VarianceHead(64, seed=3))
    path = save_head(method.head, tmp_path / "head.pt", nano_random, training={"note": "test"})
    reloaded = VarianceNetwork.load(path, nano_random)
    assert reloaded.head.training_record == {"note": "test"}
    predictor = Predictor(nano_random.model)
    image, boxes = smooth_image(rng, 128, 128), random_boxes(rng, 3, predictor.image_size)
    first, second = method.predict(predictor, image, boxes), reloaded.predict(predictor, image, boxes)
    for name in first.maps:
        assert torch.equal(first.maps[name], second.maps[name])


def test_head_on_another_model_is_a_clear_error(tmp_path, nano_random, tiny_random):
    path = save_head(VarianceHead(64), tmp_path / "head.pt", nano_random)
    with pytest.raises(HeadModelMismatchError, match="trained on model .*nano.*not on the loaded model .*hiera_t"):
        load_head(path, tiny_random)
    other_nano = load_model("nano", "random", seed=1)  # same architecture, other weights
    with pytest.raises(HeadModelMismatchError, match="random_seed"):
        VarianceNetwork.load(path, other_nano)
    (tmp_path / "junk.pt").write_bytes(b"not a head")
    with pytest.raises(ValueError, match="cannot read variance head"):
        load_head(tmp_path / "junk.pt", nano_random)


def small_fit_data(split, count, seed=0):
    from uncertsam_utils.data.mini.domains import FIT_SPEC, render_item
    from uncertsam_utils.training import FitData

    def items():
        for index in range(count):
            _, image, masks = render_item(FIT_SPEC, seed, split, index)
            yield image, np.stack(masks)

    return FitData.from_items(items())


def test_training_selects_by_val_loss_and_resumes_exactly(tmp_path, nano_random):
    train, val = small_fit_data("train", 3), small_fit_data("val", 2)
    config = VarnetTrainConfig(epochs=2, lr=1e-3)
    quiet = dict(config=config, seed=0, progress=False, log=lambda _msg: None)
    whole = train_variance_head(nano_random, train, val, out=tmp_path / "whole.pt", **quiet)
    assert [row["epoch"] for row in whole.history] == [1, 2]
    assert whole.best_epoch == min(whole.history, key=lambda row: row["val_loss"])["epoch"]
    assert all(np.isfinite([row["val_pearson"], row["val_pearson_variance"]]).all() for row in whole.history)
    assert not resume_path(tmp_path / "whole.pt").exists()

    stopped = train_variance_head(nano_random, train, val, out=tmp_path / "part.pt", stop_after_epochs=1, **quiet)
    assert stopped.out is None and resume_path(tmp_path / "part.pt").is_file()
    resumed = train_variance_head(nano_random, train, val, out=tmp_path / "part.pt", resume=True, **quiet)
    assert [row["val_loss"] for row in resumed.history] == [row["val_loss"] for row in whole.history]
    for key, value in whole.head.state_dict().items():
        assert torch.equal(value, resumed.head.state_dict()[key]), key
    assert load_head(tmp_path / "part.pt", nano_random).training_record["best_epoch"] == whole.best_epoch
    train_variance_head(nano_random, train, val, out=tmp_path / "x.pt", stop_after_epochs=1, **quiet)
    with pytest.raises(ValueError, match="different run"):
        train_variance_head(nano_random, train, val, out=tmp_path / "x.pt", resume=True, **{**quiet, "seed": 1})


def test_train_varnet_command_writes_a_head_for_its_model(tmp_path, nano_random):
    import argparse

    from uncertsam_utils.cli import train as train_cli
    from uncertsam_utils.cli import UserError
    from uncertsam_utils.data.mini import generate_fit

    root = generate_fit(tmp_path / "data", seed=0, sizes=(3, 2, 1), progress=False, workers=1)
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    out = tmp_path / "head.pt"
    argv = ["train", "varnet", "--data", str(root), "--checkpoint", "random", "--out", str(out),
            "--epochs", "1", "--threads", "1", "--quiet"]
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    head = load_head(out, nano_random)  # the default random nano: seed 0, as the command used
    assert head.training_record["best_epoch"] == 1 and "train varnet" in head.training_record["command"]
    with pytest.raises(UserError, match="exists"):
        args = parser.parse_args(argv)
        args.handler(args)


def test_seeds_share_one_encoding_and_each_equals_a_run_of_its_own(tmp_path, monkeypatch, nano_random):
    from uncertsam_utils.data.mini import generate_fit
    from uncertsam_utils.uq.varnet import training as training_module
    from uncertsam_utils.uq.varnet.head import load_head
    from uncertsam_utils.uq.varnet.training import seed_methods, train_or_load_seeds

    monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path / "cache"))
    root = generate_fit(tmp_path / "data", seed=0, sizes=(3, 2, 1), progress=False, workers=1)
    calls = []
    encode = training_module.encode_split
    monkeypatch.setattr(training_module, "encode_split", lambda *a, **k: calls.append(1) or encode(*a, **k))
    config = VarnetTrainConfig(epochs=1)
    quiet = dict(config=config, progress=False, log=lambda _msg: None)
    heads = train_or_load_seeds(root, nano_random, [0, 2], **quiet)
    assert len(calls) == 2 and set(heads) == {0, 2} and all(p.is_file() for p in heads.values())  # 2 splits, once
    assert train_or_load_seeds(root, nano_random, [0, 2], **quiet) == heads and len(calls) == 2  # cached
    assert training_module.cached_head_path(root, nano_random, config, 2) == heads[2]  # train_or_load's cache
    train, val = training_module.load_fit_splits(root, nano_random.image_size)
    alone = training_module.train_variance_head(nano_random, train, val, config=config, seed=2, progress=False,
                                                log=lambda _msg: None).head  # encoding its own features
    shared = load_head(heads[2], nano_random)
    assert all(torch.equal(v, alone.state_dict()[k]) for k, v in shared.state_dict().items())
    other = VarnetTrainConfig(epochs=1, lr=2e-4)
    assert train_or_load_seeds(root, nano_random, [1], config=other, train_missing=False) == {1: None}
    methods = seed_methods(heads, nano_random, plain_seed=0)
    assert list(methods) == ["varnet", "varnet.s2"] and methods["varnet.s2"].head_source == str(heads[2])
    assert not torch.equal(next(iter(methods["varnet"].head.parameters())), next(iter(shared.parameters())))
