"""Importers: tiny fixtures in each native layout, converted and read back with SplitReader.

Every fixture draws known objects, so the expected instance masks are written down here
independently of the importer code, and compared exactly with what the reader returns.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from uncertsam_utils.data import DataError, SplitReader
from uncertsam_utils.data.importers import IMPORTERS, import_dataset
from uncertsam_utils.data.importers.base import SourceImage, assign_splits
from uncertsam_utils.data.importers.readers import connected_components, read_binary_mask, read_label_map
from uncertsam_utils.data.layout import list_splits

H, W = 40, 56


def _png(path: Path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(array))
    (image.convert(mode) if mode else image).save(path)


def _jpg(path: Path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path, quality=95)


def _photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(30, 220, (H // 8, W // 8, 3))
    return np.kron(coarse, np.ones((8, 8, 1))).astype(np.uint8)


def _rect(y0, y1, x0, x1, shape=(H, W)):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _read_back(out: Path, dataset: str):
    """{source key: (split, Sample)} using the manifest's image ids."""
    manifest = json.loads((out / dataset / "import_manifest.json").read_text())
    source_of = {entry["image_id"]: entry["source"] for entry in manifest["images"]}
    result = {}
    for split in list_splits(out, dataset):
        reader = SplitReader(out, dataset, split)
        assert len(reader.report) == 0, reader.report.summary()     # importers write only what the reader keeps
        for sample in reader:
            result[source_of[sample.image_id]] = (split, sample)
    return result, manifest


def _assert_instances(sample, expected):
    """The sample's masks are exactly the expected ones, in the expected order."""
    assert sample.masks.shape[0] == len(expected)
    for got, want in zip(sample.masks, expected):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------------------ shared parts

def test_connected_components_are_8_connected_filtered_and_ordered():
    mask = np.zeros((10, 12), bool)
    mask[6:9, 1:4] = True          # second in raster order
    mask[1:3, 8:11] = True         # first
    mask[3, 11] = True             # touches the first diagonally -> same component
    mask[8, 10] = True             # an isolated pixel: under min_area
    parts, small = connected_components(mask, min_area=2)
    assert small == 1 and len(parts) == 2
    first = _rect(1, 3, 8, 11, (10, 12))
    first[3, 11] = True
    np.testing.assert_array_equal(parts[0], first)
    np.testing.assert_array_equal(parts[1], _rect(6, 9, 1, 4, (10, 12)))
    assert connected_components(np.zeros((4, 4), bool), 1) == ([], 0)


def test_mask_readers_handle_the_encodings_found_in_the_wild(tmp_path):
    truth = _rect(5, 20, 10, 30)
    _png(tmp_path / "gray255.png", truth.astype(np.uint8) * 255)
    _png(tmp_path / "gray01.png", truth.astype(np.uint8))
    _png(tmp_path / "red.png", np.stack([truth * 128, truth * 0, truth * 0], -1).astype(np.uint8))
    _png(tmp_path / "palette.png", truth.astype(np.uint8) * 255, mode="P")
    for name in ("gray255", "gray01", "red", "palette"):
        np.testing.assert_array_equal(read_binary_mask(tmp_path / f"{name}.png"), truth, err_msg=name)
    labels = np.zeros((H, W), np.uint8)
    labels[truth] = 7
    labels[30:35, 40:50] = 9
    _png(tmp_path / "labels.png", labels)
    np.testing.assert_array_equal(read_label_map(tmp_path / "labels.png"), labels)
    colours = np.zeros((H, W, 3), np.uint8)
    colours[truth] = (10, 200, 30)
    _png(tmp_path / "colours.png", colours)
    assert set(np.unique(read_label_map(tmp_path / "colours.png")).tolist()) == {0, (10 << 16) | (200 << 8) | 30}
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="broken.png"):
        read_binary_mask(tmp_path / "broken.png")


def _sources(groups_per_pool):
    return [SourceImage(f"{pool}/{g}/{i}", f"{g}", pool, lambda: None)
            for pool, groups in groups_per_pool.items() for g in groups for i in range(2)]


