"""Every figure style of the project, one module per kind of figure:

* ``palette``: one colour and one marker per method (``METHOD_COLOURS``, ``METHOD_MARKERS``), map labels
  and ranges;
* ``overlays``: instance overlays, boxes, outlines, error maps and their legend;
* ``qualitative``: one method's qualitative rows, and which objects are shown (``example_objects``: a
  stated rule, or the objects ``analysis.select_examples`` chose);
* ``comparison``: every method on the same objects side by side;
* ``by_dataset``: the Figure-3 analogue (per dataset, mean over datasets, Δ against the baseline) and
  tables of means with intervals as figures (Table 1);
* ``curves``: reliability diagrams and risk–coverage curves per domain;
* ``refinement``: the refinement before/after figure.

Every public name of the 0.2 module ``uncertsam_utils.plots`` is importable from here.
"""

from __future__ import annotations

from .by_dataset import delta_panel, figure3, interval_figure, means_panel, metric_by_dataset
from .comparison import ComparisonRow, comparison_rows, method_comparison_grid
from .curves import reliability_diagrams, reliability_table, risk_coverage_curves, risk_coverage_table
from .overlays import (
    box_to_original_frame,
    crop_window,
    draw_box,
    draw_boxes,
    error_image,
    error_legend,
    outline,
    overlay_masks,
    tint,
)
from .palette import (
    COMBINATION_COLOURS,
    FALSE_NEGATIVE_COLOUR,
    FALSE_POSITIVE_COLOUR,
    FIGURE_GROUPS,
    INSTANCE_COLOURS,
    MAP_LABELS,
    MAP_RANGES,
    METHOD_COLOURS,
    METHOD_MARKERS,
    UNCERTAINTY_CMAP,
    evaluation_colour,
    method_colour,
    method_marker,
)
from .qualitative import (
    MEDIAN_AREA_RULE,
    ExampleImage,
    QualitativeRow,
    example_objects,
    median_area_images,
    percentile_map,
    qualitative_grid,
    qualitative_rows,
    row_from_result,
)
from .refinement import RefinementExample, refinement_examples, refinement_grid

__all__ = [
    "COMBINATION_COLOURS", "ComparisonRow", "ExampleImage", "FALSE_NEGATIVE_COLOUR", "FALSE_POSITIVE_COLOUR",
    "FIGURE_GROUPS", "INSTANCE_COLOURS", "MAP_LABELS", "MAP_RANGES", "MEDIAN_AREA_RULE", "METHOD_COLOURS",
    "METHOD_MARKERS", "QualitativeRow", "RefinementExample", "UNCERTAINTY_CMAP", "box_to_original_frame",
    "comparison_rows", "crop_window", "delta_panel", "draw_box", "draw_boxes", "error_image", "error_legend", "evaluation_colour",
    "example_objects", "figure3", "interval_figure", "means_panel", "median_area_images", "method_colour",
    "method_comparison_grid", "method_marker", "metric_by_dataset", "outline", "overlay_masks", "percentile_map",
    "qualitative_grid", "qualitative_rows", "refinement_examples", "refinement_grid", "reliability_diagrams",
    "reliability_table", "risk_coverage_curves", "risk_coverage_table", "row_from_result", "tint",
]
