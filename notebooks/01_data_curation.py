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
# # 01 · Data curation: the UncertSAM-mini benchmark
#
# UncertSAM evaluates SAM-2 on eight datasets chosen because each breaks one assumption of a
# model trained on ordinary photographs (SA-1B). The real data is gated, large and research-only,
# so this companion ships **UncertSAM-mini**: a small synthetic benchmark, generated on the fly
# (deterministic for a seed, about a minute on two cores) in exactly the published on-disk layout
# (`<root>/<dataset>/<split>/images/*.jpg` + `annotations/dataset.json` with base64 RLE masks).
# Each synthetic domain keeps the *reason* its real counterpart is hard:
#
# | domain | what makes it hard for SAM |
# |---|---|
# | **BIG** | thin structures (spokes, branches, lattices) at ~1 Mpx that the squash to the model input reduces to sub-pixel width |
# | **COIFT** | fine, intricate boundaries: legs, stems, antennae, hair-like fringes |
# | **COD10K-v3** | camouflage: the animal wears the background's own texture, shifted in colour by a few percent |
# | **MSD_Spleen** | grey CT slices: soft-tissue contrast of a few grey levels, correlated noise, organs of equal density touching the spleen |
# | **ISTD** | the target is a *shadow*: no texture of its own, a soft penumbra, and the caster (partly in view) is not part of it |
# | **SBU-shadow** | shadows of unseen casters (canopies, buildings, poles) on varied ground, with dark distractor patches |
# | **Flare7K** | lens flare on night scenes: glare, streaks and light sources are edgeless light whose extent is a threshold convention |
# | **Trans10K** | transparent objects: the background shows through (refracted, faintly tinted); only thin rims and highlights remain |
#
# The **fit set** (`fit/{train,val,test}`, 256×256) is the SA-1B analogue that the nano SAM-2 is
# trained on: 2–6 opaque ellipses, polygons and blobs with solid, striped, checkered or blotchy
# surfaces on photo or procedural backdrops. Backgrounds and textures come from the photographs
# bundled with scikit-image (no download). Every domain's difficulty is set by a few documented
# knobs (`uncertsam_utils.data.mini.domains.DOMAINS[name].knobs`), so the benchmark can be tuned
# to land the nano model in a useful accuracy range.

# %% tags=["parameters"]
data_root = None  # None: UncertSAM-mini in the cache (generated on first use); or a root in the layout
seed = 0  # generator seed of UncertSAM-mini (ignored when data_root is given)
max_images = None  # None: statistics over every image; an int: the first max_images of each split

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.transforms import blended_transform_factory

from uncertsam_utils.data.layout import DATASETS, SplitReader, list_datasets
from uncertsam_utils.data.mini import ensure_mini
from uncertsam_utils.data.mini.domains import DOMAINS, FIT_SPEC
from uncertsam_utils.data.statistics import dataset_statistics, to_markdown
from uncertsam_utils.paths import figures_dir, tables_dir
from uncertsam_utils.plots import draw_boxes, overlay_masks

root = Path(data_root) if data_root is not None else ensure_mini(seed=seed)
present = list_datasets(root)
order = [name for name in ("fit", *DATASETS) if name in present]
print(f"benchmark root: {root}")
print("datasets:", ", ".join(order))

# %% [markdown]
# ## Samples
#
# The first test images of each domain (the fit set: its first validation images), with every target
# mask tinted in its own colour and its tight box — the box prompt of the benchmark — outlined.

# %%
samples_per_row = 4
captions = {"fit": FIT_SPEC.hard_because, **{name: spec.hard_because for name, spec in DOMAINS.items()}}

# fixed spacing (no tight_layout): the row captions sit above the rows without squeezing the panels
fig, axes = plt.subplots(len(order), samples_per_row, figsize=(3.2 * samples_per_row, 3.35 * len(order)),
                         squeeze=False, gridspec_kw=dict(hspace=0.42, wspace=0.06, left=0.06, right=0.99,
                                                         top=1 - 0.5 / len(order), bottom=0.01))
for row, dataset in enumerate(order):
    split = "val" if dataset == "fit" else "test"  # fit/val: same scenes as train, quicker to index
    reader = SplitReader(root, dataset, split)
    for col in range(samples_per_row):
        ax = axes[row, col]
        ax.set_xticks([])
        ax.set_yticks([])
        if col >= len(reader):
            ax.set_axis_off()
            continue
        sample = reader[col]
        h, w = sample.image.shape[:2]
        ax.imshow(overlay_masks(sample.image, sample.masks, alpha=0.45))
        rows_any, cols_any = sample.masks.any(axis=2), sample.masks.any(axis=1)
        boxes = np.stack([cols_any.argmax(1), rows_any.argmax(1),
                          w - 1 - cols_any[:, ::-1].argmax(1), h - 1 - rows_any[:, ::-1].argmax(1)], axis=1)
        draw_boxes(ax, boxes, linewidth=1.2)
        ax.set_title(f"{w}×{h} px · {len(sample.masks)} mask{'s' * (len(sample.masks) != 1)}", fontsize=9, pad=3)
    axes[row, 0].set_ylabel(f"{dataset}/{split}", fontsize=12, fontweight="bold")
    # the caption starts at the figure's left margin, whatever the first image's aspect ratio
    at_left_margin = blended_transform_factory(fig.transFigure, axes[row, 0].transAxes)
    axes[row, 0].text(0.01, 1.13, f"{dataset}: {captions.get(dataset, '')}", transform=at_left_margin,
                      fontsize=10.5, style="italic", va="bottom", ha="left", clip_on=False)
fig.suptitle("UncertSAM-mini: the fit set and the eight test domains (targets tinted, box prompts outlined)",
             fontsize=14, y=1.0)
figure_path = figures_dir() / "01_benchmark_samples.png"
fig.savefig(figure_path, dpi=110, bbox_inches="tight")
print(f"saved {figure_path}")

# %% [markdown]
# ## Statistics
#
# Per dataset and split: images, masks, the mean share of the image a mask covers, its tight box
# (in native pixels, and as the side of a square of the box's area relative to the image), and the
# range of image sizes (height × width).

# %%
# NBVAL_CHECK_OUTPUT
stats = dataset_statistics(root, datasets=order, max_images=max_images)
csv_path = tables_dir() / "01_dataset_statistics.csv"
md_path = tables_dir() / "01_dataset_statistics.md"
stats.to_csv(csv_path, index=False, float_format="%.4g")
shown = stats[["dataset", "split", "images", "masks", "masks_per_image", "mean_area_frac", "mean_box_w_px",
               "mean_box_h_px", "mean_box_side_frac", "image_sizes"]]
md_path.write_text(to_markdown(shown))
print(f"saved {csv_path} and {md_path}")
shown

# %% [markdown]
# ## What this shows
#
# Generated from the statistics table above (the domains' captions in the figure say what makes each
# one hard).

# %%
from uncertsam_utils import analysis  # noqa: E402

print(analysis.describe_benchmark(stats))
