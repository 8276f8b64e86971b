# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Explorer: every method's map on the object of your choice
#
# The qualitative figures of notebooks 02–07 are fixed: one image per domain, one method per
# figure. This notebook answers the question a reader of an uncertainty paper asks first — *what
# does each method's map look like on my object?* Choose a domain and an image of the benchmark
# (or upload an image of your own), draw one or more boxes, and see, for every method side by
# side, its prediction, its uncertainty map with a colour bar and, where the boxes have ground
# truth, the errors and the same per-mask metrics as the evaluation CSVs.
#
# **Which numbers.** The methods run under the evaluation's protocol: the box is the only prompt,
# the maps are upsampled to the image's size, and each method draws its random numbers from the
# generator of `(seed, domain, image)`. A box drawn by hand scores against the ground-truth object
# whose tight box it overlaps most (box IoU ≥ 0.5; dashed boxes have none). An object opened from
# the drill-down table below is predicted with all ground-truth boxes of its image, as in the
# evaluation, so its metrics are its rows of the evaluation CSVs.
#
# **Headless.** Under papermill and nbval the same code runs with the boxes of the `boxes`
# parameter (image pixels, `[[x0, y0, x1, y1], ...]`; `None`: the ground-truth box of every
# object); the widgets are shown but nobody draws. Methods with fitted parts (Laplace, the variance
# network) use the posteriors and head cached by notebooks 04–06, or fit them on first use
# (`fit_missing`); remove them from `methods` for a start within seconds.

# %% tags=["parameters"]
data_root = None  # benchmark root in the published layout; None: the generated UncertSAM-mini
model = "nano"  # model registry name (nano, sam2_hiera_large, ...)
checkpoint = None  # None: the model's default weights; "random": seeded random weights (pipeline checks only)
device = "cpu"
methods = ["baseline", "tta", "prompt", "laplace", "laplace-paper", "varnet", "combined-rank", "combined-product"]
T = 10  # TTA copies
K = 10  # prompt perturbations
seed = 42  # the evaluation's seed (notebook 06), so that opened objects show the numbers of its CSVs
posterior = None  # Laplace posterior file(s); None: cached, or fitted here (fit_missing)
head = None  # variance head file; None: cached, or trained here (fit_missing)
fit_missing = True  # fit / train missing parts (cached) instead of failing
fit_images = None  # fitted parts: the first N images of fit/train (None: all), as notebooks 05-06
epochs = None  # variance head epochs (None: the recipe's default), as notebooks 05-06
dataset = None  # domain of the image explored first; None: the first one
image_id = None  # its test image id; None: the first
image_path = None  # an image of your own instead (no ground truth, so no metrics); needs boxes
boxes = None  # [[x0, y0, x1, y1], ...] in image pixels; None: the ground-truth box of every object
drilldown = True  # the drill-down table of notebook 06's evaluation (cached; evaluated here if missing)
max_images = None  # first N test images per domain of that evaluation, as notebook 06
drilldown_metric = "pearson"  # the metric the table sorts by (Δ against the baseline)
drilldown_method = "laplace"  # the method compared with the baseline

# %%
import matplotlib.pyplot as plt  # noqa: F401  (the inline backend shows the explorer's figures)
from IPython.display import display

from uncertsam_utils.evaluation import build_methods, find_fitted_parts
from uncertsam_utils.explore import Explorer
from uncertsam_utils.session import open_session

session = open_session(data_root, model, checkpoint, device)
root, datasets, loaded, predictor = session.root, session.datasets, session.loaded, session.predictor
parts = find_fitted_parts(root, loaded, methods, posterior=posterior, head=head, fit_missing=fit_missing,
                          fit_images=fit_images, epochs=epochs, seed=seed)
method_objects = build_methods(methods, loaded, T=T, K=K, **parts)
explorer = Explorer(predictor, method_objects, root, datasets, seed=seed)
print(", ".join(method_objects))

# %% [markdown]
# ## The maps on one image
#
# Rows: the methods, in the order of `methods`. Columns: the prediction (p̄ ≥ 0.5, one colour per
# object) with the boxes in the method's colour; the method's own uncertainty map (entropy-like
# maps share the range 0 to ln 2 nats, so rows compare; others carry their own range on the bar);
# the errors against the ground truth (blue: object missed, red: background claimed). With
# several boxes, each pixel shows the most uncertain object. Below the figure: the per-mask
# metrics of each box that has ground truth (the columns of the evaluation CSVs).

# %%
if image_path is not None:
    explorer.open_file(image_path, boxes=boxes)
else:
    explorer.open_image(dataset or datasets[0], image_id, boxes=boxes)
explorer.show()

# %% [markdown]
# ## Draw your own boxes
#
# Pick a domain and an image, or upload an image of your own; then drag on the image to draw a
# box (drag its edges to move it, select it and press Delete to remove it). Every change of the
# boxes recomputes the maps below the image; the line above the figure says which update it is.
# (A static page, such as the book built from the executed notebooks, shows no widgets: the
# figure above is what they show first.)

# %% tags=["remove-output"]
from uncertsam_utils.explore.widgets import drilldown_widget, explorer_widget  # noqa: E402

view = explorer_widget(explorer)
view.box

# %% [markdown]
# ## Drill-down: which objects does a method handle worse than the baseline?
#
# Every object of notebook 06's evaluation (its cached per-mask CSVs, computed here if missing),
# with one method's value of a metric, the baseline's, and Δ = method − baseline. Sorted worst
# first by the metric's direction (for AUSE lower is better); the first row is opened in the
# explorer below. In the interactive table, sort by any metric or Δ, filter a domain and open any
# object.

# %%
if drilldown:
    from uncertsam_utils.evaluation import evaluate_cached, load_results
    from uncertsam_utils.explore import drilldown as drilldown_table

    files = {"head": parts["head"], **{f"posterior:{k}": v for k, v in parts["posterior"].items()}}
    out_dir = evaluate_cached("06", predictor, loaded, method_objects, root, datasets, files, max_images=max_images,
                              seed=seed)
    results = load_results(out_dir, datasets=datasets, methods=list(method_objects))
    compared = drilldown_method if drilldown_method in method_objects else next(m for m in method_objects if m != "baseline")
    table = drilldown_table(results, drilldown_metric, compared)
    print(f"{len(table)} objects; {compared} against the baseline by {drilldown_metric}, worst first")
    display(table.head(10).style.format(precision=3).hide(axis="index"))

# %%
if drilldown:
    worst = table.iloc[0]
    explorer.open_object(worst["dataset"], int(worst["image_id"]), int(worst["mask_id"]))
    explorer.show()

# %% tags=["remove-output"]
if drilldown:
    panel = drilldown_widget(view, results, methods=list(method_objects),
                             metrics=[c for c in results.columns if c not in ("image_id", "mask_id", "dataset", "method")])
    display(panel.box)
