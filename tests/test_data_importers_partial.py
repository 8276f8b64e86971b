"""Importers take what is there: a native folder holding only some parts (typically the test part)
imports the splits those parts feed, says what the missing parts mean, and only a folder with nothing
usable is an error naming what was looked for."""

import json
from pathlib import Path

import numpy as np
import pytest
from test_data_importers import _jpg, _nifti, _photo, _png, _read_back, _rect

from uncertsam_utils.data import DataError
from uncertsam_utils.data.importers import import_dataset
from uncertsam_utils.data.layout import list_splits

H, W = 40, 56
BLOB = _rect(5, 20, 8, 30)


def _binary(path: Path, mask=BLOB):
    _png(path, mask.astype(np.uint8) * 255)


def _big_test(src: Path):
    for k in range(2):
        _jpg(src / "test" / f"obj{k}_im.jpg", _photo(k))
        _binary(src / "test" / f"obj{k}_gt.png")


def _coift(src: Path):           # COIFT is a test-only set natively: all of it is its test part
    for k in range(10):
        _jpg(src / "images" / f"{k:03d}.jpg", _photo(k))
        _binary(src / "masks" / f"{k:03d}.png")


def _cod10k_test(src: Path):
    for k in range(2):
        name = f"COD10K-CAM-1-Aquatic-1-BatFish-{k}"
        _jpg(src / "Test" / "Image" / f"{name}.jpg", _photo(k))
        _binary(src / "Test" / "GT_Object" / f"{name}.png")


def _msd_labelled(src: Path):    # MSD's native test volumes have no labels: the benchmark cuts all from Tr
    for v in range(1, 6):
        label = np.zeros((32, 24, 3), np.uint8)
        label[8:20, 6:18, 1] = 1
        _nifti(src / "imagesTr" / f"spleen_{v}.nii.gz", np.full((32, 24, 3), 40, np.int16))
        _nifti(src / "labelsTr" / f"spleen_{v}.nii.gz", label)


def _istd_test(src: Path):
    for k in range(2):
        _png(src / "test" / "test_A" / f"9{k}-1.png", _photo(k))
        _binary(src / "test" / "test_B" / f"9{k}-1.png")


def _sbu_test(src: Path):
    for k in range(2):
        _jpg(src / "SBU-Test" / "ShadowImages" / f"t{k}.jpg", _photo(k))
        _binary(src / "SBU-Test" / "ShadowMasks" / f"t{k}.png")


def _flare_real(src: Path):      # Flare7K++ ships test data only; here only its 'real' kind
    mask = np.zeros((H, W, 3), np.uint8)
    mask[BLOB] = (255, 255, 0)
    for k in range(10):
        _png(src / "test_data" / "real" / "input" / f"input_{k:03d}.png", _photo(k))
        _png(src / "test_data" / "real" / "mask" / f"mask_{k:03d}.png", mask)


def _trans10k_test(src: Path):
    colours = np.zeros((H, W, 3), np.uint8)
    colours[BLOB] = (255, 0, 0)
    for k, level in enumerate(("easy", "hard")):
        _jpg(src / "test" / level / "images" / f"img{k}.jpg", _photo(k))
        _png(src / "test" / level / "masks" / f"img{k}_mask.png", colours)


# dataset -> (fixture of its test part, splits written, a phrase of each missing part's note)
PARTIAL = {
    "BIG": (_big_test, ["test"], ["part 'val' is not there", "no train split and no val split (train and val are cut"]),
    "COIFT": (_coift, ["train", "val", "test"], []),
    "COD10K-v3": (_cod10k_test, ["test"], ["part 'train' is not there (Train/Image (COD10K images)",
                                           "no train split and no val split"]),
    "MSD_Spleen": (_msd_labelled, ["train", "test"], []),          # 5 volumes: 4 train, 0 val, 1 test
    "ISTD": (_istd_test, ["test"], ["part 'train' is not there (train/train_A", "no train split and no val split"]),
    "SBU-shadow": (_sbu_test, ["test"], ["part 'train' is not there (SBUTrain4KRecoveredSmall/ShadowImages",
                                         "no train split and no val split"]),
    "Flare7K": (_flare_real, ["train", "val", "test"],
                ["part 'synthetic' is not there (test_data/synthetic/input",
                 "train, val and test hold only native 'real'"]),
    "Trans10K": (_trans10k_test, ["test"], ["part 'train' is not there", "no train split",
                                            "part 'validation' is not there", "no val split"]),
}


