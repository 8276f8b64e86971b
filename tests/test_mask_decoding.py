"""The restructured mask decoder (model/mask_decoding.py) against the ``sam2`` package's own
``MaskDecoder.predict_masks``: same outputs, internals and gradients up to float rounding."""

import numpy as np
import pytest
import torch

from uncertsam_utils.model import Predictor, load_model

from conftest import smooth_image

FIELDS = ("all_logits", "all_iou", "object_score", "h", "U", "image_tokens", "mask_token")


@pytest.fixture(scope="module")
def nano_shipped():
    return load_model("nano", None)


def _prompts(size: int, count: int, seed: int):
    g = np.random.default_rng(seed)
    corners = np.sort(g.uniform(0, size - 1, (count, 2, 2)), axis=1)  # (count, {tl, br}, {x, y})
    return torch.tensor(corners.reshape(count, 4), dtype=torch.float32)


def _both(loaded):
    return Predictor(loaded.model), Predictor(loaded.model, decoder="sam2")


def _assert_same(fast, reference, rtol=2e-5):
    for name in FIELDS:
        a, b = getattr(fast, name), getattr(reference, name)
        assert a.shape == b.shape, name
        scale = b.abs().max().item() + 1e-6
        assert (a - b).abs().max().item() <= rtol * scale, f"{name}: {(a - b).abs().max().item()} vs scale {scale}"


@pytest.mark.parametrize("model", ["nano_shipped", "nano_random", "tiny_random"])
def test_restructured_decoder_equals_the_package_decoder(model, request, one_thread):
    loaded = request.getfixturevalue(model)
    fast, reference = _both(loaded)
    size, m = fast.image_size, fast.mask_size
    g = np.random.default_rng(0)
    images = [smooth_image(g, 120, 160), smooth_image(g, 90, 70)]
    boxes = _prompts(size, 5, 1)
    points = torch.tensor(g.uniform(0, size - 1, (5, 2, 2)), dtype=torch.float32)
    labels = torch.tensor([[1, 0], [1, 1], [0, 1], [1, 0], [1, 1]])
    masks = torch.tensor(g.normal(0, 4, (5, m, m)), dtype=torch.float32)
    index = torch.tensor([1, 0, 1, 1, 0])
    with torch.inference_mode():
        one, two = fast.encode(images[0]), fast.encode(images, use_cache=False)
        cases = [
            (one, dict(boxes=boxes)),  # shared first block, one image
            (one, dict(boxes=boxes[:1])),  # a single prompt
            (one, dict(boxes=boxes, mask_logits=masks)),  # per-prompt image tokens from the first block on
            (one, dict(points=points, point_labels=labels)),
            (one, dict(boxes=boxes, points=points, point_labels=labels)),
            (two, dict(boxes=boxes, image_index=index)),  # shared per image, gathered per prompt
            (two, dict(boxes=boxes, mask_logits=masks, image_index=index)),
            (two, dict(boxes=boxes.view(5, 1, 4).expand(5, 3, 4), image_index=index[:, None])),  # lead shape (5, 3)
        ]
        for encoding, prompts in cases:
            kwargs = dict(return_all_tokens=True, return_internals=True, return_tokens=True, **prompts)
            _assert_same(fast.decode(encoding, **kwargs), reference.decode(encoding, **kwargs))


