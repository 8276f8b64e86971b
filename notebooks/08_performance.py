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
# # 08 · What each method costs
#
# Every method's time per image as a **ratio to a plain SAM-2 prediction measured in the same run**
# (`uncertsam bench uq`): ratios, unlike seconds, carry over between machines. Each method sees images
# of its own (so every time includes the encoder passes a new image costs), methods are interleaved
# within each repeat (load from other jobs hits them alike), and the median over repeats is reported.
# By default the clock is the process's CPU time with one torch thread, which barely depends on what
# else runs on the machine. `laplace-fit` is the Laplace fit's time per training image.
#
# What the ratios mean: the baseline is one encoder and one decoder pass; prompt perturbation adds a
# decoder call with K prompts per object; TTA adds T − 1 encoder passes (inherent); Laplace and the
# variance network add a closed form or a small head to the same passes; the refinement variants add
# a second decoder pass. This table is the run log of the machine it was made on, not a result to
# reproduce to the byte (the other tables are).
#
# Next to each time ratio stands the method's **FLOP ratio**: the floating-point operations of its
# matrix products (convolutions, matrix multiplications, attention) per image, counted by
# `torch.utils.flop_counter` on one more image, over the baseline's. It does not depend on the
# machine, and it says how much of a time ratio is inherent work. On the nano model the encoder is so
# small (256², 0.4 GFLOP) that the decoder's work per prompt weighs: prompt perturbation's
# 27 extra prompts carry more matrix-product work than the whole baseline.

# %% tags=["parameters"]
models = ["nano"]  # registry names; official models are timed with random weights (timing does not depend on them)
methods = ["tta", "prompt", "laplace", "laplace-paper", "varnet", "combined-rank", "combined-product",
           "mask-prompt", "fusion-laplace", "fusion-ones", "fusion-entropy"]
objects = 3  # box prompts per image
repeats = 5  # timed images per method after one warm-up
clock = "cpu"  # "cpu": process CPU time (steady on a shared machine); "wall": wall time
threads = 1  # torch CPU threads (0: torch's default)
device = "cpu"
seed = 0
flops = True  # also count each method's matrix-product FLOPs (one more image per method)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from uncertsam_utils import analysis
from uncertsam_utils.bench import bench_uq
from uncertsam_utils.paths import figures_dir, tables_dir
from uncertsam_utils.plots import evaluation_colour

if threads:
    torch.set_num_threads(threads)
rows = bench_uq(models, methods, objects=objects, repeats=repeats, device=device, seed=seed, clock=clock,
                flops=flops)
table = pd.DataFrame([row.__dict__ for row in rows])
table

# %% [markdown]
# ## Ratios to the baseline
#
# One bar per method and model (log scale); the dashed line is the baseline's own time; black
# diamonds mark the FLOP ratios.

# %%
names = list(dict.fromkeys(table["method"]))
fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) * len(models) + 2), 4.2))
width = 0.8 / len(models)
for k, model_label in enumerate(dict.fromkeys(table["model"])):
    part = table[table["model"] == model_label].set_index("method").reindex(names)
    x = np.arange(len(names)) - 0.4 + width * (k + 0.5)
    ax.bar(x, part["ratio_to_baseline"], width=width * 0.9, label=model_label.split(" (")[0],
           color=[evaluation_colour(n, names) for n in names], edgecolor="black", linewidth=0.5,
           hatch=None if k == 0 else "//")
    if "flop_ratio_to_baseline" in part:
        ax.scatter(x, part["flop_ratio_to_baseline"], marker="D", s=18, color="black", zorder=3,
                   label="FLOP ratio" if k == 0 else None)
ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1)
ax.set_yscale("log")
ax.set_xticks(np.arange(len(names)))
ax.set_xticklabels(names, rotation=30, ha="right")
ax.set_ylabel(f"time per image / baseline ({clock} clock)")
ax.set_title(f"Cost of each method ({objects} objects per image, median of {repeats})")
ax.legend(fontsize=8, frameon=False)
ax.grid(axis="y", alpha=0.3, which="both")
fig.tight_layout()
fig.savefig(figures_dir() / "08_performance.png", dpi=120)
plt.show()

# %%
note = (f"Median over {repeats} images after one warm-up, {objects} box prompts per image, {clock} clock, "
        f"{threads or 'default'} torch thread(s), device {device}. Official models with random weights. "
        "A machine's run log: timings vary between runs, unlike the other tables."
        + (" gflop_per_image: floating-point operations of the matrix products (convolutions, matrix "
           "multiplications, attention) per image, counted by torch.utils.flop_counter; the Laplace fit's are "
           "not counted." if flops else ""))
written = analysis.write_table(table, tables_dir() / "performance", title="Time per image, as a ratio to the baseline",
                               note=note)
print("\n".join(str(p) for p in written + [figures_dir() / "08_performance.png"]))

# %% [markdown]
# ## What this shows
#
# Generated from the table above (this machine's run; the ratios, not the seconds, carry over).

# %%
print(analysis.describe_costs(table))
