"""Per-mask metrics against hand-computed values on shapes with known answers."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from uncertsam_utils.metrics import boundary_iou, boundary_width, iou, mask_boundary


def square(h, w, top, left, side, width=None):
    mask = np.zeros((h, w), bool)
    mask[top:top + side, left:left + (width or side)] = True
    return mask


def test_iou_of_overlapping_squares():
    a = square(10, 10, 0, 0, 4)
    b = square(10, 10, 0, 2, 4)  # shares 4x2 = 8 pixels, union 16 + 16 - 8 = 24
    assert iou(a, b) == pytest.approx(8 / 24)
    assert iou(a, a) == 1.0
    assert iou(a, np.zeros_like(a)) == 0.0


def test_iou_empty_union_is_nan_and_nan_skipping_mean_ignores_it():
    empty = np.zeros((5, 5), bool)
    assert math.isnan(iou(empty, empty))
    values = iou(np.stack([empty, square(5, 5, 0, 0, 2)]), np.stack([empty, square(5, 5, 0, 0, 2)]))
    assert math.isnan(values[0]) and values[1] == 1.0
    assert np.nanmean(values) == 1.0


def test_vectorised_shapes_and_types():
    rng = np.random.default_rng(0)
    pred = rng.random((3, 2, 16, 16)) > 0.5
    gt = rng.random((3, 2, 16, 16)) > 0.5
    out = iou(pred, gt)
    assert isinstance(out, np.ndarray) and out.shape == (3, 2) and out.dtype == np.float64
    expected = [[(p & g).sum() / (p | g).sum() for p, g in zip(pr, gr)] for pr, gr in zip(pred, gt)]
    np.testing.assert_allclose(out, expected)
    out_t = boundary_iou(torch.from_numpy(pred), torch.from_numpy(gt.astype(np.uint8)))
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (3, 2) and out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), boundary_iou(pred, gt), rtol=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        iou(pred, gt[..., :8])


def test_boundary_width_follows_the_image_diagonal():
    assert boundary_width(256, 256, 0.02) == 7  # 0.02 * 362.04 = 7.24
    assert boundary_width(1000, 1000, 0.02) == 28  # 28.28
    assert boundary_width(1000, 1000, 0.01) == 14
    assert boundary_width(20, 20, 0.02) == 1  # 0.57 -> at least one pixel


def test_boundary_band_of_a_square():
    mask = square(100, 100, 40, 40, 20)
    assert mask_boundary(mask, 1).sum() == 20 * 20 - 18 * 18  # the one-pixel ring: 76
    assert mask_boundary(mask, 2).sum() == 20 * 20 - 16 * 16  # 144
    assert mask_boundary(mask, 10).sum() == 400  # the whole square is within 10 px of its contour
    ring = mask_boundary(mask, 1)
    assert ring[40, 45] and ring[59, 59] and not ring[41, 41]


def test_pixels_on_the_image_border_are_boundary():
    full = np.ones((10, 10), bool)
    assert mask_boundary(full, 1).sum() == 100 - 64  # outside the image counts as background
    assert mask_boundary(full, 2).sum() == 100 - 36


def test_boundary_iou_of_a_square_and_its_one_pixel_shift():
    # P = rows 10-29, cols 10-29; G = the same shifted right by one pixel; d = 1 (ratio 0.005 of a
    # 141-px diagonal). Rings: 76 px each; they share the top and bottom rows except one pixel
    # each (19 + 19 = 38), the vertical sides never meet: BIoU = 38 / (76 + 76 - 38) = 1/3.
    p = square(100, 100, 10, 10, 20)
    g = square(100, 100, 10, 11, 20)
    assert boundary_width(100, 100, 0.005) == 1
    assert boundary_iou(p, g, dilation_ratio=0.005) == pytest.approx(1 / 3)
    assert iou(p, g) == pytest.approx(380 / 420)  # boundary IoU is far stricter than IoU
    assert boundary_iou(p, p) == 1.0


def test_boundary_iou_of_large_masks_equals_iou_when_bands_cover_them():
    # With a band wider than half the object, B(M) = M and BIoU = IoU.
    p = square(50, 50, 5, 5, 6)
    g = square(50, 50, 7, 5, 6)
    assert boundary_width(50, 50, 0.1) == 7
    assert boundary_iou(p, g, dilation_ratio=0.1) == pytest.approx(iou(p, g)) == pytest.approx(24 / 48)


def test_boundary_iou_empty_cases():
    empty = np.zeros((30, 30), bool)
    assert math.isnan(boundary_iou(empty, empty))
    assert boundary_iou(square(30, 30, 5, 5, 5), empty) == 0.0


def test_boundary_matches_iterated_3x3_erosion_on_random_blobs():
    """The reference construction: erode with a 3x3 kernel d times, zero border."""
    rng = np.random.default_rng(3)
    masks = ndimage.gaussian_filter(rng.random((6, 64, 80)), (0, 4, 4)) > 0.5
    masks[0] = True  # touches every border
    for d in (1, 3):
        eroded = np.stack([ndimage.binary_erosion(m, np.ones((3, 3)), iterations=d, border_value=0) for m in masks])
        np.testing.assert_array_equal(mask_boundary(masks, d), masks & ~eroded)


# ==================================================================================================
# The evaluation metrics (paper_protocol.md §4 and ours), each against an independent computation.

from scipy import stats  # noqa: E402
from sklearn import metrics as skm  # noqa: E402
from torchmetrics.functional.classification import binary_calibration_error  # noqa: E402

from uncertsam_utils import metrics as M  # noqa: E402
from uncertsam_utils.metrics import per_mask as PM  # noqa: E402
from uncertsam_utils.metrics._ranking import argsort, average_ranks  # noqa: E402


def blobs(rng, n, h, w, threshold=0.6, sigma=3.0):
    """Smooth random blobs covering about a (1 − threshold) fraction of each (h, w) mask."""
    field = ndimage.gaussian_filter(rng.random((n, h, w)), (0, sigma, sigma))
    return field > np.quantile(field, threshold, axis=(1, 2), keepdims=True)


def smooth(rng, n, h, w, sigma=4.0, scale=6.0):
    field = ndimage.gaussian_filter(rng.standard_normal((n, h, w)), (0, sigma, sigma))
    return (scale * field / field.std()).astype(np.float32)


def test_segmentation_scores_against_sklearn():
    rng = np.random.default_rng(0)
    pred, gt = blobs(rng, 4, 30, 40), blobs(rng, 4, 30, 40)
    region = blobs(rng, 4, 30, 40, threshold=0.45)
    scores = M.segmentation_scores(pred, gt, region)
    for k in range(4):
        p, g = pred[k][region[k]], gt[k][region[k]]
        assert scores["prec"][k] == pytest.approx(skm.precision_score(g, p))
        assert scores["rec"][k] == pytest.approx(skm.recall_score(g, p))
        assert scores["F1"][k] == pytest.approx(skm.f1_score(g, p))
        assert scores["dice"][k] == pytest.approx(skm.f1_score(g, p))
        assert scores["IoU"][k] == pytest.approx(skm.jaccard_score(g, p))
        assert scores["acc"][k] == pytest.approx(skm.accuracy_score(g, p))
        assert scores["MAE"][k] == pytest.approx(np.abs(g.astype(float) - p).mean())
        assert scores["BER"][k] == pytest.approx(1 - skm.balanced_accuracy_score(g, p))
    whole = M.segmentation_scores(pred, gt)
    np.testing.assert_allclose(whole["IoU"], iou(pred, gt))
    np.testing.assert_allclose(whole["dice"], M.dice(pred, gt))


def test_segmentation_scores_on_degenerate_masks():
    empty = np.zeros((6, 6), bool)
    full = np.ones((6, 6), bool)
    obj = square(6, 6, 1, 1, 2)
    both_empty = M.segmentation_scores(empty, empty)
    for name in ("IoU", "dice", "F1", "prec", "rec"):
        assert math.isnan(both_empty[name])
    assert both_empty["MAE"] == 0 and both_empty["acc"] == 1 and both_empty["BER"] == 0  # FPR alone, 0
    missed = M.segmentation_scores(empty, obj)  # empty prediction, non-empty GT: failures, not NaN
    assert missed["IoU"] == missed["dice"] == missed["prec"] == missed["rec"] == missed["F1"] == 0
    assert missed["BER"] == pytest.approx(0.5)  # ½(FPR 0 + FNR 1)
    assert M.segmentation_scores(full, full)["BER"] == 0  # no negative pixel: the FNR term alone
    nowhere = M.segmentation_scores(obj, obj, empty)  # empty region: every score NaN
    assert all(math.isnan(v) for v in nowhere.values())
    assert M.boundary_iou(empty, obj) == 0.0


def test_roi_radius_and_dilation_by_a_square():
    assert M.roi_radius(1024, 1024) == 29  # ⌈28.96⌉
    assert M.roi_radius(768, 1024) == 26  # ⌈25.6⌉
    assert M.roi_radius(10, 10) == 1
    rng = np.random.default_rng(1)
    masks = blobs(rng, 3, 50, 70, threshold=0.7)
    masks[2] = False
    for d in (0, 1, 4):
        expected = np.stack([ndimage.binary_dilation(m, np.ones((2 * d + 1, 2 * d + 1))) if d else m for m in masks])
        np.testing.assert_array_equal(M.dilate(masks, d), expected)
    roi = M.dilated_roi(torch.from_numpy(masks))
    assert isinstance(roi, torch.Tensor) and roi.dtype == torch.bool
    np.testing.assert_array_equal(roi.numpy(), M.dilate(masks, M.roi_radius(50, 70)))


def test_ece_matches_torchmetrics_including_bin_edges():
    rng = np.random.default_rng(2)
    p = rng.random((3, 20, 25)).astype(np.float32)
    p[0, 0, :11] = torch.linspace(0, 1, 11).numpy()  # exactly on torchmetrics' bin edges
    p[1, 0, :5] = 1.0
    y = rng.random((3, 20, 25)) < p
    ours = M.ece(p, y)
    for k in range(3):
        ref = binary_calibration_error(torch.from_numpy(p[k]).flatten(), torch.from_numpy(y[k]).flatten().long(),
                                       n_bins=10, norm="l1")
        assert ours[k] == pytest.approx(ref.item(), abs=1e-6)
    region = rng.random((3, 20, 25)) < 0.5
    ref = binary_calibration_error(torch.from_numpy(p[2][region[2]]), torch.from_numpy(y[2][region[2]]).long(), n_bins=10)
    assert M.ece(p, y, region)[2] == pytest.approx(ref.item(), abs=1e-6)
    assert math.isnan(M.ece(p[0], y[0], np.zeros_like(y[0])))
    edges = torch.linspace(0, 1, 11)
    values = torch.cat([edges, edges + 1e-7, (edges - 1e-7).clamp(min=0), torch.rand(1000)])
    expected = torch.bucketize(values, edges, right=True) - 1
    torch.testing.assert_close(PM.ece_bins(values), expected)


def test_brier_sharpness_and_region_means():
    rng = np.random.default_rng(3)
    p = rng.random((2, 9, 11))
    y = rng.random((2, 9, 11)) < 0.4
    r = rng.random((2, 9, 11)) < 0.5
    np.testing.assert_allclose(M.brier(p, y), ((p - y) ** 2).mean(axis=(1, 2)))
    np.testing.assert_allclose(M.brier(p, y, r), [((p[k] - y[k]) ** 2)[r[k]].mean() for k in range(2)])
    np.testing.assert_allclose(M.sharpness(p - 3, r), [(p[k] - 3)[r[k]].mean() for k in range(2)])
    np.testing.assert_allclose(M.soft_error(p, y), np.abs(y - p), rtol=1e-6)


def test_pearson_and_spearman_against_scipy():
    rng = np.random.default_rng(4)
    x = np.round(rng.random((3, 15, 20)), 1).astype(np.float32)  # many ties
    y = (x + rng.random((3, 15, 20))).astype(np.float32)
    r = rng.random((3, 15, 20)) < 0.6
    x64, y64 = x.astype(np.float64), y.astype(np.float64)  # scipy computes in the input's precision
    for k in range(3):
        assert M.pearson(x, y)[k] == pytest.approx(stats.pearsonr(x64[k].ravel(), y64[k].ravel()).statistic, abs=1e-9)
        assert M.pearson(x, y, r)[k] == pytest.approx(stats.pearsonr(x64[k][r[k]], y64[k][r[k]]).statistic, abs=1e-9)
        assert M.spearman(x, y, r)[k] == pytest.approx(stats.spearmanr(x[k][r[k]], y[k][r[k]]).statistic, abs=1e-12)
    out = M.pearson(torch.from_numpy(x), torch.from_numpy(y))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (3,)


def test_correlations_of_degenerate_maps():
    y = np.random.default_rng(5).random((8, 8))
    const = np.full((8, 8), 0.3)
    assert M.pearson(const, y) == 0.0 and M.spearman(const, y) == 0.0  # the reference's ε convention
    assert M.pearson(y, np.zeros((8, 8))) == 0.0
    assert math.isnan(M.pearson(y, y, np.zeros((8, 8), bool)))
    nan_map = y.copy()
    nan_map[0, 0] = np.nan
    assert math.isnan(M.pearson(nan_map, y)) and math.isnan(M.spearman(nan_map, y))


def test_auroc_and_aupr_against_sklearn_with_ties():
    rng = np.random.default_rng(6)
    score = np.round(rng.random((4, 12, 12)), 1).astype(np.float32)
    wrong = rng.random((4, 12, 12)) < 0.2 + 0.5 * score
    region = rng.random((4, 12, 12)) < 0.7
    auc, ap = M.auroc(score, wrong, region), M.aupr(score, wrong, region)
    for k in range(4):
        s, z = score[k][region[k]], wrong[k][region[k]]
        assert auc[k] == pytest.approx(skm.roc_auc_score(z, s), abs=1e-12)
        assert ap[k] == pytest.approx(skm.average_precision_score(z, s), abs=1e-12)


def test_error_detection_degenerate_cases():
    rng = np.random.default_rng(7)
    score = rng.random((10, 10)).astype(np.float32)
    wrong = rng.random((10, 10)) < 0.3
    const = np.full((10, 10), 0.2, np.float32)
    assert M.auroc(const, wrong) == 0.5
    assert M.aupr(const, wrong) == pytest.approx(wrong.mean())
    assert math.isnan(M.auroc(score, np.zeros_like(wrong))) and math.isnan(M.aupr(score, np.zeros_like(wrong)))
    assert math.isnan(M.auroc(score, np.ones_like(wrong))) and M.aupr(score, np.ones_like(wrong)) == 1.0
    assert M.auroc(wrong.astype(np.float32), wrong) == 1.0  # a perfect detector


def brute_force_ause(u, e):
    """Sparsification by explicit removal (no ties in u): mean over k of the remaining mean errors."""
    by_u = e[np.argsort(-u, kind="stable")]
    by_e = np.sort(e)[::-1]
    n = len(e)
    return np.mean([by_u[k:].mean() - by_e[k:].mean() for k in range(n)])


def test_ause_against_explicit_removal():
    rng = np.random.default_rng(8)
    u = rng.random(300).astype(np.float32)
    e = np.abs(u + 0.5 * rng.standard_normal(300)).astype(np.float32)
    assert M.ause(u[None], e[None]) == pytest.approx(brute_force_ause(u.astype(float), e.astype(float)), rel=1e-6)
    assert M.ause(e[None], e[None]) == pytest.approx(0.0, abs=1e-12)  # the oracle itself
    assert M.ause(-e[None], e[None]) > M.ause(u[None], e[None])  # the worst ordering is worse
    # a constant map removes every pixel "in expectation": its curve stays at the mean error
    flat = np.full(300, 0.5, np.float32)
    expected = np.mean([e.mean() - np.sort(e)[::-1][k:].mean() for k in range(300)])
    assert M.ause(flat[None], e[None]) == pytest.approx(expected, rel=1e-6)


def test_rank_helpers_and_subsampling():
    rng = np.random.default_rng(9)
    values = np.round(rng.standard_normal(5000), 2).astype(np.float32)
    values[:3] = [-0.0, 0.0, np.float32(-1e-30)]
    np.testing.assert_array_equal(np.sort(values)[np.argsort(argsort(values))], np.sort(values)[np.argsort(np.argsort(values, kind="stable"))])
    np.testing.assert_array_equal(values[argsort(values)], np.sort(values))
    np.testing.assert_allclose(average_ranks(values), stats.rankdata(values))
    score = rng.random((1, 40, 50)).astype(np.float32)
    wrong = rng.random((1, 40, 50)) < 0.3
    capped = M.ranking_scores(score, score, wrong, max_pixels=500)
    keep = (np.arange(500) * 2000) // 500  # evenly spaced raster positions
    assert capped["auroc"][0] == pytest.approx(skm.roc_auc_score(wrong.ravel()[keep], score.ravel()[keep]))


def fused_inputs(rng, b=3, h=60, w=80):
    gt = blobs(rng, b, h, w, threshold=0.62, sigma=5)
    logits = torch.from_numpy(smooth(rng, b, h, w) + 2.0 * (gt - 0.5)).float()
    prob = torch.sigmoid(logits)
    uncertainty = (prob * (1 - prob)).float()
    std = (0.5 * uncertainty + 0.01).float()
    return gt, logits, uncertainty, std


def reference_columns(gt, logits, uncertainty, std, shared_logits=None):
    pred = (logits > 0).numpy()
    p = torch.sigmoid(logits).numpy()
    u = uncertainty.numpy()
    roi = M.dilated_roi(gt)
    err = M.soft_error_from_logits(logits, torch.from_numpy(gt)).numpy()
    shared = None if shared_logits is None else M.soft_error_from_logits(shared_logits, torch.from_numpy(gt)).numpy()
    out = {"BIoU_2": M.boundary_iou(pred, gt, 0.02), "BIoU_1": M.boundary_iou(pred, gt, 0.01)}
    for suffix, region in (("", None), ("_", roi)):
        out.update({k + suffix: v for k, v in M.segmentation_scores(pred, gt, region).items()})
        out["pearson" + suffix] = M.pearson(u, err, region)
        out["ECE" + suffix] = M.ece(p, gt, region)
        out["brier" + suffix] = M.brier(p, gt, region)
        out["sharp" + suffix] = M.sharpness(u, region)
        out["avg_sample_std" + suffix] = (M.region_mean(std.numpy(), region) if std is not None
                                          else np.zeros(len(gt)))
        out.update({k + suffix: v for k, v in M.ranking_scores(u, err, pred ^ gt, region).items()})
        nan = np.full(len(gt), np.nan)
        out["pearson_shared" + suffix] = nan if shared is None else M.pearson(u, shared, region)
        out["spearman_shared" + suffix] = nan if shared is None else M.spearman(u, shared, region)
    out.update(reference_curves(p, gt, u, pred ^ gt))
    return out


def reference_curves(p, gt, u, wrong):
    """Reliability bins by numpy's digitize on float64 and risk-coverage by a plain sort (no ties in u)."""
    out = {}
    flat_p, flat_y = p.reshape(len(p), -1).astype(np.float64), gt.reshape(len(gt), -1).astype(np.float64)
    bins = np.minimum(np.floor(flat_p * 10).astype(int), 9)
    for k in range(10):
        inside = bins == k
        n = flat_p.shape[1]
        out[f"rel_frac_{k}"] = inside.sum(1) / n
        out[f"rel_p_{k}"] = (flat_p * inside).sum(1) / n
        out[f"rel_y_{k}"] = (flat_y * inside).sum(1) / n
    order = np.argsort(u.reshape(len(u), -1), axis=1, kind="stable")
    z = np.take_along_axis(wrong.reshape(len(wrong), -1), order, axis=1)
    for c in M.RISK_COVERAGES:
        keep = int(np.floor(c / 100 * z.shape[1] + 0.5))
        out[f"risk_cov_{c}"] = z[:, :keep].mean(1)
    return out