def test_assign_splits_keeps_groups_together_and_hits_the_fractions():
    sources = _sources({"all": [f"g{k:02d}" for k in range(20)], "test": ["t0", "t1"]})
    plan = {"all": {"train": 0.7, "val": 0.1, "test": 0.2}, "test": {"test": 1.0}}
    split_of = assign_splits(sources, plan, seed=0)
    by_group = {}
    for s in sources:
        by_group.setdefault((s.pool, s.group), set()).add(split_of[s.key])
    assert all(len(v) == 1 for v in by_group.values())
    counts = {name: sum(1 for (pool, _), v in by_group.items() if pool == "all" and v == {name})
              for name in ("train", "val", "test")}
    assert counts == {"train": 14, "val": 2, "test": 4}
    assert {split_of[s.key] for s in sources if s.pool == "test"} == {"test"}
    assert assign_splits(sources, plan, seed=0) == split_of
    assert any(assign_splits(sources, plan, seed=k) != split_of for k in range(1, 4))
    with pytest.raises(DataError, match="no split plan"):
        assign_splits(sources, {"all": plan["all"]}, seed=0)


def test_registry_covers_the_benchmark_and_refuses_unknown_names(tmp_path):
    from uncertsam_utils.data import DATASETS

    assert set(IMPORTERS) == {*DATASETS, "SA-1B"}
    with pytest.raises(ValueError, match="no importer"):
        import_dataset("Pascal", tmp_path, tmp_path)


# ------------------------------------------------------------------------------------------ ISTD

def _istd_fixture(src: Path):
    """10 train scenes (2 shots each) and 2 test scenes. Each mask: two blobs, a 3-px speck, and two
    squares touching at a corner (one 8-connected instance)."""
    expected = {}
    for native, scenes in (("train", range(1, 11)), ("test", range(50, 52))):
        for scene in scenes:
            for shot in (1, 2):
                name = f"{scene}-{shot}.png"
                a = _rect(2, 12, 3, 20)
                b = _rect(28, 36, 10, 36)
                corner = _rect(14, 20, 40, 46) | _rect(20, 26, 46, 52)
                speck = _rect(30, 31, 2, 5)
                _png(src / native / f"{native}_A" / name, _photo(scene * 10 + shot))
                _png(src / native / f"{native}_B" / name, (a | b | corner | speck).astype(np.uint8) * 255)
                _png(src / native / f"{native}_C" / name, _photo(scene))
                expected[f"{native}/{name}"] = [a, corner, b]        # raster order of first pixels
    return expected


def test_istd_components_scene_splits_and_determinism(tmp_path):
    expected = _istd_fixture(tmp_path / "ISTD_Dataset")
    result = import_dataset("ISTD", tmp_path / "ISTD_Dataset", tmp_path / "out")
    samples, manifest = _read_back(tmp_path / "out", "ISTD")
    assert set(samples) == set(expected)
    for key, (split, sample) in samples.items():
        _assert_instances(sample, expected[key])
        assert (split == "test") == key.startswith("test/")
        native = _photo(int(key.split("/")[1].split("-")[0]) * 10 + int(key.split("-")[1][0]))
        assert np.abs(sample.image.astype(int) - native).mean() < 4
    scene_splits = {}
    for key, (split, _) in samples.items():
        scene_splits.setdefault(key.split("/")[1].split("-")[0], set()).add(split)
    assert all(len(v) == 1 for v in scene_splits.values())
    assert result.splits == {"train": (18, 54), "val": (2, 6), "test": (4, 12)}
    assert manifest["dropped"] == {"dropped_small": 24}
    # same input, same seed -> byte-identical output
    import_dataset("ISTD", tmp_path / "ISTD_Dataset", tmp_path / "again")
    for path in sorted((tmp_path / "out").rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "again" / path.relative_to(tmp_path / "out")).read_bytes()
    with pytest.raises(DataError, match="already exists"):
        import_dataset("ISTD", tmp_path / "ISTD_Dataset", tmp_path / "out")
    import_dataset("ISTD", tmp_path / "ISTD_Dataset", tmp_path / "out", overwrite=True, min_area=1)
    kept = SplitReader(tmp_path / "out", "ISTD", "test", min_mask_pixels=1)
    assert [len(sample.mask_ids) for sample in kept] == [4, 4, 4, 4]                          # speck kept


