"""Caches that know their inputs and prove their bytes (issue 21): keys cover the code, the libraries,
the data's content and the model (random-weight seed included); every entry is verified before reuse;
``uncertsam cache list | verify | clear``."""

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from uncertsam_utils import cache
from uncertsam_utils.cache import fingerprints
from uncertsam_utils.cli import main
from uncertsam_utils.data.layout import write_split
from uncertsam_utils.evaluation import evaluate_cached, evaluation_cache_dir, evaluation_inputs, fit_posterior_cached
from uncertsam_utils.model import Predictor, load_model
from uncertsam_utils.uq import make_method

pytestmark = pytest.mark.usefixtures("one_thread")


def _items(rng, count, first_id=1):
    items = []
    for i in range(count):
        image = (ndimage.gaussian_filter(rng.random((40, 48, 3)), (3, 3, 0)) * 255).astype(np.uint8)
        field = ndimage.gaussian_filter(rng.random((40, 48)), 4)
        items.append((first_id + i, image, [field > np.quantile(field, 0.8)]))
    return items


@pytest.fixture
def bench(tmp_path):
    root = tmp_path / "bench"
    rng = np.random.default_rng(0)
    for dataset in ("COIFT", "ISTD"):
        write_split(root, dataset, "test", _items(rng, 2))
    write_split(root, "fit", "train", _items(rng, 2))
    write_split(root, "fit", "val", _items(rng, 1))
    return root


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    monkeypatch.setenv("UNCERTSAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UNCERTSAM_RESULTS_CACHE", str(tmp_path / "results"))
    return tmp_path / "results"


# ------------------------------------------------------------------------------------ fingerprints

def test_the_source_fingerprint_follows_the_computing_code_only(tmp_path):
    package = tmp_path / "pkg"
    (package / "metrics").mkdir(parents=True)
    (package / "cli").mkdir()
    (package / "metrics" / "iou.py").write_text("def iou(a, b):\n    return (a & b).sum() / (a | b).sum()\n")
    (package / "cli" / "eval.py").write_text("print('cli')\n")
    (package / "analysis.py").write_text("x = 1\n")
    (package / "configs.yaml").write_text("a: 1\n")
    first = fingerprints.source_fingerprint(package)
    assert [p.name for p in fingerprints.source_files(package)] == ["configs.yaml", "iou.py"]
    (package / "cli" / "eval.py").write_text("print('the command line changed')\n")
    (package / "analysis.py").write_text("x = 2\n")
    assert fingerprints.source_fingerprint(package) == first  # readers of cached results do not count
    (package / "metrics" / "iou.py").write_text("def iou(a, b):\n    return (a & b).sum() / (a | b).sum() + 1\n")
    assert fingerprints.source_fingerprint(package) != first
    (package / "configs.yaml").write_text("a: 2\n")
    assert len({first, fingerprints.source_fingerprint(package)}) == 2


def test_the_real_package_fingerprint_covers_metrics_uq_data_and_model():
    names = {p.relative_to(fingerprints._package_dir()).as_posix() for p in fingerprints.source_files()}
    for needed in ("metrics/segmentation.py", "uq/measures.py", "uq/prompt_perturbation.py",
                   "uq/laplace/predictive.py", "data/layout.py", "model/predictor.py", "evaluation/driver.py"):
        assert needed in names
    assert not any(n.startswith(("cli/", "analysis", "plots")) for n in names)


def test_data_content_is_hashed_once_and_a_changed_file_changes_it(bench, monkeypatch):
    parts = ["COIFT/test", "fit/train"]
    first = cache.data_fingerprint(bench, parts)
    assert first["marker"] is None and set(first["content"]) == set(parts)
    calls = []
    original = fingerprints.file_sha256
    monkeypatch.setattr(fingerprints, "file_sha256", lambda p, *a: calls.append(p.name) or original(p, *a))
    assert cache.data_fingerprint(bench, parts) == first and calls == []  # remembered by size and mtime
    image = bench / "COIFT" / "test" / "images" / "00000001.jpg"
    data = bytearray(image.read_bytes())
    data[-3] ^= 0xFF
    image.write_bytes(bytes(data))
    second = cache.data_fingerprint(bench, parts)
    assert calls == ["00000001.jpg"]  # only the changed file is read again
    assert second["content"]["COIFT/test"] != first["content"]["COIFT/test"]
    assert second["content"]["fit/train"] == first["content"]["fit/train"]
    with pytest.raises(FileNotFoundError, match="BIG/test"):
        cache.data_fingerprint(bench, ["BIG/test"])


def test_the_same_sizes_written_again_into_the_same_folder_give_another_key(bench, nano_random):
    """Regenerating a benchmark with other knobs into the same folder: same names and sizes, other bytes."""
    methods = {"baseline": make_method("baseline")}
    before = evaluation_inputs(nano_random, methods, bench, ["COIFT"], {}, max_images=None, seed=0, split="test")
    write_split(bench, "COIFT", "test", _items(np.random.default_rng(7), 2), overwrite=True)
    after = evaluation_inputs(nano_random, methods, bench, ["COIFT"], {}, max_images=None, seed=0, split="test")
    assert evaluation_cache_dir("t", before) != evaluation_cache_dir("t", after)