def test_soft_error_from_logits_has_no_cancellation():
    z = torch.tensor([[-40.0, -17.0, -2.0, 0.0, 2.0, 17.0, 40.0]])
    y = torch.tensor([[True, True, True, False, False, False, False]])
    exact = np.where(y.numpy(), 1 / (1 + np.exp(z.double().numpy())), 1 / (1 + np.exp(-z.double().numpy())))
    np.testing.assert_allclose(M.soft_error_from_logits(z, y).numpy(), exact, rtol=1e-6)
    assert (M.soft_error_from_logits(z, ~y) > 0).all()  # 1 − σ(17) is 0 in fp32; σ(−17) is not


@pytest.mark.parametrize("with_std", [True, False])
@pytest.mark.parametrize("with_shared", [True, False])
def test_fused_per_mask_metrics_equal_the_reference_functions(with_std, with_shared):
    gt, logits, uncertainty, std = fused_inputs(np.random.default_rng(10))
    std = std if with_std else None
    shared_logits = logits + torch.from_numpy(smooth(np.random.default_rng(3), *gt.shape)).float() if with_shared else None
    shared = M.SharedTarget.from_logits(M.prepare_targets(gt), shared_logits) if with_shared else None
    got = M.per_mask_metrics(M.prepare_targets(gt), logits, uncertainty, std, shared=shared, rank_max_pixels=None)
    assert list(got) == list(M.METRIC_COLUMNS)
    expected = reference_columns(gt, logits, uncertainty, std, shared_logits)
    for name in M.METRIC_COLUMNS:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-7, err_msg=name)
    if not with_shared:
        assert np.isnan(got["spearman_shared_"]).all()


