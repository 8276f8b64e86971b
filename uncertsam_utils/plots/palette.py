"""One fixed palette: a colour and a marker per method, used by every figure of the project.

The colours were chosen so that the methods shown together differ clearly: between any two methods
of notebook 06 (baseline, tta, prompt, laplace, laplace-paper, varnet and the two combinations) or of
notebook 07 (baseline and the refinement variants) the CIEDE2000 colour difference is at least 25,
between any two methods at least 19 (the two Laplace greens used before differed by 19.8); every
method also has its own marker, so points stay apart in grey print and for colour-blind readers
(tests/test_plots.py checks both).
"""

from __future__ import annotations

import math

import numpy as np

METHOD_COLOURS = {
    "baseline": "#4d4d4d",  # dark grey: plain SAM-2
    "tta": "#1f77b4",  # blue
    "prompt": "#ff7f0e",  # orange
    "laplace": "#2ca02c",  # green
    "laplace-paper": "#17becf",  # cyan: the paper-faithful Laplace recipe
    "varnet": "#9467bd",  # purple
    "combined-rank": "#800000",  # maroon
    "combined-product": "#000080",  # navy
    # refinement variants (notebook 07)
    "mask-prompt": "#8da0cb",  # lavender: SAM-2 refined by its own mask
    "fusion-laplace": "#b15928",  # rust: fused with the Laplace map
    "fusion-ones": "#008080",  # teal: the ones-map ablation
    "fusion-entropy": "#bcbd22",  # olive: fused with SAM's entropy map
    "gt-mask-prompt": "#c51b7d",  # magenta: the ground-truth upper bound
}
METHOD_MARKERS = {
    "baseline": "o", "tta": "s", "prompt": "^", "laplace": "D", "laplace-paper": "v", "varnet": "P",
    "combined-rank": "X", "combined-product": "*", "mask-prompt": "<", "fusion-laplace": ">", "fusion-ones": "h",
    "fusion-entropy": "p", "gt-mask-prompt": "d",
}
# Which methods appear together in one figure (the palette's guarantee holds within each group).
FIGURE_GROUPS = {
    "06": ("baseline", "tta", "prompt", "laplace", "laplace-paper", "varnet", "combined-rank", "combined-product"),
    "07": ("baseline", "mask-prompt", "fusion-laplace", "fusion-ones", "fusion-entropy", "gt-mask-prompt"),
}

# One colour per object instance in overlays (tab10 without its grey).
INSTANCE_COLOURS = np.array(
    [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
     (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207)], dtype=np.float32
) / 255.0

MAP_LABELS = {
    "entropy": "entropy of p̄ (nats)",
    "mutual_information": "mutual information (nats)",
    "std": "std of p over samples",
    "log_variance": "log-variance",
    "variance": "variance e^s",
    "combined": "combined map",
}
# Fixed colour ranges where the measure has natural bounds, so that figures compare across methods.
MAP_RANGES = {"entropy": (0.0, math.log(2)), "mutual_information": (0.0, math.log(2)), "std": (0.0, 0.5)}

UNCERTAINTY_CMAP = "magma"
FALSE_NEGATIVE_COLOUR = "#3b8bff"  # object missed
FALSE_POSITIVE_COLOUR = "#ff3b3b"  # background claimed
FALLBACK_CYCLE = "tab10"


def method_colour(method: str) -> str:
    """The method's colour; unknown names (e.g. ``tta-in_domain``) fall back to their family's, else black."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    family = method.split("-")[0].split("_")[0]
    return METHOD_COLOURS.get(family, "#000000")


def method_marker(method: str) -> str:
    family = method.split("-")[0].split("_")[0]
    return METHOD_MARKERS.get(method) or METHOD_MARKERS.get(family, "o")


def evaluation_colour(method: str, methods=()) -> str:
    """``method_colour``, or for a name with no family a distinct tab10 colour by its position in ``methods``."""
    colour = method_colour(method)
    if colour != "#000000":
        return colour
    import matplotlib.colors

    index = list(methods).index(method) if method in methods else 0
    return matplotlib.colors.to_hex(matplotlib.colormaps[FALLBACK_CYCLE](index % 10))

COMBINATION_COLOURS = {name: METHOD_COLOURS[name] for name in ("combined-rank", "combined-product")}  # 0.2 name