def test_restructured_decoder_gradients_match(nano_shipped, one_thread):
    """Training (fusion modules, variance heads) backpropagates through the same decoder."""
    fast, reference = _both(nano_shipped)
    decoder = nano_shipped.model.sam_mask_decoder
    image = smooth_image(np.random.default_rng(3), 100, 100)
    boxes = _prompts(fast.image_size, 4, 2)
    with torch.inference_mode():
        encoding = fast.encode(image)
    dense_shape = (4, decoder.transformer_dim, fast.embed_size, fast.embed_size)
    start = torch.tensor(np.random.default_rng(4).normal(0, 0.1, dense_shape), dtype=torch.float32)
    grads = []
    for predictor in (fast, reference):
        decoder.zero_grad()
        dense = start.clone().requires_grad_(True)
        out = predictor.decode(encoding, boxes=boxes, dense_prompt=dense, return_all_tokens=True)
        loss = (out.all_logits.sigmoid() ** 2).mean() + out.all_iou.sum()
        loss.backward()
        grads.append({"dense": dense.grad.clone(),
                      **{name: p.grad.clone() for name, p in decoder.named_parameters() if p.grad is not None}})
    decoder.zero_grad()
    fast_grads, reference_grads = grads
    # Token-to-image key biases shift every score of a row alike, which softmax ignores: their
    # gradient is zero (rounding noise in the package's decoder), and the factored form does not
    # use them at all. Other key biases have zero gradient too: an absolute floor.
    missing = set(reference_grads) - set(fast_grads)
    assert set(fast_grads) <= set(reference_grads) and len(fast_grads) > 20
    assert all("token_to_image.k_proj.bias" in name for name in missing)
    floor = 1e-5 * max(g.abs().max().item() for g in reference_grads.values())
    for name, reference_grad in reference_grads.items():
        fast_grad = fast_grads.get(name, torch.zeros_like(reference_grad))
        scale = reference_grad.abs().max().item()
        assert (fast_grad - reference_grad).abs().max().item() <= 1e-4 * scale + floor, name


def test_restructured_decoder_is_faster_in_its_work_not_in_a_clock(tiny_random):
    """The rewrite's point, checked without timing: the first block projects each image once, so a
    batch of prompts does not grow the number of e² × C projections."""
    fast = Predictor(tiny_random.model)
    attn = tiny_random.model.sam_mask_decoder.transformer.layers[0].cross_attn_token_to_image
    rows = []
    handle = attn.k_proj.register_forward_hook(lambda _m, args, _out: rows.append(args[0].shape[0]))
    image = smooth_image(np.random.default_rng(5), 64, 64)
    try:
        with torch.inference_mode():
            encoding = fast.encode(image)
            fast.decode(encoding, boxes=_prompts(fast.image_size, 6, 3))
    finally:
        handle.remove()
    assert rows == [1]  # one projection of one image's tokens for six prompts


def test_decoder_choice_is_checked(nano_random):
    with pytest.raises(ValueError, match="decoder must be one of"):
        Predictor(nano_random.model, decoder="fast")


def test_package_decoder_path_is_the_package_call_bit_for_bit(nano_shipped, one_thread):
    """``decoder="sam2"`` must feed the package's decoder exactly as the nano trainer always has
    (same tensors, same gradient sums), or retraining would not reproduce the shipped weights."""
    predictor = Predictor(nano_shipped.model, decoder="sam2")
    model = nano_shipped.model
    g = np.random.default_rng(6)
    with torch.inference_mode():
        encoding = predictor.encode([smooth_image(g, 80, 90), smooth_image(g, 70, 60)], use_cache=False)
    boxes, index = _prompts(predictor.image_size, 4, 7), torch.tensor([0, 1, 1, 0])
    results = []
    for direct in (False, True):
        model.zero_grad()
        feats = [f.clone().requires_grad_(True) for f in (encoding.image_embed, *encoding.high_res_feats)]
        if direct:
            labels = torch.tensor([[2, 3]]).expand(4, 2).int()
            sparse, dense = predictor.prompt_encoder(points=(boxes.reshape(-1, 2, 2), labels), boxes=None, masks=None)
            logits, iou, _, _ = predictor.decoder.predict_masks(
                image_embeddings=feats[0].index_select(0, index), image_pe=predictor.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, repeat_image=False,
                high_res_features=[f.index_select(0, index) for f in feats[1:]])
        else:
            out = predictor.decode(type(encoding)(feats[0], feats[1:], encoding.orig_hw), boxes=boxes,
                                   image_index=index, return_all_tokens=True)
            logits, iou = out.all_logits, out.all_iou
        (logits.sigmoid().mean() + iou.sum()).backward()
        results.append([logits.detach(), *[f.grad for f in feats],
                        *[p.grad.clone() for p in model.sam_mask_decoder.parameters() if p.grad is not None],
                        *[p.grad.clone() for p in model.sam_prompt_encoder.parameters() if p.grad is not None]])
    model.zero_grad()
    assert len(results[0]) == len(results[1]) > 20
    assert all(torch.equal(a, b) for a, b in zip(*results))