def test_shared_target_of_the_method_itself_reproduces_its_own_columns():
    gt, logits, uncertainty, std = fused_inputs(np.random.default_rng(12))
    targets = M.prepare_targets(gt, half_resolution=True)
    got = M.per_mask_metrics(targets, logits, uncertainty, std, shared=M.SharedTarget.from_logits(targets, logits),
                             rank_max_pixels=500)  # subsampled ranks too
    for name in ("pearson", "spearman", "pearson_", "spearman_"):
        shared = name.rstrip("_") + "_shared" + ("_" if name.endswith("_") else "")
        np.testing.assert_array_equal(got[shared], got[name], err_msg=name)


def test_risk_coverage_counts_a_cut_tie_group_in_expectation():
    from uncertsam_utils.metrics._ranking import Ranked

    u = np.array([0.1, 0.2, 0.2, 0.2, 0.2, 0.9], np.float32)
    z = np.array([0, 1, 0, 0, 0, 1], bool)
    risk = Ranked(u, None, z).risk_coverage([1 / 6, 0.5, 1.0])
    # keep 1: the first pixel (no error); keep 3: pixel 1 + two of the tied four, 1/4 error each on average
    np.testing.assert_allclose(risk, [0.0, (0 + 2 * 0.25) / 3, 2 / 6])


