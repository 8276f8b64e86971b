"""The base64-wrapped COCO RLE of dataset.json: our validating parser against pycocotools."""

import base64

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from uncertsam_utils.data.errors import DataError
from uncertsam_utils.data.rle import decode_box, decode_counts, decode_masks, encode_mask, parse_segmentation


def _random_mask(rng, h, w):
    kind = rng.integers(3)
    if kind == 0:                                   # salt and pepper: many short runs
        return rng.random((h, w)) < rng.random()
    mask = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 4)):             # blocks: long runs, multi-group numbers, negative deltas
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        mask[y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = True
    return mask


def test_parse_matches_pycocotools_on_random_masks(rng):
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 300, 2))
        mask = _random_mask(rng, h, w)
        seg = encode_mask(mask)
        coco = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert base64.b64decode(seg["counts"]) == coco["counts"] and seg["size"] == [h, w]
        parsed = parse_segmentation(seg, "test")
        assert parsed.area == int(mask_utils.area(coco)) == int(mask.sum())
        runs = decode_counts(coco["counts"])
        assert runs.sum() == h * w and (runs[1:] > 0).all()
        if mask.any():
            ys, xs = np.nonzero(mask)
            assert parsed.bbox == (ys.min(), xs.min(), ys.max(), xs.max())
            x, y, bw, bh = mask_utils.toBbox(coco)
            assert parsed.bbox == (y, x, y + bh - 1, x + bw - 1)
        else:
            assert parsed.bbox is None
        np.testing.assert_array_equal(decode_masks([parsed])[0], mask)


def test_decode_box_equals_dense_window(rng):
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        mask = _random_mask(rng, h, w)
        parsed = parse_segmentation(encode_mask(mask), "test")
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = int(rng.integers(y0, h)), int(rng.integers(x0, w))
        np.testing.assert_array_equal(decode_box(parsed, y0, x0, y1, x1), mask[y0:y1 + 1, x0:x1 + 1])


def _seg(counts: bytes, size=(5, 4)):
    return {"size": list(size), "counts": base64.b64encode(counts).decode("ascii")}


@pytest.mark.parametrize("segmentation, message", [
    (_seg(b"0000000"), "cover"),                       # runs do not add up to H*W (pycocotools returns garbage)
    (_seg(b"62305"), "cover"),                         # one pixel too many
    (_seg(b"6230"), "cover"),                          # too few
    (_seg(b"62\x7f04"), "alphabet"),                   # character outside the RLE alphabet
    (_seg(b"6230P"), "middle of a number"),           # continuation bit on the last character
    (_seg(b""), "empty"),
    (_seg(b"62304", size=(4, 5)), None),               # right pixel count, other shape: valid RLE (checked vs image later)
    ({"size": [5, 4], "counts": "not base64!"}, "base64"),
    ({"size": [5, 4], "counts": [6, 2, 3, 2, 7]}, "base64 string"),
    ({"size": [5], "counts": "NjIzMDQ="}, "size"),
    ({"size": [5, 0], "counts": "NjIzMDQ="}, "size"),
    ({"size": [5, True], "counts": "NjIzMDQ="}, "size"),
    ("62304", "object"),
])
def test_malformed_segmentations_are_rejected_with_location(segmentation, message):
    if message is None:
        assert parse_segmentation(segmentation, "here").area == 4
        return
    with pytest.raises(DataError, match=message) as info:
        parse_segmentation(segmentation, "dataset.json annotation #3")
    assert "dataset.json annotation #3" in str(info.value)


def test_known_string_decodes_to_known_runs():
    # 5x4 mask with a 2x2 block at rows 1-2, cols 1-2: column-major runs 6,2,3,2,7 ("62304" in COCO's format).
    np.testing.assert_array_equal(decode_counts(b"62304"), [6, 2, 3, 2, 7])
    mask = np.zeros((5, 4), bool)
    mask[1:3, 1:3] = True
    assert base64.b64decode(encode_mask(mask)["counts"]) == b"62304"
