"""The explorer's state: one image, its boxes, and the methods' results for them (no widgets here).

``Explorer`` holds the current image and boxes and recomputes ``explore`` when they change. The
notebook drives it with plain calls (``open_image``, ``open_object``, ``open_file``, ``set_boxes``,
``show``), which is all a headless run (papermill, nbval) executes; ``explore.widgets`` adds the
box-drawing widget and the drill-down controls on top of the same calls.
"""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from .core import SHOWN_METRICS, Exploration, benchmark_image, explore, from_pixels, gt_boxes, own_image, to_pixels
from .panels import method_panels, metrics_table


class Explorer:
    def __init__(self, predictor, methods: Mapping[str, object], root=None, datasets=(), *, seed: int = 42,
                 split: str = "test", metrics=SHOWN_METRICS):
        self.predictor, self.methods, self.root = predictor, dict(methods), root
        self.datasets, self.seed, self.split, self.metrics = list(datasets), seed, split, tuple(metrics)
        self.image = None
        self.boxes = np.zeros((0, 4), np.float32)  # input frame
        self.focus = None  # index of the box the figure shows alone (an object opened from the drill-down)
        self.exploration: Exploration | None = None
        self.seconds = 0.0
        self.updates = 0  # how many times the maps were computed (the widget shows it)

    # ------------------------------------------------------------------ what is explored
    def open_image(self, dataset: str, image_id: int | None = None, *, boxes=None) -> "Explorer":
        """A benchmark image; ``boxes`` in image pixels, or None: the ground-truth box of every object."""
        if self.root is None:
            raise ValueError("this explorer has no benchmark root: use open_file")
        self.image = benchmark_image(self.root, dataset, image_id, split=self.split)
        if boxes is None:
            self._set(gt_boxes(self.image, self.predictor.image_size)[0], None)
        else:
            self.set_boxes(boxes)
        return self

    def open_object(self, dataset: str, image_id: int, mask_id: int) -> "Explorer":
        """One object of the evaluation: its image with every ground-truth box (the evaluation's prompts,
        so the metrics equal its CSV rows), the figure showing that object alone."""
        self.image = benchmark_image(self.root, dataset, int(image_id), split=self.split)
        boxes, ids = gt_boxes(self.image, self.predictor.image_size)
        where = np.flatnonzero(ids == int(mask_id))
        if len(where) == 0:
            raise KeyError(f"{dataset} image {image_id} has no object {mask_id} with a box (objects: {ids.tolist()})")
        self._set(boxes, int(where[0]))
        return self

    def open_file(self, source, *, boxes=None) -> "Explorer":
        """An image of your own (path, bytes or array), without ground truth; ``boxes`` in image pixels."""
        self.image = own_image(source)
        self._set(np.zeros((0, 4), np.float32), None)
        if boxes is not None:
            self.set_boxes(boxes)
        return self

    def set_boxes(self, boxes) -> "Explorer":
        """Boxes in image pixels, xyxy ((B, 4) or a flat list of 4 numbers per box)."""
        self._require_image()
        self._set(from_pixels(boxes, self.image.hw, self.predictor.image_size), None)
        return self

    def boxes_in_pixels(self) -> np.ndarray:
        self._require_image()
        return to_pixels(self.boxes, self.image.hw, self.predictor.image_size)

    def _set(self, boxes, focus) -> None:
        self.boxes, self.focus, self.exploration = np.asarray(boxes, np.float32).reshape(-1, 4), focus, None

    def _require_image(self) -> None:
        if self.image is None:
            raise ValueError("open an image first (open_image, open_object or open_file)")

    # ------------------------------------------------------------------ results
    def run(self) -> Exploration:
        """The methods' results for the current boxes (computed once per change)."""
        self._require_image()
        if self.exploration is None:
            started = time.perf_counter()
            self.exploration = explore(self.predictor, self.methods, self.image, self.boxes, seed=self.seed)
            self.seconds = time.perf_counter() - started
            self.updates += 1
        return self.exploration

    def figure(self):
        exploration = self.run()
        objects = None if self.focus is None else [self.focus]
        return method_panels(exploration, self.predictor.image_size, objects=objects)

    def table(self):
        return metrics_table(self.run(), self.metrics)

    def summary(self) -> str:
        """One line: what was computed (the widget and the browser test read it)."""
        boxes = ", ".join("[" + ", ".join(f"{v:.0f}" for v in box) + "]" for box in self.boxes_in_pixels())
        with_truth = int((self.run().matched >= 0).sum())
        return (f"update {self.updates}: {len(self.methods)} methods on {self.image.label}, {len(self.boxes)} box(es) "
                f"{boxes} ({with_truth} with ground truth), {self.seconds:.1f} s")

    def show(self) -> None:
        """The figure and the metric table, as static outputs (what a headless run keeps)."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        figure = self.figure()
        print(self.summary())
        display(figure)
        plt.close(figure)
        table = self.table()
        if table.empty:
            print("no box matches a ground-truth object: no metrics (the maps above are still the methods')")
        else:
            display(table.style.format(precision=3))
