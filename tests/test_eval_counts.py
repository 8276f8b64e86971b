"""counts.json: every image file and annotation of an evaluated split is read, scored or skipped by a
named reason (issue 21, item 3), and ``load_counts`` reads them back as a table."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import ndimage

from uncertsam_utils.data.layout import SplitReader, split_dir, write_split
from uncertsam_utils.data.rle import encode_mask
from uncertsam_utils.evaluation import counts_path, evaluate, evaluate_datasets, load_counts, load_results
from uncertsam_utils.model import Predictor
from uncertsam_utils.uq import make_method

pytestmark = pytest.mark.usefixtures("one_thread")


def _blob(rng, h, w):
    field = ndimage.gaussian_filter(rng.random((h, w)), 4)
    return field > np.quantile(field, 0.8)


def _line(h, w):
    """12 pixels in a one-pixel row of a 512² image: nothing left at the nano's 256² input."""
    mask = np.zeros((h, w), bool)
    mask[100, 100:112] = True
    return mask


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """One split with every kind of skip: ids 1-3 ordinary, 4 one blob + one vanishing line, 5 only a
    vanishing line (left without masks), 6 only an empty annotation (no objects), plus a hidden file, a
    text file, an annotation of a missing image, an empty and a small mask."""
    root = tmp_path_factory.mktemp("messy")
    rng = np.random.default_rng(3)
    image = lambda h, w: (ndimage.gaussian_filter(rng.random((h, w, 3)), (3, 3, 0)) * 255).astype(np.uint8)
    items = [(i, image(48, 40), [_blob(rng, 48, 40) for _ in range(i)]) for i in (1, 2, 3)]
    items += [(4, image(512, 512), [_blob(rng, 512, 512), _line(512, 512)]), (5, image(512, 512), [_line(512, 512)]),
              (6, image(40, 40), [_blob(rng, 40, 40)])]
    write_split(root, "COIFT", "test", items)
    split = split_dir(root, "COIFT", "test")
    annotations_file = split / "annotations" / "dataset.json"
    records = json.loads(annotations_file.read_text())["annotations"]
    records = [r for r in records if r["image_id"] != 6]  # image 6: no annotation left -> no_objects
    empty, small = np.zeros((48, 40), bool), np.zeros((48, 40), bool)
    small[0, :3] = True
    records += [{"id": 101, "image_id": 99, "segmentation": records[0]["segmentation"], "area": 1},  # missing image
                {"id": 102, "image_id": 1, "segmentation": encode_mask(empty), "area": 0},
                {"id": 103, "image_id": 2, "segmentation": encode_mask(small), "area": 3}]
    annotations_file.write_text(json.dumps({"annotations": records}))
    (split / "images" / "._00000001.jpg").write_bytes(b"macOS")
    (split / "images" / "notes.txt").write_text("not an image")
    return root


def test_every_image_and_mask_is_scored_or_skipped_by_reason(messy, nano_random, tmp_path):
    predictor = Predictor(nano_random.model)
    evaluate_datasets(predictor, {"baseline": make_method("baseline"), "prompt": make_method("prompt", K=2)}, messy,
                      ["COIFT"], tmp_path, progress=False)
    counts = json.loads(counts_path(tmp_path, "COIFT").read_text())
    assert counts["images"] == {"read": 8, "scored": 4, "skipped": {
        "hidden_file": 1, "not_jpg": 1, "no_objects": 1, "beyond_max_images": 0, "no_masks_at_input_size": 1}}
    assert counts["masks"] == {"read": 12, "scored": 7, "skipped": {
        "missing_image": 1, "empty_mask": 1, "small_mask": 1, "vanishes_after_resize": 0, "beyond_max_images": 0,
        "vanishes_at_input_size": 2}}
    assert counts["images_without_masks"] == [5] and counts["vanished_masks"] == {"4": [8], "5": [9]}
    assert (counts["split"], counts["image_size"], counts["max_images"]) == ("test", 256, None)
    results = load_results(tmp_path)  # the CSVs agree: 7 masks of 4 images per method, image 5 absent
    assert len(results) == 2 * 7 and sorted(results.image_id.unique()) == [1, 2, 3, 4]


def test_max_images_and_the_table_of_counts(messy, nano_random, tmp_path):
    reader = SplitReader(messy, "COIFT", "test", resize_check_size=None)
    evaluate(Predictor(nano_random.model), {"baseline": make_method("baseline")}, reader, tmp_path, max_images=2,
             progress=False)
    table = load_counts(tmp_path, ["COIFT"])
    row = table.iloc[0]
    assert (row.dataset, row.images_read, row.images_scored, row.masks_scored) == ("COIFT", 8, 2, 3)
    assert row.images_skipped_beyond_max_images == 3 and row.masks_skipped_beyond_max_images == 6
    assert row.images_read == row.images_scored + row.images_skipped
    assert row.masks_read == row.masks_scored + row.masks_skipped
    assert row.max_images == 2
    assert list(load_counts(tmp_path).dataset) == ["COIFT"]
    # the sentence the notebooks' tables carry (analysis.counts_note), from this real evaluation
    from uncertsam_utils.analysis import counts_note

    note = counts_note(table)
    assert note.startswith("Scored per dataset: COIFT 2 of 8 images (6 skipped), 3 of 12 masks (9 skipped).")
    assert "images beyond_max_images: 3" in note and "masks beyond_max_images: 6" in note and "images hidden_file: 1" in note
    assert ": 0" not in note  # reasons that skipped nothing are not listed
    clean = table.assign(**{c: 0 for c in table.columns if "skipped" in c})
    assert counts_note(clean).endswith("Nothing was skipped.")
    with pytest.raises(ValueError, match="what it scored"):
        counts_note(table.iloc[:0])
    with pytest.raises(FileNotFoundError, match="BIG/counts.json"):
        load_counts(tmp_path, ["COIFT", "BIG"])


def test_a_folder_whose_methods_scored_different_masks_is_refused(messy, nano_random, tmp_path):
    predictor = Predictor(nano_random.model)
    methods = {"baseline": make_method("baseline"), "prompt": make_method("prompt", K=2)}
    evaluate_datasets(predictor, methods, messy, ["COIFT"], tmp_path, progress=False)
    prompt = tmp_path / "COIFT" / "prompt.csv"
    lines = prompt.read_text().splitlines(keepends=True)
    prompt.write_text("".join(lines[:-1]))  # one row less than baseline.csv
    with pytest.raises(ValueError, match="score different masks"):
        evaluate_datasets(predictor, methods, messy, ["COIFT"], tmp_path, progress=False)


def test_counts_are_written_for_an_evaluation_that_predates_them(messy, nano_random, tmp_path):
    """A cached folder without counts.json (written before it existed) gets one on the next run,
    derived from its CSVs, without predicting anything again."""
    predictor = Predictor(nano_random.model)
    methods = {"baseline": make_method("baseline")}
    evaluate_datasets(predictor, methods, messy, ["COIFT"], tmp_path, progress=False)
    path = counts_path(tmp_path, "COIFT")
    before = path.read_bytes()
    path.unlink()
    shutil.rmtree(tmp_path / "COIFT" / ".parts", ignore_errors=True)
    evaluate_datasets(predictor, methods, messy, ["COIFT"], tmp_path, progress=False)
    assert path.read_bytes() == before
