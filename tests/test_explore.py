"""The explorer of notebook 10 (uncertsam_utils.explore): the same numbers as the evaluation, boxes
that round-trip between frames and the widget, ground-truth matching, the drill-down's order, and
the widget recomputing the maps when its box state changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import smooth_image
from uncertsam_utils.data import write_split
from uncertsam_utils.explore import Explorer, drilldown, own_image
from uncertsam_utils.explore.core import box_iou, from_pixels, match_ground_truth, to_pixels
from uncertsam_utils.explore.widgets import from_widget_boxes, to_widget_boxes

DATASET, OTHER = "COD10K-v3", "ISTD"


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    """A tiny benchmark in the published layout: two images of one domain, two objects each."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("bench")
    items = []
    for image_id, (h, w) in enumerate([(72, 96), (80, 64)]):
        masks = [np.zeros((h, w), bool), np.zeros((h, w), bool)]
        masks[0][10:40, 8:50] = True
        masks[1][45:h - 4, w // 2:w - 3] = True
        items.append((image_id, smooth_image(rng, h, w), masks))
    write_split(root, DATASET, "test", items)
    write_split(root, OTHER, "test", [(5, items[0][1], items[0][2])])
    return root


@pytest.fixture(scope="module")
def methods(nano_random):
    from uncertsam_utils.evaluation import build_methods

    return build_methods(["baseline", "prompt"], nano_random, K=3)


def test_box_iou_and_matching_by_hand():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [21, 21, 30, 30]], np.float32)
    assert box_iou(a, b) == pytest.approx(np.array([[50 / 150, 1.0, 0.0], [0.0, 0.0, 81 / 100]]))
    assert match_ground_truth(a, b).tolist() == [1, 2]
    assert match_ground_truth(a[:1], b[:1]).tolist() == [-1]  # IoU 1/3 < 0.5
    # Two boxes on one object: only the better one gets it.
    assert match_ground_truth(np.array([[0, 0, 10, 10], [0, 0, 9, 10]]), a[:1]).tolist() == [0, -1]


def test_boxes_round_trip_between_frames_and_the_widget():
    boxes = np.array([[3.5, 7, 40, 61], [0, 0, 95, 71]], np.float32)
    assert to_pixels(from_pixels(boxes, (72, 96), 256), (72, 96), 256) == pytest.approx(boxes)
    records = to_widget_boxes(boxes)
    assert records[0] == {"x": 3.5, "y": 7.0, "width": 36.5, "height": 54.0, "label": "object"}
    assert from_widget_boxes(records) == pytest.approx(boxes)
    # A box drawn right to left and bottom to top has a negative width and height.
    assert from_widget_boxes([{"x": 40, "y": 61, "width": -36.5, "height": -54}]) == pytest.approx(boxes[:1])


def test_an_opened_object_scores_exactly_as_in_the_evaluation(benchmark, methods, nano_random, tmp_path, one_thread):
    from uncertsam_utils.data import SplitReader
    from uncertsam_utils.evaluation import evaluate, load_results
    from uncertsam_utils.model import Predictor

    predictor = Predictor(nano_random.model)
    evaluate(predictor, methods, SplitReader(benchmark, DATASET, "test"), tmp_path, seed=5, progress=False)
    table = load_results(tmp_path)
    explorer = Explorer(predictor, methods, benchmark, [DATASET], seed=5)
    for image_id, mask_id, index in [(0, 2, 1), (1, 3, 0)]:  # annotation ids run on over the images
        explorer.open_object(DATASET, image_id, mask_id)
        exploration = explorer.run()
        assert explorer.focus == index and len(exploration.boxes) == 2
        for method in methods:
            ours = exploration.metrics.query("method == @method and mask_id == @mask_id").iloc[0]
            theirs = table.query("method == @method and image_id == @image_id and mask_id == @mask_id").iloc[0]
            for column in ("IoU", "BIoU_2", "pearson", "spearman", "auroc", "ause", "ECE", "brier"):
                assert float(f"{ours[column]:.6g}") == pytest.approx(theirs[column], nan_ok=True, rel=1e-9), (method, column)
            # IoU by hand from the upsampled logits, thresholded at 0 as the evaluation does.
            predicted = exploration.results[method].logits[index].numpy() > 0
            truth = exploration.truth[index]
            assert ours["IoU"] == pytest.approx((predicted & truth).sum() / (predicted | truth).sum(), abs=1e-6)


def test_a_drawn_box_matches_its_object_and_a_stray_box_gets_no_metrics(benchmark, methods, nano_random, one_thread):
    from uncertsam_utils.model import Predictor

    explorer = Explorer(Predictor(nano_random.model), methods, benchmark, [DATASET], seed=0)
    explorer.open_image(DATASET, 0, boxes=[[9, 11, 49, 39], [60, 2, 90, 8]])  # near object 1; nothing
    exploration = explorer.run()
    assert exploration.matched.tolist() == [0, -1]
    assert sorted(set(exploration.metrics["mask_id"])) == [1]
    assert set(exploration.metrics["method"]) == set(methods)
    assert "2 box(es)" in explorer.summary() and "1 with ground truth" in explorer.summary()
    figure = explorer.figure()
    assert len(figure.axes) == 2 * 3 + 2  # 2 methods × (prediction, map, errors) + 2 colour bars
    explorer.open_file(np.asarray(explorer.image.image), boxes=[[9, 11, 49, 39]])
    assert explorer.run().metrics.empty and explorer.image.masks is None


def test_own_image_says_which_file_it_cannot_read(tmp_path):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not_an_image.png"):
        own_image(bad)


