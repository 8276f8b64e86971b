"""UncertSAM-mini: layout, determinism, sizes, caching, CLI, and that each domain has its difficulty."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from uncertsam_utils.data import mini
from uncertsam_utils.data.layout import DATASETS, SplitReader, list_datasets, list_splits
from uncertsam_utils.data.mini.common import MIN_MASK_PIXELS, MODEL_SIZE, image_rng
from uncertsam_utils.data.mini.diagnostics import colour_contrast, is_grey, luminance_ratio, thin_fraction
from uncertsam_utils.data.mini.domains import DOMAINS, FIT_SPEC, render_item

FIT_SIZES = (5, 2, 2)
DOMAIN_SIZES = (1, 3)


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini") / "bench"
    return mini.generate_mini(root, seed=0, fit_sizes=FIT_SIZES, domain_sizes=DOMAIN_SIZES,
                              progress=False, workers=1)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ layout

def test_every_dataset_and_split_is_present(mini_root):
    assert list_datasets(mini_root) == sorted(["fit", *DATASETS])
    assert list_splits(mini_root, "fit") == ["train", "val", "test"]
    for name in DATASETS:
        assert list_splits(mini_root, name) == ["val", "test"]


@pytest.mark.parametrize("dataset", ["fit", *DATASETS])
def test_readable_with_valid_masks_and_boxes(mini_root, dataset):
    spec = FIT_SPEC if dataset == "fit" else DOMAINS[dataset]
    splits = dict(zip(("train", "val", "test"), FIT_SIZES)) if dataset == "fit" else dict(zip(("val", "test"), DOMAIN_SIZES))
    for split, count in splits.items():
        reader = SplitReader(mini_root, dataset, split)
        assert len(reader) == count
        assert len(reader.report) == 0, reader.report.summary()  # nothing the reader would drop
        for sample in reader:
            h, w = sample.image.shape[:2]
            assert sample.image.dtype == np.uint8 and sample.image.shape[2] == 3
            assert (h, w) in spec.sizes
            assert len(sample.masks) >= 1
            assert sample.masks.shape[1:] == (h, w)
            assert sample.masks.sum(axis=(1, 2)).min() >= MIN_MASK_PIXELS
            boxes = sample.boxes(MODEL_SIZE)  # raises if a target vanishes at the nano model's input
            assert boxes.shape == (len(sample.masks), 4)


def test_sizes_resemble_the_real_data():
    assert FIT_SPEC.sizes == ((256, 256),)
    assert max(max(s) for s in DOMAINS["BIG"].sizes) >= 1000      # high resolution
    assert DOMAINS["COIFT"].sizes[0] == (480, 640)
    assert DOMAINS["ISTD"].sizes == ((480, 640),)
    assert DOMAINS["Flare7K"].sizes == ((512, 512),)
    for name in ("COD10K-v3", "MSD_Spleen", "SBU-shadow", "Trans10K"):
        assert all(320 <= min(s) and max(s) <= 640 for s in DOMAINS[name].sizes)
    assert mini.FIT_SIZES[0] >= 2000 and mini.DOMAIN_SIZES[1] >= 40
    assert list(DOMAINS) == list(DATASETS)


def test_marker_is_written_last_and_describes_the_benchmark(mini_root):
    marker = json.loads((mini_root / mini.MARKER_NAME).read_text())
    assert marker["version"] == mini.MINI_VERSION and marker["seed"] == 0
    assert marker["fit_sizes"] == {"train": 5, "val": 2, "test": 2}
    assert marker["domain_sizes"] == {"val": 1, "test": 3}
    assert set(marker["knobs"]) == {"fit", *DATASETS}


# ------------------------------------------------------------------------------- determinism

def test_same_seed_gives_identical_bytes_regardless_of_workers(mini_root, tmp_path):
    # the module's benchmark was written by one process; rewrite it with two
    again = mini.generate_mini(tmp_path / "again", seed=0, fit_sizes=FIT_SIZES, domain_sizes=DOMAIN_SIZES,
                               progress=False, workers=2)
    assert _files(again) == _files(mini_root)


def test_other_seed_gives_other_images(tmp_path):
    some = {name: DOMAINS[name] for name in ("MSD_Spleen", "Flare7K")}
    sizes = dict(fit_sizes=(2, 1, 1), domain_sizes=(1, 1), progress=False, workers=1, domains=some)
    a = _files(mini.generate_mini(tmp_path / "a", seed=3, **sizes))
    c = _files(mini.generate_mini(tmp_path / "c", seed=4, **sizes))
    images = [k for k in a if k.endswith(".jpg")]
    assert len(images) == 4 + 2 * len(some)
    assert all(a[k] != c[k] for k in images)


def test_each_image_depends_only_on_its_own_key():
    spec = DOMAINS["COD10K-v3"]
    late_first = render_item(spec, 0, "test", 5)
    render_item(spec, 0, "test", 0)
    again = render_item(spec, 0, "test", 5)
    assert np.array_equal(late_first[1], again[1])
    assert all(np.array_equal(m, n) for m, n in zip(late_first[2], again[2]))
    other = render_item(spec, 0, "val", 5)
    assert not np.array_equal(other[1], again[1]) or other[1].shape != again[1].shape
    a, b = image_rng(0, "fit", "train", 1), image_rng(0, "fit", "train", 2)
    assert a.integers(1 << 62) != b.integers(1 << 62)


# ------------------------------------------------------------------------ domain difficulties

def _targets(spec, count=6):
    for i in range(count):
        _, image, masks = render_item(spec, 0, "test", i)
        for mask in masks:
            yield image, mask


@pytest.fixture(scope="module")
def fit_contrast():
    return float(np.median([colour_contrast(img, m) for img, m in _targets(FIT_SPEC, 10)]))


def test_fit_objects_are_visible_and_solid(fit_contrast):
    assert fit_contrast > 0.2
    fractions = [thin_fraction(m) for _, m in _targets(FIT_SPEC, 10)]
    assert np.mean(fractions) < 0.05


def test_fit_scenes_have_two_to_six_objects():
    counts = [len(render_item(FIT_SPEC, 0, "train", i)[2]) for i in range(30)]
    assert 1 <= min(counts) and max(counts) <= 6 and np.mean(counts) >= 2.5


def test_camouflage_hides_the_colour_edge(fit_contrast):
    contrast = np.median([colour_contrast(img, m) for img, m in _targets(DOMAINS["COD10K-v3"])])
    assert contrast < 0.35 * fit_contrast


def test_ct_is_grey_and_low_contrast(fit_contrast):
    pairs = list(_targets(DOMAINS["MSD_Spleen"]))
    assert all(is_grey(img) for img, _ in pairs)
    assert len(pairs) == 6  # exactly one spleen per slice
    assert np.median([colour_contrast(img, m) for img, m in pairs]) < 0.7 * fit_contrast


@pytest.mark.parametrize("dataset", ["ISTD", "SBU-shadow"])
def test_shadow_targets_are_darker_than_their_surroundings(dataset):
    ratios = [luminance_ratio(img, m) for img, m in _targets(DOMAINS[dataset])]
    assert np.median(ratios) < 0.8
    assert np.mean(np.array(ratios) < 1.0) > 0.8


def test_transparent_targets_look_like_their_background(fit_contrast):
    contrast = np.median([colour_contrast(img, m) for img, m in _targets(DOMAINS["Trans10K"])])
    assert contrast < 0.7 * fit_contrast


@pytest.mark.parametrize("dataset", ["BIG", "COIFT"])
def test_thin_structures_are_lost_at_the_model_input(dataset):
    fractions = [thin_fraction(m) for _, m in _targets(DOMAINS[dataset])]
    assert np.mean(fractions) > 0.15


def test_flare_targets_are_bright_light_on_a_dark_scene():
    for img, masks in (render_item(DOMAINS["Flare7K"], 0, "test", i)[1:] for i in range(4)):
        lum = img.astype(np.float32).mean(axis=-1) / 255
        assert np.median(lum) < 0.35
        assert all(lum[m].mean() > 1.5 * np.median(lum) for m in masks)


def test_knobs_control_difficulty():
    # a fully lit "shadow" (gain 1) is invisible: the knob really drives the darkness
    soft = DOMAINS["ISTD"].with_knobs(shadow_gain=(0.97, 0.99), colour_cast=(0.0, 0.0))
    ratios = [luminance_ratio(img, m) for img, m in _targets(soft, 3)]
    assert np.median(ratios) > 0.9
    assert DOMAINS["ISTD"].knobs.shadow_gain != soft.knobs.shadow_gain  # specs are immutable


# --------------------------------------------------------------------------- cache and CLI

def test_ensure_mini_generates_once_and_reuses(tmp_path):
    root = tmp_path / "cache" / "UncertSAM-mini"
    sizes = dict(fit_sizes=(1, 1, 1), domain_sizes=(1, 1), progress=False, workers=1,
                 domains={"ISTD": DOMAINS["ISTD"]})
    assert mini.ensure_mini(root, seed=0, **sizes) == root
    assert (root / mini.MARKER_NAME).is_file()
    stamp = (root / "fit" / "train" / "images" / "00000000.jpg").stat().st_mtime_ns
    mini.ensure_mini(root, seed=0, **sizes)
    assert (root / "fit" / "train" / "images" / "00000000.jpg").stat().st_mtime_ns == stamp
    assert not [p for p in root.parent.iterdir() if ".tmp-" in p.name]  # no temporary folder left
    # an incomplete benchmark (no marker) is regenerated
    (root / mini.MARKER_NAME).unlink()
    mini.ensure_mini(root, seed=0, **sizes)
    assert (root / mini.MARKER_NAME).is_file()
    # tuned knobs are a different benchmark: regenerated, and the marker records them
    tuned = dict(sizes, domains={"ISTD": DOMAINS["ISTD"].with_knobs(shadow_gain=(0.5, 0.5))})
    mini.ensure_mini(root, seed=0, **tuned)
    assert mini.read_marker(root)["knobs"]["ISTD"]["shadow_gain"] == [0.5, 0.5]


def test_default_root_is_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path))
    assert mini.default_root(7) == tmp_path / f"UncertSAM-mini-v{mini.MINI_VERSION}-seed7"


def test_make_mini_writes_to_out_or_fills_the_cache(monkeypatch, tmp_path):
    """What ``uncertsam data mini`` runs: ``--out`` generates there, no ``--out`` the (small) cache folder."""
    from uncertsam_utils.data.mini import cache

    calls = {}
    monkeypatch.setattr(cache, "generate_mini", lambda out, seed, **kw: calls.update(out=out, seed=seed, **kw) or out)
    monkeypatch.setattr(cache, "ensure_mini", lambda root, seed, **kw: calls.update(root=root, seed=seed, **kw) or root)
    assert mini.make_mini(tmp_path / "b", 2, small=True) == tmp_path / "b"
    assert calls["out"] == tmp_path / "b" and calls["seed"] == 2
    assert calls["fit_sizes"] == mini.SMALL_FIT_SIZES and calls["domain_sizes"] == mini.SMALL_DOMAIN_SIZES
    monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path))
    assert mini.make_mini(None, 3, workers=1) == tmp_path / f"UncertSAM-mini-v{mini.MINI_VERSION}-seed3"
    assert calls["fit_sizes"] == mini.FIT_SIZES and calls["workers"] == 1
    assert mini.make_mini(None, 3, small=True).name == f"UncertSAM-mini-v{mini.MINI_VERSION}-seed3-small"


def test_fingerprint_reads_the_renderers_under_their_old_names():
    """The move into ``data/mini/`` kept the fingerprint (and every cache key built on the marker): the
    renderers are hashed as the 0.1 files ``data/mini_<name>.py``; the modules that draw nothing are not."""
    from uncertsam_utils.data.mini import generate

    sources = dict(generate._renderer_sources())
    renderers = ("camouflage", "common", "ct", "domains", "fit", "flare", "glass", "shadows", "shapes",
                 "textures", "thin")
    assert sorted(sources) == [f"mini_{name}.py" for name in renderers]
    assert all(b"uncertsam_utils.data.mini." not in text for text in sources.values())
    assert b"from uncertsam_utils.data.mini_common import image_rng" in sources["mini_domains.py"]
    assert generate.generator_fingerprint() == mini.generator_fingerprint()
    assert len(mini.generator_fingerprint()) == 16
