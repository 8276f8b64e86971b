"""The paper's mask resize (torchvision on uint8 0/1 masks), box prompts, and the vanishing-mask test."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

import uncertsam_utils.data.resize as resize_module
from uncertsam_utils.data.resize import ResizeSurvival, boxes_from_masks, resize_masks
from uncertsam_utils.data.rle import encode_mask, parse_segmentation


def _torchvision_resize(masks, size):
    # What the reference transform does: F.resize on the uint8 object mask, default bilinear + antialias.
    return TF.resize(torch.from_numpy(masks.astype(np.uint8))[:, None], [size, size])[:, 0].numpy().astype(bool)


@pytest.mark.parametrize("h, w, size", [(37, 53, 64), (300, 200, 64), (480, 640, 1024), (64, 64, 64),
                                        (33, 900, 128), (1200, 90, 256)])
def test_resize_matches_torchvision_exactly(rng, h, w, size):
    masks = np.stack([rng.random((h, w)) < p for p in (0.05, 0.3, 0.6)])
    masks[0, h // 3:h // 2, w // 3:w // 2] = True
    np.testing.assert_array_equal(resize_masks(masks, size), _torchvision_resize(masks, size))


def test_boxes_of_a_block_upsampled_by_two_are_known():
    # rows 10-19, cols 30-49 of 100x100, resized to 200: output row i samples input row i/2 - 0.25, so
    # rows 20..39 and cols 60..99 get weight >= 0.75 from the block and all others <= 0.25.
    mask = np.zeros((1, 100, 100), bool)
    mask[0, 10:20, 30:50] = True
    boxes, empty = boxes_from_masks(resize_masks(mask, 200))
    assert not empty.any()
    np.testing.assert_array_equal(boxes, [[60, 20, 99, 39]])
    assert boxes.dtype == np.float32
    same, _ = boxes_from_masks(resize_masks(mask, 100))       # identity resize: the mask's own box
    np.testing.assert_array_equal(same, [[30, 10, 49, 19]])


def test_boxes_match_brute_force_on_torchvision_masks(rng):
    masks = np.stack([rng.random((90, 70)) < 0.02 for _ in range(6)])
    masks[1] = False
    masks[1, 40, 10:60] = True
    boxes, empty = boxes_from_masks(resize_masks(masks, 256))
    reference = _torchvision_resize(masks, 256)
    for k, m in enumerate(reference):
        ys, xs = np.nonzero(m)
        if ys.size == 0:
            assert empty[k] and np.isnan(boxes[k]).all()
        else:
            np.testing.assert_array_equal(boxes[k], [xs.min(), ys.min(), xs.max(), ys.max()])


def _tricky_masks(rng, h, w, count):
    for _ in range(count):
        mask = np.zeros((h, w), bool)
        k = int(rng.integers(1, 12))
        y, x = int(rng.integers(0, h - k)), int(rng.integers(0, w - k))
        mask[y:y + k, x:x + k] = rng.random((k, k)) < rng.random()
        if rng.random() < 0.3:
            mask |= rng.random((h, w)) < 0.002          # sparse specks spread over a large box
        if rng.random() < 0.2:
            mask[y::3, x::3] = True                     # a sparse grid: many pixels, can still vanish
        yield mask


@pytest.mark.parametrize("h, w, size", [(300, 420, 64), (40, 50, 64), (200, 130, 128)])
def test_survival_check_agrees_with_full_resize(rng, h, w, size):
    check = ResizeSurvival(size)
    outcomes = []
    for mask in _tricky_masks(rng, h, w, 80):
        # resize_masks == torchvision is established above; it is much quicker per call
        expected = bool(resize_masks(mask[None], size).any())
        assert check.survives(parse_segmentation(encode_mask(mask), "t")) == expected
        assert check.survives_mask(mask) == expected
        outcomes.append(expected)
    assert any(outcomes) and not all(outcomes)          # both answers occurred


def test_survival_fallback_through_torch_agrees(rng, monkeypatch):
    monkeypatch.setattr(resize_module, "_CROP_COST_FACTOR", -1.0)   # force the full-resize path
    check = ResizeSurvival(64)
    for mask in _tricky_masks(rng, 300, 420, 30):
        assert check.survives_mask(mask) == bool(resize_masks(mask[None], 64).any())


def test_large_dense_masks_are_proven_without_decoding(monkeypatch):
    mask = np.zeros((3000, 2000), bool)
    mask[100:2000, 300:1500] = True
    parsed = parse_segmentation(encode_mask(mask), "t")

    def fail(*args, **kwargs):
        raise AssertionError("decoded although the counting proof suffices")

    monkeypatch.setattr("uncertsam_utils.data.rle.decode_box", fail)
    monkeypatch.setattr("uncertsam_utils.data.rle.decode_masks", fail)
    monkeypatch.setattr(resize_module, "resize_masks", fail)
    assert ResizeSurvival(1024).survives(parsed)


def test_a_single_pixel_vanishes_when_downsampled_but_not_when_upsampled():
    mask = np.zeros((3000, 3000), bool)
    mask[1500, 1500] = True
    parsed = parse_segmentation(encode_mask(mask), "t")
    assert not ResizeSurvival(1024).survives(parsed)
    assert ResizeSurvival(4096).survives(parsed)
    empty = parse_segmentation(encode_mask(np.zeros((5, 5), bool)), "t")
    assert not ResizeSurvival(1024).survives(empty)


@pytest.mark.parametrize("n, size", [(20, 8), (300, 64), (640, 1024), (1024, 1024), (2600, 1024), (7, 1024), (1031, 1024)])
def test_axis_weights_are_torchs_impulse_responses(n, size):
    # Resize unit impulses with torch (width 2, the identity along the width) and compare the weights.
    impulses = torch.zeros((1, n, n, 2))
    impulses[0, torch.arange(n), torch.arange(n), :] = 1.0
    torch_weights = torch.nn.functional.interpolate(impulses, size=(size, 2), mode="bilinear",
                                                    align_corners=False, antialias=True)[0, :, :, 0].numpy().T
    axis = resize_module._axis_weights(n, size)
    ours = axis.dense(np.arange(size), 0, n - 1)
    np.testing.assert_allclose(ours, torch_weights, atol=2e-6, rtol=0)
    np.testing.assert_allclose(axis.colsum, torch_weights.sum(axis=0), atol=1e-4)
    support = torch_weights > 1e-6
    assert (axis.lo <= support.argmax(axis=1)).all()
    assert (axis.hi >= n - 1 - support[:, ::-1].argmax(axis=1)).all()
