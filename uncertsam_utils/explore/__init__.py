"""The interactive explorer of notebook 10: each method's prediction and uncertainty map on an image
and boxes of your choice, the per-mask metrics where ground truth exists, and a drill-down table of
the evaluation that opens an object in the explorer.

``core`` computes (no plotting, no widgets), ``panels`` draws the side-by-side figure, ``drilldown``
sorts the evaluation's objects, ``explorer`` holds the state a headless run drives with plain calls,
and ``widgets`` adds the box-drawing widget and the controls (ipywidgets, jupyter-bbox-widget).
"""

from .core import OWN_IMAGE, SHOWN_METRICS, Exploration, ExplorerImage, benchmark_image, explore, gt_boxes, own_image
from .drilldown import drilldown
from .explorer import Explorer
from .panels import method_panels, metrics_table

__all__ = ["OWN_IMAGE", "SHOWN_METRICS", "Exploration", "Explorer", "ExplorerImage", "benchmark_image", "drilldown",
           "explore", "gt_boxes", "method_panels", "metrics_table", "own_image"]