def test_istd_bad_sources_are_errors_naming_the_file(tmp_path):
    _istd_fixture(tmp_path / "src")
    (tmp_path / "src" / "test" / "test_B" / "50-2.png").unlink()
    with pytest.raises(DataError, match=r"50-2\.png: no shadow mask"):
        import_dataset("ISTD", tmp_path / "src", tmp_path / "out")
    _png(tmp_path / "src" / "test" / "test_B" / "50-2.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match=r"test/50-2\.png: mask size"):
        import_dataset("ISTD", tmp_path / "src", tmp_path / "out")
    assert list_splits(tmp_path / "out", "ISTD") == []          # train and val (written first) removed again
    with pytest.raises(DataError, match=r"ISTD: no source images in .*nothing; looked for native 'train': train/train_A"):
        import_dataset("ISTD", tmp_path / "nothing", tmp_path / "out")


# ------------------------------------------------------------------------------------------ SBU

def test_sbu_components_and_native_test_split(tmp_path):
    src = tmp_path / "SBU-shadow"
    expected = {}
    for folder, names in (("SBUTrain4KRecoveredSmall", [f"lssd{k}" for k in range(10)]), ("SBU-Test", ["t1", "t2"])):
        for k, name in enumerate(names):
            a, b = _rect(3, 15, 3, 15), _rect(20, 38, 20 + k, 40 + k)
            _jpg(src / folder / "ShadowImages" / f"{name}.jpg", _photo(k))
            _png(src / folder / "ShadowMasks" / f"{name}.png", (a | b).astype(np.uint8) * 255)
            expected[f"{folder}/{name}.jpg"] = [a, b]
    (src / "SBU-Test" / "ShadowImages" / "._t1.jpg").write_bytes(b"\x00\x05")     # macOS metadata: ignored
    result = import_dataset("SBU-shadow", src, tmp_path / "out")
    samples, _ = _read_back(tmp_path / "out", "SBU-shadow")
    assert set(samples) == set(expected)
    for key, (split, sample) in samples.items():
        _assert_instances(sample, expected[key])
        assert (split == "test") == key.startswith("SBU-Test/")
    assert result.splits == {"train": (9, 18), "val": (1, 2), "test": (2, 4)}


# ------------------------------------------------------------------------------------------ COD10K

def test_cod10k_native_instances_cam_only_and_object_fallback(tmp_path):
    src = tmp_path / "COD10K-v3"
    whole = _rect(5, 15, 5, 15) | _rect(5, 15, 25, 35)       # one animal split by a branch: ONE instance
    other = _rect(25, 38, 10, 50)
    instance_map = np.zeros((H, W), np.uint8)
    instance_map[whole], instance_map[other] = 1, 2
    cam = "COD10K-CAM-1-Aquatic-1-BatFish-{}"
    for folder in ("Train", "Test"):
        for k in range(1, 4):
            name = cam.format(f"{folder}{k}")
            _jpg(src / folder / "Image" / f"{name}.jpg", _photo(k))
            _png(src / folder / "GT_Object" / f"{name}.png", (whole | other).astype(np.uint8) * 255)
            if k != 3:
                _png(src / folder / "GT_Instance" / f"{name}.png", instance_map)
        noncam = f"COD10K-NonCAM-5-Background-1-Sky-{folder}"
        _jpg(src / folder / "Image" / f"{noncam}.jpg", _photo(9))
        _png(src / folder / "GT_Object" / f"{noncam}.png", np.zeros((H, W), np.uint8))
    import_dataset("COD10K-v3", src, tmp_path / "out")
    samples, _ = _read_back(tmp_path / "out", "COD10K-v3")
    assert all("-CAM-" in key for key in samples) and len(samples) == 6
    for key, (split, sample) in samples.items():
        assert (split == "test") == key.startswith("Test/")
        if key.endswith("3.jpg"):       # no GT_Instance: connected components of GT_Object
            _assert_instances(sample, [_rect(5, 15, 5, 15), _rect(5, 15, 25, 35), other])
        else:
            _assert_instances(sample, [whole, other])
    result = import_dataset("COD10K-v3", src, tmp_path / "all", include_noncam=True)
    assert result.dropped["images_without_instances"] == 2       # the NonCAM images: empty masks
    assert sum(n for n, _ in result.splits.values()) == 6


# ------------------------------------------------------------------------------------------ MSD

def _nifti(path: Path, data):
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))