@pytest.mark.parametrize("dataset", sorted(PARTIAL))
def test_the_test_part_alone_imports_into_a_test_split(tmp_path, dataset):
    build, splits, phrases = PARTIAL[dataset]
    build(tmp_path / "src")
    result = import_dataset(dataset, tmp_path / "src", tmp_path / "out")
    assert list_splits(tmp_path / "out", dataset) == splits
    samples, manifest = _read_back(tmp_path / "out", dataset)
    assert any(split == "test" for split, _ in samples.values())
    notes = " | ".join(result.missing.values())
    for phrase in phrases:
        assert phrase in notes, notes
        assert phrase in result.summary()
    assert manifest.get("missing", {}) == result.missing
    assert bool(phrases) == bool(result.missing)


# dataset -> what the error must name (a folder of its first native part)
LOOKED_FOR = {
    "BIG": "native 'val': val (BIG val images",
    "COIFT": "native 'all': images (COIFT images) + masks (COIFT masks), not there",
    "COD10K-v3": "native 'train': Train/Image (COD10K images) + Train/GT_Object",
    "MSD_Spleen": "imagesTr (MSD CT volumes) + labelsTr (MSD spleen labels; imagesTs/ has none), not there",
    "ISTD": "native 'train': train/train_A (ISTD shadow images) + train/train_B",
    "SBU-shadow": "native 'test': SBU-Test/ShadowImages (SBU shadow images)",
    "Flare7K": "native 'real': real/input (Flare7K++ real test inputs)",
    "Trans10K": "native 'validation': validation (Trans10K validation split",
}


@pytest.mark.parametrize("dataset", sorted(LOOKED_FOR))
def test_nothing_usable_is_an_error_naming_what_was_looked_for(tmp_path, dataset):
    (tmp_path / "src" / "unrelated").mkdir(parents=True)
    with pytest.raises(DataError, match=f"{dataset}: no source images in .*src; looked for ") as caught:
        import_dataset(dataset, tmp_path / "src", tmp_path / "out")
    assert LOOKED_FOR[dataset] in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_msd_test_volumes_alone_are_not_usable(tmp_path):
    _nifti(tmp_path / "src" / "imagesTs" / "spleen_9.nii.gz", np.zeros((8, 8, 2), np.int16))
    with pytest.raises(DataError, match=r"labelsTr \(MSD spleen labels; imagesTs/ has none\), not there"):
        import_dataset("MSD_Spleen", tmp_path / "src", tmp_path / "out")


def test_empty_parts_say_no_images(tmp_path):
    for folder in ("SBU-Test/ShadowImages", "SBU-Test/ShadowMasks"):
        (tmp_path / "src" / folder).mkdir(parents=True)
    with pytest.raises(DataError, match=r"native 'train': .*, not there; native 'test': .*, no images"):
        import_dataset("SBU-shadow", tmp_path / "src", tmp_path / "out")


def test_a_part_with_some_of_its_folders_is_a_broken_download(tmp_path):
    _sbu_test(tmp_path / "src")
    for path in (tmp_path / "src" / "SBU-Test" / "ShadowMasks").iterdir():
        path.unlink()
    (tmp_path / "src" / "SBU-Test" / "ShadowMasks").rmdir()
    with pytest.raises(DataError, match=r"SBU-Test/ShadowMasks: folder not found \(SBU shadow masks\), though the "
                                        r"other folders of SBU-shadow's native part 'test' are there"):
        import_dataset("SBU-shadow", tmp_path / "src", tmp_path / "out")


def test_splits_of_an_earlier_import_are_refused_or_replaced(tmp_path):
    full, partial, out = tmp_path / "full", tmp_path / "partial", tmp_path / "out"
    _istd_test(partial)
    _istd_test(full)
    for k in range(10):
        _png(full / "train" / "train_A" / f"{k}-1.png", _photo(k))
        _binary(full / "train" / "train_B" / f"{k}-1.png")
    assert set(import_dataset("ISTD", full, out).splits) == {"train", "val", "test"}
    (out / "ISTD" / "test").rename(out / "ISTD" / "test-kept")
    with pytest.raises(DataError, match=r"ISTD/train is from an earlier import and this one does not write it"):
        import_dataset("ISTD", partial, out)
    (out / "ISTD" / "test-kept").rename(out / "ISTD" / "test")
    result = import_dataset("ISTD", partial, out, overwrite=True)
    assert list_splits(out, "ISTD") == ["test"] and result.removed == ["train", "val"]
    assert "removed" in result.summary() and "no train split" in result.summary()
    manifest = json.loads((out / "ISTD" / "import_manifest.json").read_text())
    assert manifest["splits"] == {"test": [2, 2]} and set(manifest["missing"]) == {"train"}
