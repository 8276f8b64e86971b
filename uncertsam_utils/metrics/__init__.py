"""Per-mask metrics, vectorised over any leading dimensions.

Modules: ``segmentation`` (IoU, Dice, MAE, BER, accuracy, precision, recall, F1, boundary IoU, the
dilated ROI), ``calibration`` (ECE, Brier, sharpness, mean std), ``correlation`` (Pearson, Spearman),
``error_detection`` (AUROC, AUPR, AUSE), ``shared`` (the shared error target: the baseline's soft error,
the same for every method), ``resolution`` (the paper's half resolution) and ``per_mask`` (every CSV
column for one image).

Conventions shared by every function here:

* masks and maps have shape ``(..., H, W)``; a metric returns one value per mask, shape ``(...)``.
  Masks are bool, or numbers where non-zero means foreground. An optional bool ``region`` of the
  same shape restricts the pixels counted (the paper's ``*_`` columns use the dilated ROI).
* numpy in → numpy (float64) out; torch in → torch (float32, same device) out.
* Masks are compared at the resolution they are given; the evaluation protocol (paper §1.4)
  upsamples logits bilinearly to the original image size and thresholds at 0 before calling these.
* The soft error of a prediction is computed from its logits (``soft_error_from_logits``: σ(−z) where
  y = 1, σ(z) where y = 0), never as 1 − σ(z), which fp32 rounds to 0 for every confident pixel.

Degenerate inputs never crash or hang; each has a defined value (tested in tests/test_metrics.py):

=====================================  ==========================================================
input                                  value
=====================================  ==========================================================
P and G both empty (in the region)     IoU, dice, F1, prec, rec, BIoU: **NaN** (0/0); MAE 0, acc 1
empty P, non-empty G                   IoU, dice, F1, prec, rec: 0; BIoU 0
empty region (no pixel)                every metric of that region: NaN
G covers the whole region              BER = FN/(TP+FN) alone (the FPR term is undefined);
                                       G empty in the region: BER = FP/(TN+FP) alone
constant uncertainty map               pearson, spearman: **0** (the reference's ε convention);
                                       AUROC 0.5; AUPR = error rate; AUSE = flat curve − oracle
constant soft error (e.g. all 0)       pearson, spearman: 0; AUSE 0
no misclassified pixel                 AUROC, AUPR: NaN (one class absent); no correct pixel:
                                       AUROC NaN, AUPR = 1
non-finite value in a map              correlations and ranking metrics of that mask: NaN
no std map (baseline, variance net)    avg_sample_std: 0 (as the reference reports)
no shared target given                 pearson_shared, spearman_shared (and ROI): NaN
empty reliability bin                  rel_frac_k = rel_p_k = rel_y_k = 0
=====================================  ==========================================================

**Empty ∪ empty is NaN**: when neither mask (or neither boundary band) has a pixel, the ratio is
0/0 and the metric is undefined. NaN is returned rather than 0 or 1, as the reference code does
for boundary IoU (its IoU and Dice add 1e-6 to the denominator and report 0 instead); aggregate
with a NaN-skipping mean (``np.nanmean`` / ``pandas.Series.mean``). Ground-truth masks of the
benchmark are never empty, so this only happens at half resolution for masks of a few pixels.
"""

from __future__ import annotations

from .calibration import ECE_BINS, brier, ece, region_mean, sharpness, soft_error
from .correlation import pearson, spearman
from .error_detection import RANKING_SCORES, aupr, auroc, ause, ranking_scores
from .per_mask import (
    CURVE_COLUMNS,
    EXTRA_COLUMNS,
    HALF_RESOLUTION_DATASETS,
    METRIC_COLUMNS,
    PAPER_COLUMNS,
    RELIABILITY_BINS,
    RISK_COVERAGES,
    SHARED_SCORES,
    Targets,
    per_mask_metrics,
    prepare_targets,
    result_metrics,
)
from .shared import SharedTarget, soft_error_from_logits
from .segmentation import (
    boundary_iou,
    boundary_width,
    confusion,
    dice,
    dilate,
    dilated_roi,
    iou,
    mask_boundary,
    roi_radius,
    segmentation_scores,
)

__all__ = [
    "iou", "dice", "boundary_iou", "mask_boundary", "boundary_width", "roi_radius", "dilate", "dilated_roi",
    "confusion", "segmentation_scores",
    "ece", "brier", "region_mean", "sharpness", "soft_error", "ECE_BINS",
    "pearson", "spearman",
    "auroc", "aupr", "ause", "ranking_scores", "RANKING_SCORES",
    "PAPER_COLUMNS", "EXTRA_COLUMNS", "CURVE_COLUMNS", "METRIC_COLUMNS", "HALF_RESOLUTION_DATASETS", "SHARED_SCORES",
    "RELIABILITY_BINS", "RISK_COVERAGES", "Targets", "prepare_targets", "per_mask_metrics", "result_metrics",
    "SharedTarget", "soft_error_from_logits",
]