def test_msd_spleen_slices_window_orientation_and_volume_splits(tmp_path):
    src = tmp_path / "Task09_Spleen"
    rows, cols, depth = 32, 24, 6
    expected = {}
    for v in range(1, 6):
        hu = np.full((rows, cols, depth), -1000, np.int16)          # air
        hu[4:28, 3:20, :] = 40                                       # soft tissue at the window level
        hu[10:14, 5:9, :] = 500                                      # bone, above the window
        label = np.zeros((rows, cols, depth), np.uint8)
        for k in (1, 2, 4):
            label[6 + k:16 + k, 10:18 + v % 3, k] = 1                # asymmetric: a transpose would show
            expected[f"spleen_{v}/{k:04d}"] = label[:, :, k].astype(bool)
        _nifti(src / "imagesTr" / f"spleen_{v}.nii.gz", hu)
        _nifti(src / "labelsTr" / f"spleen_{v}.nii.gz", label)
    (src / "imagesTr" / "._spleen_1.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (src / "labelsTr" / "._spleen_1.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    _nifti(src / "imagesTs" / "spleen_99.nii.gz", np.zeros((rows, cols, depth), np.int16))
    import_dataset("MSD_Spleen", src, tmp_path / "out")
    samples, _ = _read_back(tmp_path / "out", "MSD_Spleen")
    assert set(samples) == set(expected)
    volume_splits = {}
    for key, (split, sample) in samples.items():
        _assert_instances(sample, [expected[key]])
        volume_splits.setdefault(key.split("/")[0], set()).add(split)
        image = sample.image.astype(int)
        assert sample.image.shape == (rows, cols, 3)
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
        assert abs(image[0, 0, 0] - 0) <= 3 and abs(image[20, 15, 0] - 128) <= 3 and abs(image[11, 6, 0] - 255) <= 3
    assert all(len(s) == 1 for s in volume_splits.values())
    assert {next(iter(s)) for s in volume_splits.values()} == {"train", "test"}   # 5 volumes: 4 train, 1 test


def test_msd_spleen_corrupt_volume_is_an_error(tmp_path):
    src = tmp_path / "Task09_Spleen"
    _nifti(src / "imagesTr" / "spleen_1.nii.gz", np.zeros((8, 8, 2), np.int16))
    (src / "labelsTr").mkdir(parents=True)
    (src / "labelsTr" / "spleen_1.nii.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"labelsTr/spleen_1\.nii\.gz: cannot read the NIfTI volume"):
        import_dataset("MSD_Spleen", src, tmp_path / "out")


# ------------------------------------------------------------------------------------------ Trans10K

def test_trans10k_things_and_stuff_components_native_splits(tmp_path):
    src = tmp_path / "Trans10K"
    cup1, cup2 = _rect(5, 15, 5, 12), _rect(5, 15, 30, 37)
    window = _rect(22, 38, 2, 54)
    expected = {}
    layout = [("train", "train"), ("validation/easy", "val"), ("test/hard", "test"), ("test/easy", "test")]
    for k, (folder, split) in enumerate(layout):
        colours = np.zeros((H, W, 4), np.uint8)
        colours[..., 3] = 255
        colours[cup1 | cup2] = (255, 0, 0, 255)                      # things: one saturated channel (mean 85)
        colours[window] = (255, 255, 255, 255)                       # stuff: white (mean 255)
        _jpg(src / folder / "images" / f"img{k}.jpg", _photo(k))
        _png(src / folder / "masks" / f"img{k}_mask.png", colours)
        expected[f"{folder}/images/img{k}.jpg"] = ([cup1, cup2, window], split)
    import_dataset("Trans10K", src, tmp_path / "out")
    samples, _ = _read_back(tmp_path / "out", "Trans10K")
    assert set(samples) == set(expected)
    for key, (split, sample) in samples.items():
        _assert_instances(sample, expected[key][0])
        assert split == expected[key][1]


# ------------------------------------------------------------------------------------------ Flare7K

def test_flare7k_classes_split_into_components_like_fig2(tmp_path):
    src = tmp_path / "Flare7K++"
    glare = _rect(5, 35, 8, 48)
    streak = _rect(18, 22, 0, W)
    source = _rect(15, 25, 24, 32)
    mask = np.zeros((H, W, 3), np.uint8)
    mask[glare] = (255, 255, 0)
    mask[streak] = (255, 0, 0)
    mask[source] = (0, 0, 255)
    glare_top, glare_bottom = glare & ~streak & ~source & _rect(0, 18, 0, W), glare & ~streak & ~source & _rect(22, H, 0, W)
    streak_left, streak_right = streak & ~source & _rect(0, H, 0, 24), streak & ~source & _rect(0, H, 32, W)
    expected = [glare_top, glare_bottom, streak_left, streak_right, source]    # by class, then raster order
    for kind in ("real", "synthetic"):
        for k in range(10):
            _png(src / "test_data" / kind / "input" / f"input_{k:03d}.png", _photo(k))
            _png(src / "test_data" / kind / "gt" / f"gt_{k:03d}.png", _photo(k + 1))
            _png(src / "test_data" / kind / "mask" / f"mask_{k:03d}.png", mask if k != 3 else np.zeros_like(mask))
    result = import_dataset("Flare7K", src, tmp_path / "out")
    samples, manifest = _read_back(tmp_path / "out", "Flare7K")
    assert len(samples) == 18 and result.dropped["images_without_instances"] == 2
    for key, (split, sample) in samples.items():
        _assert_instances(sample, expected)
        kind, name = key.split("/")
        assert np.abs(sample.image.astype(int) - _photo(int(name[6:9]))).mean() < 4    # input, not gt
    per_split = {name: sum(1 for e in manifest["images"] if e["split"] == name) for name in ("train", "val", "test")}
    assert per_split == {"train": 14, "val": 2, "test": 4}                         # 7/1/2 of 10, per kind
    assert sum(n for n, _ in result.splits.values()) == 18 and all(m == 5 * n for n, m in result.splits.values())
    (src / "test_data" / "real" / "mask" / "mask_009.png").unlink()
    with pytest.raises(DataError, match="10 inputs but 9 masks"):
        import_dataset("Flare7K", src, tmp_path / "again")


# ------------------------------------------------------------------------------------------ BIG

def test_big_whole_objects_and_val_carved_into_train(tmp_path):
    src = tmp_path / "BIG"
    bicycle = _rect(10, 30, 5, 20) | _rect(10, 30, 35, 50) | _rect(18, 20, 20, 35)
    bicycle[19, 20:35] = False                      # the frame does not quite touch: 3 components, 1 object
    bicycle[18, 20:35] = False
    expected = {}
    for native, count in (("val", 5), ("test", 2)):
        for k in range(count):
            _jpg(src / native / f"obj{k}_im.jpg", _photo(k))
            _png(src / native / f"obj{k}_gt.png", bicycle.astype(np.uint8) * 255)
            _png(src / native / f"obj{k}_seg.png", np.zeros((H, W), np.uint8))
            expected[f"{native}/obj{k}_im.jpg"] = native
    result = import_dataset("BIG", src, tmp_path / "out")
    samples, _ = _read_back(tmp_path / "out", "BIG")
    assert set(samples) == set(expected)
    for key, (split, sample) in samples.items():
        _assert_instances(sample, [bicycle])
        assert (split == "test") == (expected[key] == "test")
    assert result.splits == {"train": (4, 4), "val": (1, 1), "test": (2, 2)}


# ------------------------------------------------------------------------------------------ COIFT

def test_coift_thin_objects_stay_whole_and_pooled_splits(tmp_path):
    src = tmp_path / "COIFT"
    stork = _rect(5, 30, 20, 30) | _rect(30, 39, 21, 22) | _rect(31, 39, 28, 29)   # body + two thin legs
    stork[30, 21:30] = False
    for k in range(10):
        _jpg(src / "images" / f"{k:03d}.jpg", _photo(k))
        _png(src / "masks" / f"{k:03d}.png", stork.astype(np.uint8) * 255)
    result = import_dataset("COIFT", src, tmp_path / "out")
    samples, _ = _read_back(tmp_path / "out", "COIFT")
    assert len(samples) == 10
    for _, sample in samples.values():
        _assert_instances(sample, [stork])
    assert result.splits == {"train": (7, 7), "val": (1, 1), "test": (2, 2)}
    (src / "masks" / "004.png").unlink()
    with pytest.raises(DataError, match=r"004\.jpg: no mask"):
        import_dataset("COIFT", src, tmp_path / "again")


def test_instances_that_vanish_at_the_model_input_are_dropped_and_counted(tmp_path):
    # A 2100-row image is squashed ~2x vertically: a 1-row line of 40 px fades to < 0.5 and would
    # have no box prompt, so it is dropped; the blob stays.
    src = tmp_path / "SBU-shadow"
    tall = (2100, 40)
    blob, line = _rect(100, 400, 5, 35, tall), _rect(1001, 1002, 0, 40, tall)
    for folder in ("SBUTrain4KRecoveredSmall", "SBU-Test"):
        _jpg(src / folder / "ShadowImages" / "tall.jpg", np.full(tall + (3,), 90, np.uint8))
        _png(src / folder / "ShadowMasks" / "tall.png", (blob | line).astype(np.uint8) * 255)
    result = import_dataset("SBU-shadow", src, tmp_path / "out", min_area=8)
    assert result.dropped == {"dropped_vanishing": 2}
    samples, manifest = _read_back(tmp_path / "out", "SBU-shadow")
    for _, sample in samples.values():
        _assert_instances(sample, [blob])
    assert all(e["dropped_vanishing"] == 1 for e in manifest["images"])