def test_keys_cover_the_code_the_libraries_and_the_random_weight_seed(bench, nano_random, monkeypatch):
    other_seed = load_model("nano", "random", seed=1)
    assert nano_random.identity()["random_seed"] == 0 and other_seed.identity()["random_seed"] == 1
    assert "random_seed" not in load_model("nano").identity()  # real weights: the file hash says it all
    methods = {"baseline": make_method("baseline")}
    inputs = evaluation_inputs(nano_random, methods, bench, ["COIFT"], {}, max_images=None, seed=0, split="test")
    other = evaluation_inputs(other_seed, methods, bench, ["COIFT"], {}, max_images=None, seed=0, split="test")
    base = evaluation_cache_dir("t", inputs)
    assert evaluation_cache_dir("t", other) != base
    with monkeypatch.context() as patched:
        patched.setattr(fingerprints, "source_fingerprint", lambda *a: "edited metric")
        assert evaluation_cache_dir("t", inputs) != base
    with monkeypatch.context() as patched:
        patched.setattr(fingerprints, "library_versions", lambda: {"torch": "0.0"})
        assert evaluation_cache_dir("t", inputs) != base
    assert evaluation_cache_dir("t", inputs) == base


def test_keys_cover_the_torch_thread_count_the_cpu_and_the_device(bench, nano_random, monkeypatch):
    """One model, one input, 1 or 2 torch threads: other bits (the encoder's convolutions sum in
    another order), so a result computed with one count must not be served for the other."""
    from uncertsam_utils.artifacts import model_key

    methods = {"baseline": make_method("baseline")}
    inputs = evaluation_inputs(nano_random, methods, bench, ["COIFT"], {}, max_images=None, seed=0, split="test")
    base = evaluation_cache_dir("t", inputs)
    torch.set_num_threads(2)
    try:
        assert evaluation_cache_dir("t", inputs) != base
    finally:
        torch.set_num_threads(1)
    assert evaluation_cache_dir("t", inputs) == base
    with monkeypatch.context() as patched:
        patched.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "other ISA")
        assert evaluation_cache_dir("t", inputs) != base
    assert model_key(nano_random) == {**nano_random.identity(), "device": "cpu"}
    assert inputs["model"]["device"] == "cpu"


def test_the_notebook_session_sets_the_one_thread_count(bench):
    from uncertsam_utils.session import NOTEBOOK_THREADS, open_session

    torch.set_num_threads(2)
    try:
        session = open_session(bench, "nano", "random", verbose=False)
        assert torch.get_num_threads() == NOTEBOOK_THREADS == 1
        assert session.datasets == ["COIFT", "ISTD"]
    finally:
        torch.set_num_threads(1)


# ----------------------------------------------------------------------------- verified entries

def _evaluate(bench, loaded, log):
    return evaluate_cached("t", Predictor(loaded.model), loaded, {"baseline": make_method("baseline")}, bench,
                           ["COIFT", "ISTD"], {}, seed=0, log=log)


