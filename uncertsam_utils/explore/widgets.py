"""The explorer's widgets: draw boxes on an image, see the maps; a drill-down table that opens objects.

``explorer_widget(explorer)`` shows a domain and image picker, an upload button for an image of
your own, the box-drawing widget (jupyter-bbox-widget) and an output area with the methods' figure
and metrics. Drawing, moving or deleting a box changes the widget's ``bboxes`` state, which
recomputes the maps; the line above the figure (``Explorer.summary``) says which update it is.
``drilldown_widget(explorer, results, ...)`` sorts the evaluation's objects by any metric or by Δ
against the baseline and opens the selected one in the explorer (the same widget updates).
"""

from __future__ import annotations

import io

import numpy as np

BOX_LABEL = "object"


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def to_widget_boxes(boxes_px: np.ndarray) -> list[dict]:
    """xyxy pixel boxes → the widget's ``{x, y, width, height, label}`` records."""
    return [{"x": float(x0), "y": float(y0), "width": float(x1 - x0), "height": float(y1 - y0), "label": BOX_LABEL}
            for x0, y0, x1, y1 in np.asarray(boxes_px, np.float64).reshape(-1, 4)]


def from_widget_boxes(records) -> np.ndarray:
    """The widget's records → xyxy pixel boxes (B, 4); boxes drawn right to left are normalised."""
    boxes = []
    for r in records:
        x0, y0 = float(r["x"]), float(r["y"])
        x1, y1 = x0 + float(r["width"]), y0 + float(r["height"])
        boxes.append([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def without_empty_boxes(boxes_px: np.ndarray) -> np.ndarray:
    """The boxes with a width and a height of at least one pixel. jupyter-bbox-widget sends its state
    at mouse-down with the new box at zero size (and keeps a box of a click without a drag): computing
    maps for it would waste an update and send the boxes back to the browser in the middle of a drag."""
    boxes = np.asarray(boxes_px, np.float32).reshape(-1, 4)
    return boxes[(boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)]


class ExplorerWidget:
    """The box widget, the pickers and the output area around one ``Explorer``."""

    def __init__(self, explorer):
        import ipywidgets as w
        from jupyter_bbox_widget import BBoxWidget

        self.explorer = explorer
        self.output = w.Output()
        self.status = w.HTML()
        # At most 520 px wide: the whole image fits on a laptop screen above its maps.
        self.boxes = BBoxWidget(classes=[BOX_LABEL], label=BOX_LABEL, hide_buttons=True, layout=w.Layout(max_width="520px"))
        self.dataset = w.Dropdown(options=explorer.datasets, description="domain")
        self.image_id = w.Dropdown(options=[], description="image")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="your image")
        self._syncing = False
        self._sync_pickers()
        self.dataset.observe(self._on_dataset, names="value")
        self.image_id.observe(self._on_image, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.boxes.observe(self._on_boxes, names="bboxes")
        self.box = w.VBox([w.HBox([self.dataset, self.image_id, self.upload]), self.boxes, self.status, self.output])
        self.refresh(image_changed=True)

    # -------------------------------------------------------------- explorer → widgets
    def refresh(self, *, image_changed: bool = False) -> None:
        """Show the explorer's current image, boxes and maps."""
        from IPython.display import display

        self._syncing = True
        try:
            if image_changed:
                self.boxes.image_bytes = png_bytes(self.explorer.image.image)
            self.boxes.bboxes = to_widget_boxes(self.explorer.boxes_in_pixels())
        finally:
            self._syncing = False
        self.output.clear_output(wait=True)
        if len(self.explorer.boxes) == 0:
            self.status.value = "<b>draw a box on the image</b>"
            return
        self.status.value = "computing…"
        with self.output:
            try:
                self.explorer.show()
            except Exception as err:  # noqa: BLE001 (shown to the user; the widget stays usable)
                display(f"the methods failed on these boxes: {type(err).__name__}: {err}")
                raise
        self.status.value = f'<span class="uncertsam-explorer-status">{self.explorer.summary()}</span>'

    def _sync_pickers(self) -> None:
        image = self.explorer.image
        self._syncing = True
        try:
            if image is not None and image.dataset in self.explorer.datasets:
                self.dataset.value = image.dataset
                self._image_options(image.dataset)
                self.image_id.value = image.image_id
        finally:
            self._syncing = False

    def _image_options(self, dataset: str) -> None:
        from ..data.layout import SplitReader

        self.image_id.options = list(SplitReader(self.explorer.root, dataset, self.explorer.split).image_ids)

    # -------------------------------------------------------------- widgets → explorer
    def _on_boxes(self, change) -> None:
        if self._syncing:
            return
        drawn = without_empty_boxes(from_widget_boxes(change["new"]))
        if drawn.shape == self.explorer.boxes_in_pixels().shape and np.allclose(drawn, self.explorer.boxes_in_pixels(), atol=0.5):
            return
        self.explorer.set_boxes(drawn)
        self.refresh()

    def _on_dataset(self, change) -> None:
        if self._syncing:
            return
        self.explorer.open_image(change["new"])  # its first image
        self._sync_pickers()
        self.refresh(image_changed=True)

    def _on_image(self, change) -> None:
        if self._syncing or change["new"] is None:
            return
        self.explorer.open_image(self.dataset.value, int(change["new"]))
        self.refresh(image_changed=True)

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        content = files[0]["content"]
        self.explorer.open_file(bytes(content))
        self.refresh(image_changed=True)

    def open_object(self, dataset: str, image_id: int, mask_id: int) -> None:
        self.explorer.open_object(dataset, image_id, mask_id)
        self._sync_pickers()
        self.refresh(image_changed=True)


def explorer_widget(explorer) -> ExplorerWidget:
    if explorer.image is None:
        explorer.open_image(explorer.datasets[0])
    return ExplorerWidget(explorer)


class DrilldownWidget:
    """The evaluation's objects sorted by a metric or by Δ against the baseline; "open" shows one in
    the explorer widget."""

    def __init__(self, view: ExplorerWidget, results, *, methods, metrics, baseline: str = "baseline", rows: int = 15):
        import ipywidgets as w

        self.view, self.results, self.baseline, self.rows = view, results, baseline, rows
        compared = [m for m in methods if m != baseline] or [baseline]
        self.method = w.Dropdown(options=compared, description="method")
        self.metric = w.Dropdown(options=list(metrics), value="pearson" if "pearson" in metrics else metrics[0], description="metric")
        self.sort_by = w.Dropdown(options=[("Δ vs. baseline", "delta"), ("the method's value", "method"),
                                           ("the baseline's value", "baseline")] + [(m, m) for m in metrics if m != "pearson"],
                                  description="sort by")
        self.order = w.ToggleButtons(options=[("worst first", None), ("ascending", True), ("descending", False)])
        self.domain = w.Dropdown(options=[("all domains", None)] + [(d, d) for d in sorted(set(results["dataset"]))],
                                 description="domain")
        self.choice = w.Select(options=[], rows=min(rows, 10), layout=w.Layout(width="95%"))
        self.open = w.Button(description="open in explorer", button_style="primary")
        self.table = w.Output()
        for control in (self.method, self.metric, self.sort_by, self.order, self.domain):
            control.observe(lambda _: self.update(), names="value")
        self.open.on_click(lambda _: self.open_selected())
        self.box = w.VBox([w.HBox([self.method, self.metric, self.domain]), w.HBox([self.sort_by, self.order]),
                           self.table, self.choice, self.open])
        self.update()

    def frame(self):
        from .drilldown import drilldown

        return drilldown(self.results, self.metric.value, self.method.value, baseline=self.baseline,
                         sort_by=self.sort_by.value, ascending=self.order.value,
                         datasets=None if self.domain.value is None else [self.domain.value])

    def update(self) -> None:
        from IPython.display import display

        from .drilldown import describe_row

        top = self.frame().head(self.rows)
        self.table.clear_output(wait=True)
        with self.table:
            display(top.style.format(precision=3).hide(axis="index"))
        self.choice.options = [(describe_row(row), i) for i, row in top.iterrows()]

    def open_selected(self) -> None:
        if self.choice.value is None:
            return
        row = self.frame().iloc[self.choice.value]
        self.view.open_object(row["dataset"], int(row["image_id"]), int(row["mask_id"]))


def drilldown_widget(view: ExplorerWidget, results, *, methods, metrics, baseline: str = "baseline") -> DrilldownWidget:
    return DrilldownWidget(view, results, methods=methods, metrics=metrics, baseline=baseline)