def test_the_widget_recomputes_when_its_boxes_change(benchmark, methods, nano_random, one_thread):
    pytest.importorskip("jupyter_bbox_widget")
    from uncertsam_utils.explore import OWN_IMAGE
    from uncertsam_utils.explore.widgets import explorer_widget, png_bytes
    from uncertsam_utils.model import Predictor

    explorer = Explorer(Predictor(nano_random.model), methods, benchmark, [DATASET, OTHER], seed=0)
    view = explorer_widget(explorer)
    assert explorer.updates == 1 and len(view.boxes.bboxes) == 2 and view.boxes.image_bytes[:4] == b"\x89PNG"
    # mouse-down: the widget sends the new box at zero size; only the mouse-up's drawn box recomputes,
    # and a click without a drag (a box left at zero size) is dropped, not kept or blocking
    click = {"x": 2, "y": 2, "width": 0, "height": 0, "label": "object"}
    view.boxes.bboxes = view.boxes.bboxes + [click]
    assert explorer.updates == 1 and len(explorer.boxes) == 2
    view.boxes.bboxes = view.boxes.bboxes + [{"x": 2, "y": 2, "width": 20, "height": 20, "label": "object"}]
    assert explorer.updates == 2 and len(explorer.boxes) == 3 and "update 2" in view.status.value
    assert len(view.boxes.bboxes) == 3  # the widget shows the explorer's boxes: the click's is gone
    view.boxes.bboxes = list(view.boxes.bboxes)  # the same boxes again: nothing to recompute
    assert explorer.updates == 2
    view.image_id.value = 1
    assert explorer.image.image_id == 1 and explorer.updates == 3
    view.dataset.value = OTHER  # its first image has the same id as before: it must still open
    assert (explorer.image.dataset, explorer.image.image_id) == (OTHER, 5) and list(view.image_id.options) == [5]
    assert explorer.updates == 4
    view._on_upload({"new": ({"name": "mine.png", "content": memoryview(png_bytes(explorer.image.image))},)})
    assert explorer.image.dataset == OWN_IMAGE and len(explorer.boxes) == 0 and "draw a box" in view.status.value
    view.boxes.bboxes = [{"x": 2, "y": 2, "width": 20, "height": 20, "label": "object"}]
    assert explorer.updates == 5 and explorer.run().metrics.empty


def test_drilldown_sorts_worst_first_by_the_metrics_direction():
    rows = []
    for mask_id, (base, lap, base_ause, lap_ause) in enumerate([(0.5, 0.7, 0.1, 0.05), (0.6, 0.2, 0.1, 0.3), (0.4, 0.45, 0.2, 0.2)]):
        rows += [{"dataset": "D", "image_id": 0, "mask_id": mask_id, "method": "baseline", "pearson": base, "ause": base_ause},
                 {"dataset": "D", "image_id": 0, "mask_id": mask_id, "method": "laplace", "pearson": lap, "ause": lap_ause}]
    frame = pd.DataFrame(rows)
    table = drilldown(frame, "pearson", "laplace")
    assert table["mask_id"].tolist() == [1, 2, 0]  # Δ −0.4, +0.05, +0.2: the worst first
    assert table["delta"].tolist() == pytest.approx([-0.4, 0.05, 0.2])
    assert drilldown(frame, "ause", "laplace")["mask_id"].tolist() == [1, 2, 0]  # lower is better: Δ +0.2 first
    assert drilldown(frame, "pearson", "laplace", ascending=False)["mask_id"].tolist() == [0, 2, 1]
    by_other = drilldown(frame, "pearson", "laplace", sort_by="ause")
    assert by_other["mask_id"].tolist() == [1, 2, 0] and "ause" in by_other.columns  # laplace's AUSE, largest first
    with pytest.raises(KeyError, match="varnet"):
        drilldown(frame, "pearson", "varnet")


def test_the_drilldown_widget_opens_the_selected_object_in_the_explorer(benchmark, methods, nano_random, tmp_path,
                                                                       one_thread):
    pytest.importorskip("jupyter_bbox_widget")
    from uncertsam_utils.data import SplitReader
    from uncertsam_utils.evaluation import evaluate, load_results
    from uncertsam_utils.explore.widgets import drilldown_widget, explorer_widget
    from uncertsam_utils.model import Predictor

    predictor = Predictor(nano_random.model)
    evaluate(predictor, methods, SplitReader(benchmark, DATASET, "test"), tmp_path, seed=3, progress=False)
    results = load_results(tmp_path)
    view = explorer_widget(Explorer(predictor, methods, benchmark, [DATASET], seed=3))
    panel = drilldown_widget(view, results, methods=list(methods), metrics=["pearson", "IoU", "ause"])
    assert panel.method.value == "prompt" and len(panel.choice.options) == 4  # every object, worst Δ first
    panel.metric.value = "IoU"
    expected = drilldown(results, "IoU", "prompt")
    label, index = panel.choice.options[-1]
    assert index == 3 and label.startswith(f"{DATASET} image {expected.iloc[3]['image_id']} mask {expected.iloc[3]['mask_id']}")
    panel.choice.value = index
    panel.open_selected()
    explorer = view.explorer
    row = expected.iloc[3]
    assert (explorer.image.image_id, int(explorer.exploration.metrics.query("box == @explorer.focus")["mask_id"].iloc[0])) == (
        row["image_id"], row["mask_id"])
    # The explorer shows the table's numbers for that object.
    ours = explorer.exploration.metrics.query("method == 'prompt' and mask_id == @row.mask_id")["IoU"].iloc[0]
    assert float(f"{ours:.6g}") == pytest.approx(row["prompt"])
    assert view.image_id.value == row["image_id"]
