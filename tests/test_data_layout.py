"""The UncertSAM layout: write_split -> SplitReader round trip, boxes, and every bad-input case."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from uncertsam_utils.data import DATASETS, SPLITS, DataError, Sample, SplitReader, list_datasets, write_split
from uncertsam_utils.data.layout import list_splits
from uncertsam_utils.data.rle import encode_mask
from uncertsam_utils.data.resize import resize_masks


def _smooth_image(rng, h, w):
    coarse = rng.random((h // 8 + 2, w // 8 + 2, 3))
    return (np.kron(coarse, np.ones((8, 8, 1)))[:h, :w] * 255).astype(np.uint8)


def _blob(rng, h, w):
    mask = np.zeros((h, w), bool)
    y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
    mask[y0:y0 + int(rng.integers(4, h // 2)), x0:x0 + int(rng.integers(4, w // 2))] = True
    mask &= rng.random((h, w)) < 0.9           # ragged, so the RLE has many runs
    return mask


def _items(rng, ids=(3, 1, 7), shapes=((40, 60), (33, 47), (64, 64))):
    out = []
    for image_id, (h, w) in zip(ids, shapes):
        masks = [_blob(rng, h, w) for _ in range(int(rng.integers(1, 4)))]
        out.append((image_id, _smooth_image(rng, h, w), masks))
    return out


def _dataset_json(root, dataset="ISTD", split="test") -> Path:
    return Path(root) / dataset / split / "annotations" / "dataset.json"


def _rewrite_annotations(root, edit, dataset="ISTD", split="test"):
    path = _dataset_json(root, dataset, split)
    content = json.loads(path.read_text())
    edit(content["annotations"])
    path.write_text(json.dumps(content))


def _written(tmp_path, rng, **kwargs):
    items = _items(rng, **kwargs)
    write_split(tmp_path, "ISTD", "test", items)
    return items


# ------------------------------------------------------------------------------------------ round trip

def test_round_trip_gives_identical_masks_and_close_images(tmp_path, rng):
    items = _written(tmp_path, rng)
    reader = SplitReader(tmp_path, "ISTD", "test")
    assert reader.image_ids == [1, 3, 7] and len(reader) == 3
    by_id = {image_id: (image, masks) for image_id, image, masks in items}
    all_mask_ids = []
    for sample in reader:
        image, masks = by_id[sample.image_id]
        assert isinstance(sample, Sample)
        assert (sample.dataset, sample.split) == ("ISTD", "test")
        assert sample.image_path == tmp_path / "ISTD" / "test" / "images" / f"{sample.image_id:08d}.jpg"
        assert sample.image.dtype == np.uint8 and sample.image.shape == image.shape
        assert np.abs(sample.image.astype(int) - image).mean() < 3          # JPEG q95 of a smooth image
        assert sample.masks.dtype == bool and sample.masks.shape == (len(masks),) + image.shape[:2]
        np.testing.assert_array_equal(sample.masks, np.stack(masks))
        assert sample.mask_ids.dtype == np.int64
        all_mask_ids += sample.mask_ids.tolist()
    assert len(set(all_mask_ids)) == len(all_mask_ids) == sum(len(m) for _, _, m in items)
    assert reader.report.kept_masks == len(all_mask_ids) and len(reader.report) == 0
    assert "nothing skipped" in reader.report.summary()


def test_writer_is_deterministic_and_sorts_keys(tmp_path, rng):
    items = _items(rng)
    write_split(tmp_path / "a", "ISTD", "test", items)
    write_split(tmp_path / "b", "ISTD", "test", items)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 4
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    text = _dataset_json(tmp_path / "a").read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")) + "\n"
    ann = json.loads(text)["annotations"][0]
    assert set(ann) == {"id", "image_id", "segmentation", "area"} and isinstance(ann["segmentation"]["counts"], str)


def test_sample_indexing_and_lookup_by_id(tmp_path, rng):
    _written(tmp_path, rng)
    reader = SplitReader(tmp_path, "ISTD", "test")
    assert reader[-1].image_id == 7 and reader[0].image_id == 1
    assert reader.load(3).image_id == 3
    with pytest.raises(IndexError):
        reader[3]
    with pytest.raises(KeyError):
        reader.load(2)


def test_any_folder_in_the_layout_reads_the_same(tmp_path, rng):
    items = _items(rng)
    write_split(tmp_path, "SA1B", "fit", items)
    write_split(tmp_path, "ISTD", "val", items[:1])
    (tmp_path / "not_a_dataset").mkdir()
    (tmp_path / ".hidden" / "x" / "annotations").mkdir(parents=True)
    (tmp_path / ".hidden" / "x" / "annotations" / "dataset.json").write_text('{"annotations": []}')
    reader = SplitReader(tmp_path, "SA1B", "fit")
    assert len(reader) == 3 and reader[0].split == "fit"
    assert list_datasets(tmp_path) == ["ISTD", "SA1B"]
    assert list_splits(tmp_path, "SA1B") == ["fit"]
    assert list_datasets(tmp_path / "missing") == []
    assert DATASETS == ("BIG", "COIFT", "COD10K-v3", "MSD_Spleen", "ISTD", "SBU-shadow", "Flare7K", "Trans10K")
    assert SPLITS == ("train", "val", "test")


def test_split_order_puts_standard_splits_first(tmp_path, rng):
    items = _items(rng)[:1]
    for split in ("test", "fit", "train", "val"):
        write_split(tmp_path, "D", split, items)
    assert list_splits(tmp_path, "D") == ["train", "val", "test", "fit"]


# ------------------------------------------------------------------------------------------ boxes

def test_boxes_are_tight_boxes_of_the_paper_resized_masks(tmp_path, rng):
    image = _smooth_image(rng, 100, 100)
    block = np.zeros((100, 100), bool)
    block[10:20, 30:50] = True
    write_split(tmp_path, "ISTD", "test", [(0, image, [block, _blob(rng, 100, 100)])])
    sample = SplitReader(tmp_path, "ISTD", "test")[0]
    boxes = sample.boxes(200)
    assert boxes.shape == (2, 4) and boxes.dtype == np.float32
    np.testing.assert_array_equal(boxes[0], [60, 20, 99, 39])       # worked out in test_data_resize
    ys, xs = np.nonzero(resize_masks(sample.masks[1:], 1024)[0])
    np.testing.assert_array_equal(sample.boxes(1024)[1], [xs.min(), ys.min(), xs.max(), ys.max()])


def test_boxes_raise_for_a_mask_that_vanishes_at_that_size(tmp_path, rng):
    dot = np.zeros((100, 100), bool)
    dot[50, 50] = True
    write_split(tmp_path, "ISTD", "test", [(5, _smooth_image(rng, 100, 100), [dot])])
    sample = SplitReader(tmp_path, "ISTD", "test", min_mask_pixels=1)[0]
    assert sample.boxes(1024).shape == (1, 4)                      # upsampled: still there
    with pytest.raises(DataError, match=r"00000005\.jpg.*\[1\].*vanish"):
        sample.boxes(16)


# ------------------------------------------------------------------------------------------ writer refusals

def test_writer_refuses_bad_items_and_leaves_nothing_behind(tmp_path, rng):
    image = _smooth_image(rng, 20, 20)
    good = _blob(rng, 20, 20)
    cases = [
        ([(1, image, [good]), (1, image, [good])], "given twice"),
        ([(1, image, [])], "no masks"),
        ([(1, image, [np.zeros((20, 20), bool)])], "empty"),
        ([(1, image, [good[:10]])], "shape"),
        ([(1, image.astype(np.float32), [good])], "uint8"),
        ([(-1, image, [good])], "non-negative"),
        ([(1, image, [good.astype(np.uint8) * 2])], "bool"),
    ]
    for items, message in cases:
        with pytest.raises(DataError, match=message):
            write_split(tmp_path, "ISTD", "test", items)
        assert not (tmp_path / "ISTD" / "test").exists()
        assert [p.name for p in (tmp_path / "ISTD").iterdir()] == []   # staging folder removed too
    with pytest.raises(DataError, match="invalid split"):
        write_split(tmp_path, "ISTD", "../x", [(1, image, [good])])


def test_writer_does_not_replace_a_split_unless_asked(tmp_path, rng):
    first, second = _items(rng), _items(rng, ids=(10,), shapes=((30, 30),))
    write_split(tmp_path, "ISTD", "test", first)
    with pytest.raises(DataError, match="already exists"):
        write_split(tmp_path, "ISTD", "test", second)
    assert SplitReader(tmp_path, "ISTD", "test").image_ids == [1, 3, 7]
    written = write_split(tmp_path, "ISTD", "test", second, overwrite=True)
    assert written.num_images == 1 and written.num_masks == len(second[0][2])
    assert SplitReader(tmp_path, "ISTD", "test").image_ids == [10]
    assert sorted(p.name for p in (tmp_path / "ISTD" / "test" / "images").iterdir()) == ["00000010.jpg"]


def test_writer_accepts_integer_01_masks(tmp_path, rng):
    image = _smooth_image(rng, 20, 20)
    mask = _blob(rng, 20, 20)
    write_split(tmp_path, "ISTD", "test", [(np.int64(4), image, [mask.astype(np.uint8)])])
    np.testing.assert_array_equal(SplitReader(tmp_path, "ISTD", "test")[0].masks[0], mask)


# ------------------------------------------------------------------------------------------ bad input: images

def test_truncated_image_fails_only_when_loaded_and_names_the_file(tmp_path, rng):
    _written(tmp_path, rng, shapes=((240, 320), (33, 47), (64, 64)))
    path = tmp_path / "ISTD" / "test" / "images" / "00000003.jpg"
    content = path.read_bytes()
    assert len(content) > 4000                                 # headers end well before the cut below
    path.write_bytes(content[: len(content) // 2])
    reader = SplitReader(tmp_path, "ISTD", "test")           # lazy: building does not decode images
    assert reader.load(1).image_id == 1 and reader.load(7).image_id == 7
    with pytest.raises(DataError, match=r"00000003\.jpg.*truncated"):
        reader.load(3)
    reader.check_images(decode=False)                         # the header is intact
    with pytest.raises(DataError, match=r"(?s)1 bad image.*00000003\.jpg"):
        reader.check_images()
    path.write_bytes(content[:300])                           # cut inside the header
    with pytest.raises(DataError, match=r"00000003\.jpg: not a readable image, or truncated"):
        reader.load(3)


def test_non_jpeg_image_is_an_error(tmp_path, rng):
    _written(tmp_path, rng)
    path = tmp_path / "ISTD" / "test" / "images" / "00000007.jpg"
    Image.fromarray(_smooth_image(rng, 64, 64)).save(path, format="PNG")
    reader = SplitReader(tmp_path, "ISTD", "test")
    with pytest.raises(DataError, match=r"00000007\.jpg.*expected a JPEG.*PNG"):
        reader.load(7)
    path.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match=r"00000007\.jpg.*not a readable image"):
        reader.load(7)


def test_rle_size_different_from_the_image_is_an_error(tmp_path, rng):
    _written(tmp_path, rng)

    def shrink(annotations):
        ann = next(a for a in annotations if a["image_id"] == 3)
        ann["segmentation"] = encode_mask(np.ones((10, 12), bool))
        ann["id"] = 99

    _rewrite_annotations(tmp_path, shrink)
    reader = SplitReader(tmp_path, "ISTD", "test")
    with pytest.raises(DataError, match=r"00000003\.jpg: annotation 99 .* 10x12, but the image is 40x60"):
        reader.load(3)
    with pytest.raises(DataError, match=r"00000003\.jpg"):
        reader.check_images(decode=False)
    reader.load(1)


def test_image_file_names_must_be_unique_integer_ids(tmp_path, rng):
    _written(tmp_path, rng)
    images = tmp_path / "ISTD" / "test" / "images"
    (images / "7.jpg").write_bytes((images / "00000007.jpg").read_bytes())
    with pytest.raises(DataError, match="both have image id 7"):
        SplitReader(tmp_path, "ISTD", "test")
    (images / "7.jpg").rename(images / "seven.jpg")
    with pytest.raises(DataError, match=r"seven\.jpg: image file names must be integer ids"):
        SplitReader(tmp_path, "ISTD", "test")


def test_hidden_and_non_jpg_files_are_counted_skips(tmp_path, rng):
    _written(tmp_path, rng)
    images = tmp_path / "ISTD" / "test" / "images"
    (images / "._00000001.jpg").write_bytes(b"\x00\x05\x16\x07")       # macOS AppleDouble
    (images / "00000002.png").write_bytes(b"png")
    reader = SplitReader(tmp_path, "ISTD", "test")
    assert reader.image_ids == [1, 3, 7]
    assert reader.report.counts() == {"hidden_file": 1, "not_jpg": 1}
    summary = reader.report.summary()
    assert "._00000001.jpg" in summary and "00000002.png" in summary


# ------------------------------------------------------------------------------------------ bad input: annotations

def test_annotation_without_image_is_a_counted_skip(tmp_path, rng):
    _written(tmp_path, rng)
    (tmp_path / "ISTD" / "test" / "images" / "00000007.jpg").unlink()
    reader = SplitReader(tmp_path, "ISTD", "test")
    assert reader.image_ids == [1, 3]
    missing = [s for s in reader.report.skips if s.reason == "missing_image"]
    assert missing and {s.image_id for s in missing} == {7}
    assert "00000007.jpg" in reader.report.summary()


def test_empty_small_and_vanishing_masks_are_counted_skips(tmp_path, rng):
    big = np.zeros((2000, 2400), bool)
    big[100:900, 200:1200] = True
    grid = np.zeros((2000, 2400), bool)
    grid[1000:1090:3, 1000:1090:3] = True          # 900 px, but 1 in 9 density: ~0.11 after the 2x downsample
    tiny = np.zeros((2000, 2400), bool)
    tiny[5:7, 5:8] = True                          # 6 px < 8
    image = np.full((2000, 2400, 3), 128, np.uint8)
    write_split(tmp_path, "BIG", "test", [(1, image, [big, grid, tiny]), (2, image[:50, :50], [big[:50, :50] | True])])

    def add_empty(annotations):
        annotations.append({"id": 100, "image_id": 2, "area": 0, "segmentation": encode_mask(np.zeros((50, 50), bool))})

    _rewrite_annotations(tmp_path, add_empty, dataset="BIG")
    reader = SplitReader(tmp_path, "BIG", "test")
    assert reader.report.counts() == {"vanishes_after_resize": 1, "small_mask": 1, "empty_mask": 1}
    reasons = {s.annotation_id: s.reason for s in reader.report.skips}
    assert reasons == {2: "vanishes_after_resize", 3: "small_mask", 100: "empty_mask"}
    assert reader.load(1).mask_ids.tolist() == [1]
    summary = reader.report.summary()
    assert "00000001.jpg (annotation 2" in summary and "00000002.jpg (annotation 100" in summary

    unchecked = SplitReader(tmp_path, "BIG", "test", min_mask_pixels=1, resize_check_size=None)
    assert unchecked.load(1).mask_ids.tolist() == [1, 2, 3] and unchecked.report.counts() == {"empty_mask": 1}
    upsampled = SplitReader(tmp_path, "BIG", "test", resize_check_size=4096)
    assert upsampled.load(1).mask_ids.tolist() == [1, 2]
    assert len(reader[0].boxes(1024)) == 1


def test_image_with_no_objects_is_a_counted_skip(tmp_path, rng):
    _written(tmp_path, rng)
    def drop_image_3(annotations):
        annotations[:] = [a for a in annotations if a["image_id"] != 3]

    _rewrite_annotations(tmp_path, drop_image_3)
    tiny = np.zeros((33, 47), bool)
    tiny[0, 0] = True

    def only_tiny_for_1(annotations):
        for a in annotations:
            if a["image_id"] == 1:
                a["segmentation"] = encode_mask(tiny)

    _rewrite_annotations(tmp_path, only_tiny_for_1)
    reader = SplitReader(tmp_path, "ISTD", "test")
    assert reader.image_ids == [7]
    no_objects = {s.image_id: s.detail for s in reader.report.skips if s.reason == "no_objects"}
    assert no_objects[3] == "no annotations" and no_objects[1].startswith("all ")
    with pytest.raises(KeyError, match="skipped"):
        reader.load(3)


def test_duplicate_annotation_ids_are_an_error(tmp_path, rng):
    _written(tmp_path, rng)

    def duplicate(annotations):
        annotations[1]["id"] = annotations[0]["id"]

    _rewrite_annotations(tmp_path, duplicate)
    with pytest.raises(DataError, match=r"dataset\.json: annotation id 1 is used twice"):
        SplitReader(tmp_path, "ISTD", "test")


@pytest.mark.parametrize("content, message", [
    (b'{"annotations": [', "not valid JSON"),
    (b"\xff\xfe garbage", "not valid JSON"),
    (b'[1, 2]', "'annotations' list"),
    (b'{"images": []}', "'annotations' list"),
    (b'{"annotations": [5]}', "#0 is not an object"),
    (b'{"annotations": [{"image_id": 1, "segmentation": {}}]}', "'id' must be"),
    (b'{"annotations": [{"id": 1, "image_id": "1", "segmentation": {}}]}', "'image_id' must be"),
    (b'{"annotations": [{"id": 1, "image_id": 1}]}', "no 'segmentation'"),
    (b'{"annotations": [{"id": 1, "image_id": 1, "segmentation": {"size": [40, 60], "counts": "@@@"}}]}', "base64"),
    (b'{"annotations": [{"id": 1, "image_id": 1, "segmentation": {"size": [40, 60], "counts": "'
     + base64.b64encode(b"62304") + b'"}}]}', "cover"),
])
def test_malformed_dataset_json_is_an_error_naming_the_file(tmp_path, rng, content, message):
    _written(tmp_path, rng)
    _dataset_json(tmp_path).write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        SplitReader(tmp_path, "ISTD", "test")
    assert str(_dataset_json(tmp_path)) in str(info.value)


def test_missing_or_unreadable_files_are_errors(tmp_path, rng):
    with pytest.raises(DataError, match="split folder not found"):
        SplitReader(tmp_path, "ISTD", "test")
    _written(tmp_path, rng)
    path = _dataset_json(tmp_path)
    path.unlink()
    with pytest.raises(DataError, match=r"dataset\.json: annotation file not found"):
        SplitReader(tmp_path, "ISTD", "test")
    path.mkdir()                                     # a directory where the file should be: unreadable
    with pytest.raises(DataError, match=r"dataset\.json: cannot read"):
        SplitReader(tmp_path, "ISTD", "test")
