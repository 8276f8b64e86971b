"""Sampling methods (issue 5): test-time augmentation, prompt perturbation, their measures and noise."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from conftest import smooth_image

from uncertsam_utils.model import Predictor
from uncertsam_utils.prompts import box_noise_bounds, jitter_boxes, jitter_points, labels_from_masks, scaled_pixels
from uncertsam_utils.uq import METHODS, image_generator, make_method
from uncertsam_utils.uq import tta
from uncertsam_utils.uq.measures import binary_entropy, mutual_information, sample_std, summarise_samples

BOXES_256 = np.array([[30.0, 40.0, 150.0, 120.0], [100.0, 90.0, 230.0, 250.0], [10.0, 10.0, 60.0, 200.0]], dtype=np.float32)


@pytest.fixture(scope="module")
def nano(nano_random):
    return Predictor(nano_random.model)


@pytest.fixture(scope="module")
def image():
    return smooth_image(np.random.default_rng(7), 200, 300)


def generator(seed=0):
    return image_generator(seed, "test", 0)


# ----------------------------------------------------------------------------------- measures
def test_entropy_and_mutual_information_match_hand_computed_values():
    assert binary_entropy(torch.tensor(0.5)).item() == pytest.approx(math.log(2), abs=1e-6)
    h01 = -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))  # 0.325083
    assert binary_entropy(torch.tensor(0.1)).item() == pytest.approx(h01, abs=1e-6)
    samples = torch.tensor([0.1, 0.9])  # disagreeing samples: mean 0.5
    assert mutual_information(samples).item() == pytest.approx(math.log(2) - h01, abs=1e-6)
    assert sample_std(samples).item() == pytest.approx(math.sqrt(0.32), abs=1e-6)  # unbiased: (2·0.4²)/1
    agreeing = torch.full((4, 3), 0.2)
    mean, maps = summarise_samples(agreeing, dim=0)
    torch.testing.assert_close(mean, torch.full((3,), 0.2))
    assert maps["mutual_information"].abs().max() < 1e-6 and maps["std"].abs().max() < 1e-7
    torch.testing.assert_close(maps["entropy"], binary_entropy(torch.full((3,), 0.2)))
    spread = torch.rand(3, 10, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample_std(spread, dim=1), spread.std(dim=1, unbiased=True))
    assert torch.isnan(sample_std(spread[:, :1], dim=1)).all()  # one sample has no spread estimate


def test_methods_are_registered_with_the_paper_defaults():
    assert {"baseline", "tta", "prompt"} <= set(METHODS)
    tta_method, prompt_method = make_method("tta"), make_method("prompt")
    assert tta_method.hyperparameters() == {"T": 10, "transform": "hue", "include_clean": False, "encoder_batch": 10}
    assert tta_method.changes_image and tta_method.uses_random
    assert prompt_method.hyperparameters() == {"K": 10, "box_fraction": 0.1, "box_max_pixels": 20.0, "point_max_pixels": 20.0}
    assert not prompt_method.changes_image and prompt_method.uses_random


# -------------------------------------------------------------------------------- prompt noise
def test_box_jitter_stays_within_min_of_tenth_of_side_and_scaled_cap():
    rng = np.random.default_rng(0)
    for size, cap in ((1024, 20.0), (256, 5.0)):
        assert scaled_pixels(20.0, size) == cap
        lo = rng.uniform(0, 0.7 * size, (500, 2))
        boxes = torch.tensor(np.concatenate([lo, lo + rng.uniform(4, 0.3 * size, (500, 2))], axis=1), dtype=torch.float32)
        clean = boxes[:, None].expand(-1, 20, -1)
        noisy = jitter_boxes(clean, size, torch.Generator().manual_seed(1))
        width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        expected = torch.minimum(0.1 * torch.stack([width, height, width, height], -1), torch.tensor(cap))
        bounds = box_noise_bounds(clean, size)
        torch.testing.assert_close(bounds[:, 0], expected)
        moved = (noisy - clean).abs()
        assert (moved <= bounds + 1e-4).all()
        assert (moved / bounds.clamp_min(1e-6)).amax() > 0.95  # uniform over the whole range, not shrunk
        assert noisy.min() >= 0 and noisy.max() <= size - 1
        assert (noisy[..., 2] > noisy[..., 0]).all() and (noisy[..., 3] > noisy[..., 1]).all()


def test_box_jitter_clamps_to_the_frame_and_is_seeded():
    boxes = torch.tensor([[0.0, 0.0, 255.0, 255.0]]).expand(50, 4)
    noisy = jitter_boxes(boxes, 256, torch.Generator().manual_seed(3))
    assert noisy.min() >= 0 and noisy.max() <= 255
    again = jitter_boxes(boxes, 256, torch.Generator().manual_seed(3))
    other = jitter_boxes(boxes, 256, torch.Generator().manual_seed(4))
    assert torch.equal(noisy, again) and not torch.equal(noisy, other)


def test_point_jitter_bounds_and_labels_follow_the_mask():
    points = torch.tensor([[[100.0, 100.0], [5.0, 250.0]]]).expand(1, 2, 2)
    noisy = jitter_points(points[:, None].expand(1, 200, 2, 2), 256, torch.Generator().manual_seed(0))
    assert ((noisy - points[:, None]).abs() <= 5.0 + 1e-5).all() and noisy.min() >= 0 and noisy.max() <= 255
    mask = np.zeros((1, 512, 512), dtype=bool)  # a mask at twice the input frame's resolution
    mask[0, :, :200] = True  # the object covers x < 100 in the 256 frame
    labels = labels_from_masks(noisy, mask, 256)
    assert labels.shape == (1, 200, 2)
    expected = (noisy[..., 0] * 2).long() < 200
    assert torch.equal(labels.bool(), expected)
    assert labels[..., 0].min() == 0 and labels[..., 0].max() == 1  # points near the edge flip both ways


# --------------------------------------------------------------------------- colour operations
@pytest.fixture(scope="module")
def colour_batch():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, 3, 23, 31, generator=g)
    images[0, :, :4] = 0.5  # grey pixels: hue undefined, saturation 0
    images[1, 1] = images[1, 0]  # red = green ties
    images[2, :, 0, 0] = 0.0  # black
    return images


@pytest.mark.parametrize(
    "ours, theirs, factors",
    [
        (tta.adjust_brightness, TF.adjust_brightness, [0.0, 0.9, 1.0, 1.1, 1.7]),
        (tta.adjust_contrast, TF.adjust_contrast, [0.0, 0.97, 1.0, 1.05, 2.0]),
        (tta.adjust_saturation, TF.adjust_saturation, [0.0, 0.95, 1.0, 1.03, 3.0]),
        (tta.adjust_hue, TF.adjust_hue, [-0.5, -0.17, 0.0, 0.25, 0.5]),
    ],
)
def test_colour_ops_equal_torchvision_on_fixed_factors(colour_batch, ours, theirs, factors):
    result = ours(colour_batch, torch.tensor(factors))
    reference = torch.stack([theirs(image, factor) for image, factor in zip(colour_batch, factors)])
    torch.testing.assert_close(result, reference, atol=2e-6, rtol=0)


def test_grayscale_and_jitter_order_equal_torchvision(colour_batch):
    flags = torch.tensor([True, False, True, False, False])
    result = tta.random_grayscale(colour_batch, flags)
    torch.testing.assert_close(result[0], TF.rgb_to_grayscale(colour_batch[0], num_output_channels=3))
    assert torch.equal(result[1], colour_batch[1])
    params = tta.JitterParams(
        factors=torch.tensor([[0.9, 1.05, 0.97]] * 5),
        order=torch.tensor([[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0], [2, 0, 1]]),
    )
    kernels = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)
    expected = []
    for image, factors, order in zip(colour_batch, params.factors, params.order):
        for op_id in order.tolist():
            image = kernels[op_id](image, float(factors[op_id]))
        expected.append(image)
    torch.testing.assert_close(tta.apply_jitter(colour_batch, params), torch.stack(expected), atol=2e-6, rtol=0)


def test_in_domain_parameters_follow_sam2s_ranges():
    params = tta.draw_jitter(2000, tta.SAM2_PER_FRAME_JITTER, torch.Generator().manual_seed(0))
    low, high = params.factors.amin(0), params.factors.amax(0)
    assert torch.all(low >= torch.tensor([0.9, 0.95, 0.95])) and torch.all(high <= torch.tensor([1.1, 1.05, 1.05]))
    assert torch.all(low < torch.tensor([0.91, 0.951, 0.951])) and torch.all(high > torch.tensor([1.09, 1.049, 1.049]))
    assert torch.equal(params.order.sort(dim=1).values, torch.arange(3).expand(2000, 3))  # permutations
    assert len({tuple(o) for o in params.order.tolist()}) == 6


# ------------------------------------------------------------------------------------ methods
def test_prompt_perturbation_without_noise_equals_the_baseline(nano, image):
    baseline = make_method("baseline").predict(nano, image, BOXES_256)
    result = make_method("prompt", box_fraction=0.0).predict(nano, image, BOXES_256, generator=generator())
    assert torch.equal(result.info["boxes"], torch.as_tensor(BOXES_256)[:, None].expand(3, 10, 4))
    torch.testing.assert_close(result.prob, baseline.prob, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.uncertainty, baseline.uncertainty, atol=1e-5, rtol=0)
    assert result.maps["std"].abs().max() < 1e-5 and result.maps["mutual_information"].abs().max() < 1e-5


def test_prompt_perturbation_decodes_all_prompts_in_one_call_equal_to_one_by_one(nano, image, monkeypatch):
    method = make_method("prompt", K=4)
    calls = []
    original = Predictor.decode
    monkeypatch.setattr(Predictor, "decode", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    result = method.predict(nano, image, BOXES_256, generator=generator())
    assert len(calls) == 1
    monkeypatch.undo()
    boxes = result.info["boxes"]
    assert boxes.shape == (3, 4, 4) and torch.equal(boxes[:, 0], torch.as_tensor(BOXES_256))
    with torch.inference_mode():
        encoding = nano.encode(image)
        one_by_one = torch.stack([torch.sigmoid(nano.decode(encoding, boxes=box[None]).logits[0]) for box in boxes.reshape(-1, 4)])
    torch.testing.assert_close(result.prob, one_by_one.reshape(3, 4, *one_by_one.shape[-2:]).mean(1), atol=1e-5, rtol=0)


def test_prompt_perturbation_with_points_relabels_from_the_mask(nano, image):
    method = make_method("prompt", K=6, point_max_pixels=200.0)  # large noise so that labels flip
    points = np.array([[[60.0, 60.0]], [[150.0, 150.0]], [[30.0, 100.0]]], dtype=np.float32)
    masks = np.zeros((3, 200, 300), dtype=bool)
    masks[:, :100, :150] = True  # the top-left quarter of the original image
    method.predict(nano, image, None, points=points, point_labels=np.ones((3, 1)), gt_masks=masks, generator=generator())
    prompts = method.perturbed_prompts(None, points, np.ones((3, 1)), masks, 256, generator(), "cpu")
    noisy_points, labels = prompts[1], prompts[2]
    assert noisy_points.shape == (3, 6, 1, 2) and torch.equal(labels[:, 0], torch.ones(3, 1, dtype=torch.long))
    inside = (noisy_points[:, 1:, :, 0] < 128) & (noisy_points[:, 1:, :, 1] < 128)
    assert torch.equal(labels[:, 1:].bool(), inside)


@pytest.mark.parametrize("name, options", [("prompt", {}), ("tta", {"T": 3}), ("tta", {"T": 3, "transform": "in_domain"})])
def test_same_seed_same_maps_other_seed_other_maps(nano, image, name, options):
    method = make_method(name, **options)
    first = method.predict(nano, image, BOXES_256, generator=generator(0))
    again = method.predict(nano, image, BOXES_256, generator=generator(0))
    other = method.predict(nano, image, BOXES_256, generator=generator(1))
    for key in ("entropy", "mutual_information", "std"):
        assert torch.equal(first.maps[key], again.maps[key])
    assert not torch.equal(first.maps["std"], other.maps["std"])
    assert first.prob.shape == (3, nano.mask_size, nano.mask_size) and first.orig_hw == (200, 300)
    torch.testing.assert_close(first.logits, torch.logit(first.prob, eps=1e-7), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="generator"):
        method.predict(nano, image, BOXES_256)


def test_tta_with_identity_augmentation_equals_the_baseline(nano, image):
    baseline = make_method("baseline").predict(nano, image, BOXES_256)
    result = make_method("tta", T=3, transform="identity", encoder_batch=2).predict(nano, image, BOXES_256, generator=generator())
    torch.testing.assert_close(result.prob, baseline.prob, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.uncertainty, baseline.uncertainty, atol=1e-4, rtol=0)
    assert result.maps["std"].max() < 1e-4


def test_tta_augments_the_resized_input_and_can_include_the_clean_copy(nano, image):
    clean = nano.to_input(image)
    method = make_method("tta", T=4, include_clean=True)
    inputs = method.augmented_inputs(clean, generator())
    assert inputs.shape == (4, 3, 256, 256) and torch.equal(inputs[0], clean)
    assert inputs.min() >= 0 and inputs.max() <= 1 and not torch.equal(inputs[1], clean)
    # The clean copy may reuse the encoding shared by the other methods; the result is the same.
    with torch.inference_mode():
        encoding = nano.encode(image)
    reused = method.predict(nano, image, BOXES_256, encoding=encoding, generator=generator())
    fresh = method.predict(nano, image, BOXES_256, generator=generator())
    torch.testing.assert_close(reused.prob, fresh.prob, atol=1e-5, rtol=0)
