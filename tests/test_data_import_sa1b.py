"""SA-1B -> the fit set: generated native folders (sa_<id>.jpg beside sa_<id>.json with plain COCO RLE),
the seeded selection, SA-1B's own image ids, and bad input as errors naming the file."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image

from uncertsam_utils.data import DataError, SplitReader
from uncertsam_utils.data.importers import import_dataset
from uncertsam_utils.data.layout import list_splits

H, W = 48, 64
IDS = {"sa_000000": [3, 11, 25, 40], "sa_000001": [101, 102, 117, 150], ".": [7, 230, 231, 999]}   # "." = flat


def _rect(y0, y1, x0, x1, shape=(H, W)):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _masks(image_id: int, shape=(H, W)):
    """[kept, kept, too small (20 px)]: the first two depend on the id, so every image is distinct."""
    k = image_id % 7
    return [_rect(2, 20 + k, 3, 30, shape), _rect(25, 40, 10 + k, 60, shape), _rect(44, 46, 0, 10, shape)]


def _coco(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _write(folder: Path, sa_id: int, masks=None, shape=(H, W), **image_fields):
    """sa_<sa_id>.jpg and sa_<sa_id>.json in SA-1B's format; ``image_fields`` override the image record."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sa_id)
    coarse = rng.integers(30, 220, (-(-shape[0] // 8), -(-shape[1] // 8), 3))
    pixels = np.kron(coarse, np.ones((8, 8, 1))).astype(np.uint8)[: shape[0], : shape[1]]
    Image.fromarray(pixels).save(folder / f"sa_{sa_id}.jpg", quality=95)
    masks = _masks(sa_id, shape) if masks is None else masks
    annotations = [{"id": 1000 * sa_id + k, "segmentation": _coco(m), "area": int(m.sum()),
                    "bbox": [0, 0, 1, 1], "predicted_iou": 0.9, "stability_score": 0.95,
                    "point_coords": [[1.0, 2.0]], "crop_box": [0, 0, shape[1], shape[0]]} for k, m in enumerate(masks)]
    info = {"image_id": sa_id, "width": shape[1], "height": shape[0], "file_name": f"sa_{sa_id}.jpg", **image_fields}
    (folder / f"sa_{sa_id}.json").write_text(json.dumps({"image": info, "annotations": annotations}))


def _native(src: Path) -> Path:
    for folder, ids in IDS.items():
        for image_id in ids:
            _write(src / folder, image_id)
    (src / "sa_000000" / "._sa_3.json").write_bytes(b"\x00\x05")          # macOS metadata: not SA-1B
    (src / "README.json").write_text("{}")
    return src


def _ranked(seed: int) -> list[int]:
    """The documented rule, computed here on its own: ids by BLAKE2b-64 of '<seed>:<id>'."""
    ids = [i for ids in IDS.values() for i in ids]
    return sorted(ids, key=lambda i: (hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), i))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_selects_by_seeded_rank_and_writes_the_fit_set_with_sa1b_ids(tmp_path):
    src = _native(tmp_path / "SA-1B")
    result = import_dataset("SA-1B", src, tmp_path / "out", images=6, val_images=2, seed=0)
    assert result.dataset == "fit" and list_splits(tmp_path / "out", "fit") == ["train", "val"]
    ranked = _ranked(0)
    for split, ids in (("val", ranked[:2]), ("train", ranked[2:8])):
        reader = SplitReader(tmp_path / "out", "fit", split)
        assert len(reader.report) == 0, reader.report.summary()
        assert reader.image_ids == sorted(ids)
        for sample in reader:
            assert sample.image_path.name == f"{sample.image_id:08d}.jpg" and sample.image.shape == (H, W, 3)
            want = _masks(sample.image_id)[:2]                     # the 20-px mask is under min_area
            assert sample.masks.shape[0] == 2
            for got, expected in zip(sample.masks, want):
                np.testing.assert_array_equal(got, expected)
    assert result.splits == {"train": (6, 12), "val": (2, 4)} and result.dropped == {"dropped_small": 8}
    manifest = json.loads((tmp_path / "out" / "fit" / "import_manifest.json").read_text())
    assert manifest["options"]["available"] == 12 and manifest["options"]["images"] == 6
    where = {i: (f"{folder}/" if folder != "." else "") + f"sa_{i}.json" for folder, ids in IDS.items() for i in ids}
    assert {e["image_id"]: e["source"] for e in manifest["images"]} == {i: where[i] for i in ranked[:8]}
    assert not result.missing


def test_selection_ignores_folders_and_order_keeps_val_and_extends_train(tmp_path):
    src = _native(tmp_path / "tars")
    flat = tmp_path / "flat"
    for folder, ids in IDS.items():
        for image_id in reversed(ids):
            _write(flat, image_id)
    a = import_dataset("SA-1B", src, tmp_path / "a", images=5, val_images=3, seed=4)
    b = import_dataset("SA-1B", flat, tmp_path / "b", images=5, val_images=3, seed=4)
    split_files = {k: v for k, v in _files(tmp_path / "a" / "fit").items() if k != "import_manifest.json"}
    assert split_files == {k: v for k, v in _files(tmp_path / "b" / "fit").items() if k != "import_manifest.json"}
    assert a.splits == b.splits
    more = import_dataset("SA-1B", src, tmp_path / "more", images=8, val_images=3, seed=4)
    assert SplitReader(tmp_path / "more", "fit", "val").image_ids == SplitReader(tmp_path / "a", "fit", "val").image_ids
    assert set(SplitReader(tmp_path / "a", "fit", "train").image_ids) < set(
        SplitReader(tmp_path / "more", "fit", "train").image_ids)
    assert more.splits["train"][0] == 8
    other = import_dataset("SA-1B", src, tmp_path / "other", images=5, val_images=3, seed=5)
    assert other.splits == a.splits
    assert SplitReader(tmp_path / "other", "fit", "val").image_ids == sorted(_ranked(5)[:3]) != sorted(_ranked(4)[:3])


def test_defaults_take_a_tenth_for_val_and_the_rest_for_train(tmp_path):
    result = import_dataset("SA-1B", _native(tmp_path / "src"), tmp_path / "out")
    assert result.splits == {"train": (11, 22), "val": (1, 2)}
    with pytest.raises(DataError, match=r"12 SA-1B images found, cannot select 11 train and 2 val images"):
        import_dataset("SA-1B", tmp_path / "src", tmp_path / "again", images=11, val_images=2)
    with pytest.raises(DataError, match="cannot select 0 train"):
        import_dataset("SA-1B", tmp_path / "src", tmp_path / "again", images=0)


def test_large_images_are_stored_as_they_are_and_vanishing_masks_counted(tmp_path):
    shape = (2250, 1500)
    blob, line = _rect(100, 900, 200, 700, shape), _rect(1501, 1502, 0, 40, shape)   # 1 row of 2250 -> 1024
    _write(tmp_path / "src" / "sa_000002", 5, [blob, line], shape)
    _write(tmp_path / "src" / "sa_000002", 6, [blob], shape)
    result = import_dataset("SA-1B", tmp_path / "src", tmp_path / "out", images=1, val_images=1)
    for split in ("train", "val"):
        for sample in SplitReader(tmp_path / "out", "fit", split):
            assert sample.image.shape == shape + (3,)
            np.testing.assert_array_equal(sample.masks[0], blob)
    assert sum(result.dropped.values()) == 1 and result.dropped == {"dropped_vanishing": 1}


def _one(tmp_path, **changes):
    src = tmp_path / "src"
    _write(src / "sa_000000", 1)
    _write(src / "sa_000000", 2, **changes)
    return src


def _import_both(src, out):
    return import_dataset("SA-1B", src, out, images=1, val_images=1)


def test_bad_input_is_an_error_naming_the_file_and_leaves_no_split(tmp_path):
    src = _one(tmp_path)
    (src / "sa_000000" / "sa_2.json").write_text('{"image": ')
    with pytest.raises(DataError, match=r"sa_000000/sa_2\.json: not valid JSON"):
        _import_both(src, tmp_path / "out")
    assert list_splits(tmp_path / "out", "fit") == []
    _write(src / "sa_000000", 2, masks=[_rect(0, 5, 0, 5, (H + 1, W))])             # RLE of another size
    with pytest.raises(DataError, match=r"sa_2\.json: annotation #0 \(id 2000\): RLE size 49x64 differs from the "
                                        r"image's 48x64"):
        _import_both(src, tmp_path / "out")
    _write(src / "sa_000000", 2, height=H + 2)
    with pytest.raises(DataError, match=r"sa_2\.jpg: image is 48x64, but sa_2\.json says 50x64"):
        _import_both(src, tmp_path / "out")
    _write(src / "sa_000000", 2, image_id=3)
    with pytest.raises(DataError, match=r"sa_2\.json: 'image' names image 3 \('sa_2\.jpg'\), not 2"):
        _import_both(src, tmp_path / "out")
    _write(src / "sa_000000", 2)
    record = json.loads((src / "sa_000000" / "sa_2.json").read_text())
    record["annotations"][1]["segmentation"]["counts"] = "not an RLE!"
    (src / "sa_000000" / "sa_2.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"sa_2\.json: annotation #1 \(id 2001\): segmentation 'counts' is not a COCO"):
        _import_both(src, tmp_path / "out")
    _write(src / "sa_000000", 2)
    (src / "sa_000000" / "sa_2.jpg").unlink()
    with pytest.raises(DataError, match=r"sa_000000/sa_2\.json: no image sa_2\.jpg beside it"):
        _import_both(src, tmp_path / "out")
    assert list_splits(tmp_path / "out", "fit") == []


def test_no_annotation_files_or_an_id_twice_are_errors(tmp_path):
    (tmp_path / "empty" / "sa_000000").mkdir(parents=True)
    with pytest.raises(DataError, match=r"SA-1B: no annotation files in .*empty; looked for sa_<id>\.json beside"):
        import_dataset("SA-1B", tmp_path / "empty", tmp_path / "out")
    src = _one(tmp_path)
    _write(src / "sa_000001", 2)
    with pytest.raises(DataError, match=r"sa_000001/sa_2\.json and .*sa_000000/sa_2\.json are both SA-1B image 2"):
        _import_both(src, tmp_path / "out")
