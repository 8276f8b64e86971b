"""The model registry and the predictor core (issue: foundation)."""

import socket
import time

import numpy as np
import pytest
import torch
from conftest import smooth_image

from uncertsam_utils.model import (
    CheckpointMismatchError,
    DownloadError,
    Predictor,
    boxes_to_input_frame,
    download_checkpoint,
    load_model,
)
from uncertsam_utils.model.images import to_rgb_uint8


def random_boxes(rng, n, size):
    lo = rng.uniform(0, 0.5 * size, (n, 2))
    hi = lo + rng.uniform(0.15 * size, 0.45 * size, (n, 2))
    return np.concatenate([lo, hi], axis=1).astype(np.float32)


def test_random_hiera_tiny_builds_and_matches_the_sam2_image_predictor(tiny_random, rng):
    """Our core gives the same low-res logits as the sam2 package's own image predictor."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    assert "RANDOM WEIGHTS" in tiny_random.label
    assert sum(p.numel() for p in tiny_random.model.parameters()) == 38_962_498
    image = smooth_image(rng, 480, 640)  # non-square: checks the squash and the box scaling
    box_orig = np.array([100.0, 80.0, 400.0, 300.0], dtype=np.float32)
    predictor = Predictor(tiny_random.model)
    reference = SAM2ImagePredictor(tiny_random.model)
    with torch.inference_mode():
        ours = predictor.decode(predictor.encode(image), boxes=boxes_to_input_frame(box_orig[None], (480, 640), 1024))
        reference.set_image(image)
        _, _, ref_low = reference.predict(box=box_orig, multimask_output=False, return_logits=True)
    assert ours.logits.shape == (1, 256, 256)
    np.testing.assert_allclose(ours.logits.numpy(), ref_low, atol=2e-3, rtol=1e-3)


def test_logits_equal_U_transpose_W_h_plus_b_on_both_models(nano_random, tiny_random, rng):
    for loaded, size in ((nano_random, 256), (tiny_random, 1024)):
        predictor = Predictor(loaded.model)
        with torch.no_grad():
            encoding = predictor.encode(smooth_image(rng, 200, 300))
            out = predictor.decode(encoding, boxes=random_boxes(rng, 3, size)[None], return_internals=True)
            layer = predictor.treated_layer
            hyper = out.h @ layer.weight.T + layer.bias
            rebuilt = torch.einsum("...c,...chw->...hw", hyper, out.U)
        assert out.h.shape[-1] == layer.in_features and out.U.shape[-3] == layer.out_features
        assert out.U.shape[-2:] == out.logits.shape[-2:]
        torch.testing.assert_close(rebuilt, out.logits, atol=1e-4, rtol=1e-5)


def test_batched_decode_equals_one_by_one(nano_random, rng):
    predictor = Predictor(nano_random.model)
    boxes = random_boxes(rng, 12, 256).reshape(3, 4, 4)  # objects x perturbations
    with torch.inference_mode():
        encoding = predictor.encode(smooth_image(rng, 256, 256))
        batched = predictor.decode(encoding, boxes=boxes)
        single = torch.stack([predictor.decode(encoding, boxes=box[None]).logits[0] for box in boxes.reshape(-1, 4)])
    assert batched.logits.shape == (3, 4, 64, 64) and batched.iou.shape == (3, 4)
    torch.testing.assert_close(batched.logits.reshape(12, 64, 64), single, atol=1e-5, rtol=1e-5)


def test_several_images_decode_like_each_image_alone(nano_random, rng):
    """The TTA path: T encoded images, prompts routed by image_index."""
    predictor = Predictor(nano_random.model)
    images = [smooth_image(rng, 256, 256) for _ in range(3)]
    boxes = random_boxes(rng, 2, 256)
    with torch.inference_mode():
        joint = predictor.encode(images)
        index = torch.arange(3)[:, None].expand(3, 2)
        together = predictor.decode(joint, boxes=np.broadcast_to(boxes, (3, 2, 4)), image_index=index)
        alone = torch.stack([predictor.decode(predictor.encode(im, use_cache=False), boxes=boxes).logits for im in images])
    torch.testing.assert_close(together.logits, alone, atol=1e-4, rtol=1e-4)


def test_points_and_boxes_together_and_mask_prompt_change_the_output(nano_random, rng):
    predictor = Predictor(nano_random.model)
    boxes = random_boxes(rng, 2, 256)
    points = rng.uniform(0, 255, (2, 3, 2))
    labels = np.array([[1, 0, 1], [1, 1, 0]])
    with torch.inference_mode():
        encoding = predictor.encode(smooth_image(rng, 256, 256))
        box_only = predictor.decode(encoding, boxes=boxes).logits
        both = predictor.decode(encoding, boxes=boxes, points=points, point_labels=labels).logits
        with_mask = predictor.decode(encoding, boxes=boxes, mask_logits=torch.full((2, 64, 64), 5.0)).logits
    assert both.shape == box_only.shape == with_mask.shape
    assert not torch.allclose(both, box_only) and not torch.allclose(with_mask, box_only)
    with pytest.raises(ValueError, match="point_labels"):
        predictor.decode(encoding, points=points)


def test_encode_caches_the_last_image(nano_random, rng):
    predictor = Predictor(nano_random.model)
    a, b = smooth_image(rng, 100, 120), smooth_image(rng, 100, 120)
    with torch.inference_mode():
        first = predictor.encode(a)
        assert predictor.encode(a.copy()) is first
        assert predictor.encode(b) is not first


def test_single_mask_output_comes_from_token_zero(nano_random, rng):
    predictor = Predictor(nano_random.model)
    assert predictor.decoder.dynamic_multimask_via_stability is False
    with torch.inference_mode():
        encoding = predictor.encode(smooth_image(rng, 256, 256))
    # Token 0 of the decoder's full output, computed by the package's own predict_masks.
    boxes = torch.as_tensor(random_boxes(np.random.default_rng(5), 2, 256))
    with torch.inference_mode():
        ours = predictor.decode(encoding, boxes=boxes)
        coords = boxes.reshape(-1, 2, 2)
        labels = torch.tensor([[2, 3]]).expand(2, 2).int()
        sparse, dense = predictor.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        all_masks, _, _, _ = predictor.decoder.predict_masks(
            image_embeddings=encoding.image_embed,
            image_pe=predictor.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=True,
            high_res_features=encoding.high_res_feats,
        )
    torch.testing.assert_close(ours.logits, all_masks[:, 0], atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip_gives_identical_logits(tmp_path, nano_random, rng):
    path = tmp_path / "nano.pt"
    torch.save({"model": nano_random.model.state_dict()}, path)
    reloaded = load_model("nano", path, seed=99)  # a different init seed: weights must come from the file
    assert not reloaded.random_weights and reloaded.sha256 and "RANDOM" not in reloaded.label
    image, boxes = smooth_image(rng, 256, 256), random_boxes(rng, 3, 256)
    a, b = Predictor(nano_random.model), Predictor(reloaded.model)
    with torch.inference_mode():
        torch.testing.assert_close(a.predict(image, boxes).logits, b.predict(image, boxes).logits, atol=0, rtol=0)


def test_random_weights_are_seeded(rng):
    one, two, other = (load_model("nano", "random", seed=s) for s in (3, 3, 4))
    w = lambda m: m.model.sam_mask_decoder.output_hypernetworks_mlps[0].layers[-1].weight  # noqa: E731
    assert torch.equal(w(one), w(two)) and not torch.equal(w(one), w(other))


def test_mismatched_checkpoint_names_file_and_config(tmp_path, nano_random):
    path = tmp_path / "nano_weights.pt"
    torch.save({"model": nano_random.model.state_dict()}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_model("sam2.1_hiera_tiny", path)
    message = str(err.value)
    assert str(path) in message and "sam2.1_hiera_t.yaml" in message and "shape differs" in message
    assert "a Hiera trunk of width 24" in message


def test_unreadable_or_wrong_format_checkpoints_are_clear_errors(tmp_path, nano_random):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="cannot read checkpoint .*corrupt.pt"):
        load_model("nano", corrupt)
    bare = tmp_path / "bare_state_dict.pt"
    torch.save(nano_random.model.state_dict(), bare)
    with pytest.raises(CheckpointMismatchError, match=r"not in the official \{'model': state_dict\} format"):
        load_model("nano", bare)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("nano", tmp_path / "missing.pt")


def test_missing_official_checkpoint_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("UNCERTSAM_CHECKPOINTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="uncertsam checkpoints download sam2_hiera_large"):
        load_model("sam2_hiera_large")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the with-block ends


def test_offline_download_fails_fast_with_placement_advice(tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download_checkpoint("sam2.1_hiera_tiny", tmp_path, base_url=f"http://127.0.0.1:{_closed_port()}", timeout=3)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert "place it at" in message and str(tmp_path / "sam2.1_hiera_tiny.pt") in message
    assert "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69" in message
    assert not any(tmp_path.iterdir())


def test_download_resumes_and_verifies_the_hash(tmp_path, monkeypatch):
    """A local HTTP server stands in for the release server; a bad hash is rejected."""
    import functools
    import hashlib
    import http.server
    import threading

    from uncertsam_utils.model import checkpoints

    payload = bytes(range(256)) * 4000
    served = tmp_path / "served"
    served.mkdir()
    (served / "sam2.1_hiera_tiny.pt").write_bytes(payload)
    info = checkpoints.CHECKPOINTS["sam2.1_hiera_tiny"]
    good = checkpoints.CheckpointInfo(**{**info.__dict__, "sha256": hashlib.sha256(payload).hexdigest()})

    class RangeHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # minimal Range support, as the release server has
            data = (served / self.path.lstrip("/")).read_bytes()
            start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        target = tmp_path / "out"
        target.mkdir()
        (target / "sam2.1_hiera_tiny.pt.part").write_bytes(payload[:1000])  # an interrupted download
        monkeypatch.setitem(checkpoints.CHECKPOINTS, "sam2.1_hiera_tiny", good)
        path = download_checkpoint("sam2.1_hiera_tiny", target, base_url=url, progress=False)
        assert path.read_bytes() == payload
        monkeypatch.setitem(checkpoints.CHECKPOINTS, "sam2.1_hiera_tiny", info)  # the real hash: this payload fails
        path.unlink()
        with pytest.raises(DownloadError, match="does not match"):
            download_checkpoint("sam2.1_hiera_tiny", target, base_url=url, progress=False)
        assert not any(target.iterdir())
    finally:
        server.shutdown()


@pytest.mark.parametrize("kind", ["gray2d", "gray3d", "rgba", "uint16_rgb", "uint16_gray"])
def test_image_layouts_convert_and_predict_like_rgb(kind, nano_random, rng):
    rgb = smooth_image(rng, 120, 160)
    gray = rgb[:, :, 0]
    variants = {
        "gray2d": (gray, np.repeat(gray[:, :, None], 3, 2)),
        "gray3d": (gray[:, :, None], np.repeat(gray[:, :, None], 3, 2)),
        "rgba": (np.concatenate([rgb, np.full((120, 160, 1), 7, np.uint8)], 2), rgb),
        "uint16_rgb": (rgb.astype(np.uint16) * 257, rgb),
        "uint16_gray": (gray.astype(np.uint16) * 257, np.repeat(gray[:, :, None], 3, 2)),
    }
    image, expected = variants[kind]
    converted = to_rgb_uint8(image)
    assert converted.dtype == np.uint8 and converted.shape == (120, 160, 3)
    np.testing.assert_array_equal(converted, expected)
    predictor = Predictor(nano_random.model)
    box = random_boxes(rng, 1, 256)
    with torch.inference_mode():
        torch.testing.assert_close(predictor.predict(image, box).logits, predictor.predict(expected, box).logits)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((10, 10, 3), np.float32), "unsupported image dtype float32"),
        (np.zeros((10, 10, 2), np.uint8), r"unsupported image shape \(10, 10, 2\)"),
        (np.zeros((2, 10, 10, 3), np.uint8), "unsupported image shape"),
    ],
)
def test_unsupported_images_are_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        to_rgb_uint8(bad)


def test_upsample_returns_original_size_and_keeps_constants():
    maps = torch.full((2, 3, 64, 64), 0.25)
    up = Predictor.upsample(maps, (97, 131))
    assert up.shape == (2, 3, 97, 131)
    torch.testing.assert_close(up, torch.full_like(up, 0.25))
