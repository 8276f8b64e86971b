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
# # 00 · The SAM-2 predictor core
#
# Every uncertainty method in this companion runs on one predictor core built from the `sam2`
# package (never a vendored copy). It does three things the methods rely on:
#
# 1. **Encode once.** The image encoder (the expensive part) runs once per image; the result is
#    cached and shared by every method that does not change the image.
# 2. **Decode many prompts in one call.** Objects × perturbations (or images × objects for
#    test-time augmentation) go through the mask decoder as one batch.
# 3. **Expose the decoder internals that Laplace needs.** For each prompt, the input `h` of the
#    last Linear layer of mask token 0's hypernetwork and the upscaled mask embedding `U`, from the
#    same forward pass, so that the mask logits are exactly `Uᵀ(W h + b)`.
#
# Single-mask output always comes from mask token 0 (SAM-2's stability fallback, which may switch
# to another token, is off unless asked for). Images are squashed to the model's square input, as
# in the paper; prompts live in that frame.

# %% tags=["parameters"]
model = "nano"  # registry name: nano, sam2.1_hiera_tiny, sam2_hiera_large, ...
checkpoint = None  # None: default weights; "random": seeded random weights (timing only); or a path
device = "cpu"
seed = 0
boxes_per_image = 4
data_root = None  # the model card's benchmark; None: the generated UncertSAM-mini
max_images = None  # the model card: first N test images per dataset; None: all

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from uncertsam_utils.data.mini.fit import render_fit_scene
from uncertsam_utils.model import Predictor, load_model
from uncertsam_utils.paths import figures_dir, tables_dir
from uncertsam_utils.plots import draw_boxes, overlay_masks

loaded = load_model(model, checkpoint, device=device, seed=seed)
predictor = Predictor(loaded.model)
print(f"model: {loaded.label}")
print(f"input {predictor.image_size}², image embedding {predictor.embed_size}², low-resolution masks {predictor.mask_size}²")

# %% [markdown]
# A generated scene from the UncertSAM-mini fit domain (the domain the nano model was trained on),
# at a non-square size so that the squash to the square input frame is visible in the numbers.

# %%
rng = np.random.default_rng(seed)
scene, masks = render_fit_scene(rng, 240, 320)
image = (scene * 255).round().astype(np.uint8)
masks = np.stack(masks)[:boxes_per_image]
boxes_orig = np.array([[x.min(), y.min(), x.max(), y.max()] for y, x in (np.nonzero(m) for m in masks)], dtype=np.float32)
scale = np.array([predictor.image_size / image.shape[1], predictor.image_size / image.shape[0]] * 2, dtype=np.float32)
boxes = boxes_orig * scale
print(f"{len(boxes)} objects; image {image.shape[1]}×{image.shape[0]} px")

# %% [markdown]
# ## Encode once, decode all boxes in one decoder call

# %%
with torch.inference_mode():
    start = time.perf_counter()
    encoding = predictor.encode(image)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = predictor.decode(encoding, boxes=boxes, return_internals=True)
    decode_s = time.perf_counter() - start
print(f"encode {encode_s * 1000:.0f} ms, decode {len(boxes)} boxes in one call {decode_s * 1000:.0f} ms")
print("low-res logits", tuple(decoded.logits.shape), "| h", tuple(decoded.h.shape), "| U", tuple(decoded.U.shape))

# %% [markdown]
# ## The Laplace internals reproduce the logits exactly

# %%
layer = predictor.treated_layer
with torch.no_grad():
    rebuilt = torch.einsum("bc,bchw->bhw", decoded.h @ layer.weight.T + layer.bias, decoded.U)
max_difference = (rebuilt - decoded.logits).abs().max().item()
print(f"max |Uᵀ(Wh + b) − logits| = {max_difference:.2e}")
assert max_difference < 1e-4

# %% [markdown]
# ## Predictions at the original resolution

# %%
logits = Predictor.upsample(decoded.logits, image.shape[:2])
predicted = (logits > 0).numpy()
iou = (predicted & masks).sum((1, 2)) / np.maximum((predicted | masks).sum((1, 2)), 1)
print("IoU per object:", np.round(iou, 3))

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
axes[0].imshow(image)
draw_boxes(axes[0], boxes_orig)
axes[0].set_title("image and box prompts")
axes[1].imshow(overlay_masks(image, masks))
axes[1].set_title("ground truth")
axes[2].imshow(overlay_masks(image, predicted))
axes[2].set_title(f"prediction (mean IoU {iou.mean():.2f})")
for ax in axes:
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
fig.suptitle(f"SAM-2 predictor core · {loaded.label}", fontsize=10)
fig.savefig(figures_dir() / "00_sam2_core.png", dpi=120)

# %% [markdown]
# ## The nano model card
#
# The shipped nano SAM-2's box-only accuracy (the tight ground-truth box alone, mask token 0) on the
# fit set's test split and on every test domain, regenerated from the shipped weights without
# retraining: `tables/nano_sam2_card.{md,csv}`, the same as `uncertsam train nano-card`. The card
# describes those weights, so other models and checkpoints get none.

# %%
# NBVAL_CHECK_OUTPUT
if model == "nano" and checkpoint is None:
    from uncertsam_utils.data.mini import ensure_mini
    from uncertsam_utils.model.nano.card import nano_card

    card_root = Path(data_root) if data_root is not None else ensure_mini(seed=seed)
    card_path, card_rows = nano_card(card_root, out_dir=tables_dir(), limit=max_images, progress=False)
    for row in card_rows:
        print(f"{row['dataset']:<22} {row['images']:>4} images {row['masks']:>5} masks  mIoU {row['miou']:.4f}  "
              f"mBIoU {row['mbiou']:.4f}")
else:
    print(f"no model card: it describes the shipped nano weights, not {loaded.label}")

# %% [markdown]
# ## What this shows
#
# Generated from the timings and checks above.

# %%
from uncertsam_utils import analysis  # noqa: E402

print(analysis.describe_core(encode_s, decode_s, len(boxes), max_difference, iou))