def test_an_edited_byte_of_a_cached_csv_is_detected_and_the_evaluation_recomputed(bench, nano_random, monkeypatch):
    from uncertsam_utils.evaluation import cache as evaluation_cache

    said = []
    out = _evaluate(bench, nano_random, said.append)
    csv = out / "COIFT" / "baseline.csv"
    original = csv.read_bytes()
    record = json.loads((out / "cache-entry.json").read_text())
    assert record["kind"] == "evaluations" and "COIFT/baseline.csv" in record["files"]
    assert record["key"]["code"] == cache.source_fingerprint() and record["key"]["model"]["random_seed"] == 0
    # complete and verified: reused without evaluating anything
    with monkeypatch.context() as patched:
        patched.setattr(evaluation_cache, "evaluate_datasets", lambda *a, **k: pytest.fail("recomputed"))
        assert _evaluate(bench, nano_random, said.append) == out and said == []
    edited = bytearray(original)
    edited[len(edited) // 2] = ord("7") if edited[len(edited) // 2] != ord("7") else ord("3")
    csv.write_bytes(bytes(edited))
    assert _evaluate(bench, nano_random, said.append) == out
    assert len(said) == 1 and "COIFT/baseline.csv" in said[0] and "recomputing" in said[0]
    assert csv.read_bytes() == original  # recomputed, byte-identical
    assert cache.verify_entry(out) == []


def test_a_truncated_or_extra_file_fails_verification(bench, nano_random):
    out = _evaluate(bench, nano_random, print)
    (out / "ISTD" / "stray.csv").write_text("image_id\n")
    csv = out / "COIFT" / "baseline.csv"
    csv.write_bytes(csv.read_bytes()[:-10])
    problems = cache.verify_entry(out)
    assert any("COIFT/baseline.csv: SHA-256" in p for p in problems)
    assert any("ISTD/stray.csv: not in the record" in p for p in problems)


def test_a_corrupt_cached_posterior_is_refitted(bench, nano_random):
    said = []
    path = fit_posterior_cached(bench, nano_random, "exact", fit_images=2, progress=False, log=said.append)
    assert cache.verify_entry(path) == [] and len(said) == 1 and "fitting" in said[0]
    fitted = path.read_bytes()
    path.write_bytes(fitted[:-100])
    said.clear()
    assert fit_posterior_cached(bench, nano_random, "exact", fit_images=2, progress=False, log=said.append) == path
    assert "failed verification" in said[0] and "fitting" in said[1]
    assert cache.verify_entry(path) == []


# ---------------------------------------------------------------------------------- the command

def test_cache_list_verify_and_clear(bench, nano_random, caches, capsys):
    out = _evaluate(bench, nano_random, print)
    (caches / "evaluations" / "t-unfinished").mkdir()
    capsys.readouterr()
    assert main(["cache", "list"]) == 0
    listed = capsys.readouterr().out
    assert out.name in listed and "recorded" in listed and "t-unfinished" in listed and "unfinished" in listed
    assert main(["cache", "verify"]) == 0
    assert f"ok          evaluations/{out.name}" in capsys.readouterr().out
    csv = out / "ISTD" / "baseline.csv"
    csv.write_text(csv.read_text().replace("ISTD", "ISTE", 1))
    assert main(["cache", "verify"]) == 1
    text = capsys.readouterr().out
    assert f"FAILED      evaluations/{out.name}: ISTD/baseline.csv: SHA-256" in text and "1 entry failed" in text
    assert main(["cache", "verify", "--remove-bad"]) == 1 and not out.exists()
    capsys.readouterr()
    assert main(["cache", "clear", "--kind", "evaluations"]) == 0
    assert "removed 1 entries" in capsys.readouterr().out and not (caches / "evaluations").exists()
    assert (bench / "COIFT").is_dir()  # the data is never touched


# ------------------------------------------------------------------------------ drops and gaps

def _results(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["dataset", "method", "image_id", "mask_id", "IoU"])


def test_means_over_fewer_datasets_than_requested_are_an_error_unless_allowed():
    from uncertsam_utils.evaluation import CoverageError, check_coverage

    results = _results([("A", "x", 1, 1, 0.5), ("A", "y", 1, 1, 0.4), ("B", "x", 1, 1, 0.7),
                        ("B", "y", 1, 1, float("nan"))])
    assert check_coverage(results, ["x", "y"], requested=["A"]).note == ""
    with pytest.raises(CoverageError, match=r"over 1 of the 3 requested datasets:\n  B: no scored mask for y\n"
                                            r"  C: no scored mask for x, y"):
        check_coverage(results, ["x", "y"], requested=["A", "B", "C"])
    coverage = check_coverage(results, ["x", "y"], requested=["A", "B", "C"], allow_missing_datasets=True,
                              left_out={"z": "needs a head"})
    assert coverage.complete == ["A"]
    assert coverage.note == (" Dataset means over 1 of the 3 requested datasets (B: no scored mask for y; C: no scored "
                             "mask for any method; allowed by allow_missing_datasets). Left out, allowed by "
                             "allow_missing_methods: z (needs a head).")


def test_a_method_that_fails_to_build_stops_unless_allowed(nano_random):
    from uncertsam_utils.evaluation import MethodsUnavailable, build_available

    with pytest.raises(MethodsUnavailable, match=r"cannot build varnet, laplace:\n  varnet: .*variance head"):
        build_available(["baseline", "varnet", "laplace"], nano_random)
    said = []
    built, left_out = build_available(["baseline", "varnet", "laplace"], nano_random, allow_missing=True,
                                      log=said.append)
    assert list(built) == ["baseline"] and list(left_out) == ["varnet", "laplace"]
    assert said[0].startswith("left out varnet: method 'varnet' needs a trained variance head")
    with pytest.raises(KeyError, match="unknown method"):
        build_available(["baselne"], nano_random, allow_missing=True)
    torch.manual_seed(0)


def test_an_unfinished_evaluation_is_resumed_not_removed_and_a_file_without_record_is_recomputed(tmp_path):
    folder = tmp_path / "evaluations" / "06-x"
    (folder / "BIG").mkdir(parents=True)
    (folder / "BIG" / "baseline.csv").write_text("image_id\n")
    said = []
    assert not cache.reuse_entry(folder, said.append) and folder.is_dir() and said == []  # the driver resumes it
    posterior = tmp_path / "laplace" / "p.pt"
    posterior.parent.mkdir()
    posterior.write_bytes(b"written before the record")
    assert not cache.reuse_entry(posterior, said.append) and not posterior.exists()
    assert "cache-entry" not in said[0] and "entry.json is missing" in said[0]
    cache.record_entry(folder, "evaluations", {"k": 1})
    assert cache.reuse_entry(folder, said.append) and cache.read_record(folder)["key"] == {"k": 1}