def test_fused_metrics_at_half_resolution_follow_the_paper():
    gt, logits, uncertainty, std = fused_inputs(np.random.default_rng(11), h=61, w=80)
    got = M.per_mask_metrics(M.prepare_targets(gt, half_resolution=True), logits, uncertainty, std, rank_max_pixels=None)
    # the reference: P and GT nearest-downscaled by 0.5, logits and maps bilinear (a 2×2 mean)
    half_gt = PM.half_nearest(torch.from_numpy(gt)).numpy()
    assert half_gt.shape == (3, 30, 40)
    np.testing.assert_array_equal(half_gt, gt[:, :60:2, ::2])
    half = PM.half_bilinear
    mean4 = lambda x: x[:, :60].reshape(3, 30, 2, 40, 2).mean(axis=(2, 4))  # noqa: E731
    np.testing.assert_allclose(half(logits).numpy(), mean4(logits.numpy()), rtol=1e-5, atol=1e-6)
    pred = PM.half_nearest(logits > 0).numpy()
    expected = M.segmentation_scores(pred, half_gt)
    np.testing.assert_allclose(got["IoU"], expected["IoU"])
    p = torch.sigmoid(half(logits)).numpy()
    np.testing.assert_allclose(got["brier"], M.brier(p, half_gt), rtol=1e-6)
    np.testing.assert_allclose(got["pearson"], M.pearson(half(uncertainty).numpy(), np.abs(half_gt - p)), rtol=1e-6)


def test_fused_metrics_on_degenerate_inputs():
    gt = np.zeros((3, 20, 30), bool)
    gt[:, 5:12, 8:20] = True
    logits = torch.full((3, 20, 30), -5.0)  # an empty prediction everywhere
    const = torch.full((3, 20, 30), 0.25)
    out = M.per_mask_metrics(M.prepare_targets(gt), logits, const)
    assert all(out[c].shape == (3,) for c in M.METRIC_COLUMNS)
    np.testing.assert_array_equal(out["IoU"], 0.0)
    np.testing.assert_array_equal(out["prec"], 0.0)
    np.testing.assert_array_equal(out["BIoU_2"], 0.0)
    np.testing.assert_array_equal(out["pearson"], 0.0)  # constant map
    np.testing.assert_array_equal(out["pearson_"], 0.0)
    np.testing.assert_array_equal(out["auroc"], 0.5)
    np.testing.assert_array_equal(out["avg_sample_std"], 0.0)
    np.testing.assert_allclose(out["sharp"], 0.25, rtol=1e-6)
    # a mask that vanishes at half resolution: its region is empty, its scores NaN, no crash
    tiny = np.zeros((1, 20, 30), bool)
    tiny[0, 3, 3] = True  # an odd pixel: gone after nearest ×0.5
    out = M.per_mask_metrics(M.prepare_targets(tiny, half_resolution=True), torch.full((1, 20, 30), -5.0),
                             torch.rand(1, 20, 30))
    assert math.isnan(out["IoU"][0]) and math.isnan(out["pearson_"][0]) and math.isnan(out["BIoU_2"][0])
    assert out["acc"][0] == 1.0 and math.isnan(out["auroc"][0])  # nothing is wrong: no AUROC
