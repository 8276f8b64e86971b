"""The plots package: a palette where no two methods look alike, and every figure on toy data."""

import itertools
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from uncertsam_utils import analysis, plots  # noqa: E402
from uncertsam_utils.metrics import CURVE_COLUMNS, RELIABILITY_BINS, RISK_COVERAGES  # noqa: E402


def _lab(colour):
    rgb = np.array(to_rgb(colour))
    rgb = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ rgb
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def ciede2000(c1, c2):
    """Sharma, Wu & Dalal's CIEDE2000 (checked below against their published test pair)."""
    return _de2000(_lab(c1), _lab(c2))


def _de2000(lab1, lab2):
    (L1, a1, b1), (L2, a2, b2) = lab1, lab2
    cbar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(cbar ** 7 / (cbar ** 7 + 25 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p, h2p = math.degrees(math.atan2(b1, a1p)) % 360, math.degrees(math.atan2(b2, a2p)) % 360
    dh = 0.0 if c1p * c2p == 0 else (h2p - h1p + 180) % 360 - 180
    dH = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    lbar, cbarp = (L1 + L2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        hbar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        hbar = (h1p + h2p) / 2
    else:
        hbar = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(hbar - 30)) + 0.24 * math.cos(math.radians(2 * hbar))
         + 0.32 * math.cos(math.radians(3 * hbar + 6)) - 0.20 * math.cos(math.radians(4 * hbar - 63)))
    sl = 1 + 0.015 * (lbar - 50) ** 2 / math.sqrt(20 + (lbar - 50) ** 2)
    sc, sh = 1 + 0.045 * cbarp, 1 + 0.015 * cbarp * t
    rt = (-math.sin(math.radians(60 * math.exp(-((hbar - 275) / 25) ** 2)))
          * 2 * math.sqrt(cbarp ** 7 / (cbarp ** 7 + 25 ** 7)))
    dl, dc = (L2 - L1) / sl, (c2p - c1p) / sc
    return math.sqrt(dl ** 2 + dc ** 2 + (dH / sh) ** 2 + rt * dc * (dH / sh))


def test_ciede2000_reference_pairs():
    assert _de2000((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485)) == pytest.approx(2.0425, abs=1e-4)
    assert _de2000((50.0, 2.5, 0.0), (73.0, 25.0, -18.0)) == pytest.approx(27.1492, abs=1e-4)


def test_no_two_methods_look_alike():
    colours = plots.METHOD_COLOURS
    for group in plots.FIGURE_GROUPS.values():
        worst = min((ciede2000(colours[a], colours[b]), a, b) for a, b in itertools.combinations(group, 2))
        assert worst[0] >= 24.0, worst  # shown together: clearly apart
    worst = min((ciede2000(colours[a], colours[b]), a, b) for a, b in itertools.combinations(colours, 2))
    assert worst[0] >= 19.0, worst
    assert ciede2000("#2ca02c", "#98df8a") < 20.0  # the two Laplace greens of 0.2, for the record
    assert len(set(plots.METHOD_MARKERS.values())) == len(plots.METHOD_MARKERS) and set(plots.METHOD_MARKERS) == set(colours)
    assert plots.method_colour("tta-in_domain") == colours["tta"] and plots.evaluation_colour("x", ["x"]) != "#000000"


def toy_frame(methods=("baseline", "tta", "laplace"), datasets=("A", "B"), images=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for dataset in datasets:
        for image in range(images):
            for mask in range(2):
                for j, method in enumerate(methods):
                    row = {"dataset": dataset, "method": method, "image_id": image, "mask_id": mask,
                           "pearson": 0.4 + 0.05 * j + 0.1 * rng.standard_normal(), "IoU": rng.random(),
                           "ause": 10 ** rng.uniform(-4, -1)}
                    frac = rng.dirichlet(np.ones(RELIABILITY_BINS))
                    p = (np.arange(RELIABILITY_BINS) + 0.5) / RELIABILITY_BINS
                    row.update({f"rel_frac_{k}": frac[k] for k in range(RELIABILITY_BINS)})
                    row.update({f"rel_p_{k}": frac[k] * p[k] for k in range(RELIABILITY_BINS)})
                    row.update({f"rel_y_{k}": frac[k] * min(1, p[k] + 0.05 * j) for k in range(RELIABILITY_BINS)})
                    row.update({f"risk_cov_{c}": c / 1000 * (1 + j) for c in RISK_COVERAGES})
                    rows.append(row)
    return pd.DataFrame(rows)


def test_reliability_and_risk_tables_weigh_masks_equally():
    frame = toy_frame()
    table = plots.reliability_table(frame)
    part = frame[(frame.dataset == "A") & (frame.method == "tta")]
    row = table[(table.dataset == "A") & (table.method == "tta") & (table.bin == 3)].iloc[0]
    assert row["confidence"] == pytest.approx(0.35) and row["frequency"] == pytest.approx(0.40)
    assert row["share"] == pytest.approx(part["rel_frac_3"].mean())
    risk = plots.risk_coverage_table(frame)
    assert risk[(risk.method == "laplace") & (risk.coverage == 50)]["risk"].iloc[0] == pytest.approx(0.15)
    assert set(CURVE_COLUMNS) <= set(frame.columns)


def test_evaluation_figures_draw(tmp_path):
    frame = toy_frame()
    methods, datasets = ["baseline", "tta", "laplace"], ["A", "B"]
    summary = analysis.summarise(frame, ["pearson", "ause", "IoU"], n_boot=50)
    means = analysis.dataset_mean_summary(frame, ["pearson", "ause", "IoU"], n_boot=50)
    delta = analysis.delta_vs_baseline(frame, ["pearson"], n_boot=50)
    per_image = analysis.image_means(frame, ["pearson", "ause"])
    fig = plots.figure3(per_image, summary, means, delta, "pearson", datasets=datasets, methods=methods, title="t")
    assert len(fig.axes) == 3 and fig.axes[2].get_xticklabels()[-1].get_text() == "mean"
    fig = plots.figure3(per_image, summary, means, delta, "ause", datasets=datasets, methods=methods, log=True)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "log"
    numeric = analysis.numeric_table(summary, ["IoU"])
    fig = plots.interval_figure(numeric, "IoU", datasets=datasets, methods=methods, mean_summary=means)
    assert len(fig.axes) == 2
    assert len(plots.reliability_diagrams(frame, datasets=datasets, methods=methods).axes) == 4
    fig = plots.risk_coverage_curves(frame, datasets=datasets, methods=methods)
    assert fig.axes[2].get_title() == "mean over domains" and fig.axes[0].get_yscale() == "log"
    plt.close("all")


def test_qualitative_grid_has_a_legend_on_every_error_map_and_states_its_rule(tmp_path):
    rng = np.random.default_rng(1)
    gt = np.zeros((20, 24), bool)
    gt[5:15, 6:18] = True
    rows = [plots.QualitativeRow(f"D{i}", (rng.random((20, 24, 3)) * 255).astype(np.uint8), np.array([6, 5, 18, 15]),
                                 gt, rng.random((20, 24)), rng.random((20, 24)) * 0.6) for i in range(2)]
    fig = plots.qualitative_grid(rows, "tta", path=tmp_path / "q.png")
    error_axes = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert len(error_axes) == 2 and (tmp_path / "q.png").is_file()
    assert "median area" in fig._supxlabel.get_text()
    example = plots.RefinementExample("D #1\nworst, Δ -0.300", rows[0].image, rows[0].box, gt, rows[0].uncertainty,
                                      {"baseline": gt, "fusion-laplace": ~gt})
    fig = plots.refinement_grid([example], caption="worst by Δ IoU")
    assert fig.legends and "worst by Δ IoU" in fig._supxlabel.get_text()
    comparison = plots.ComparisonRow("D #1", rows[0].image, rows[0].box, gt, rng.random((20, 24)),
                                     {"baseline": rng.random((20, 24)), "tta": rng.random((20, 24))})
    fig = plots.method_comparison_grid([comparison, comparison], caption="rule")
    assert [ax.get_title() for ax in fig.axes[:4]][2:] == ["baseline", "tta"]
    plt.close("all")


def test_percentile_map_ranks_values_with_ties():
    values = np.array([[0.0, 1.0], [1.0, 5.0]])
    np.testing.assert_allclose(plots.percentile_map(values), [[0.0, 0.5], [0.5, 1.0]])


def test_crop_window_keeps_a_small_object_visible_and_stays_inside_the_image():
    gt = np.zeros((400, 600), bool)
    gt[10:14, 590:596] = True  # a few pixels near a corner
    rows, cols = plots.crop_window(gt, (589, 9, 597, 15))
    assert rows.start == 0 and cols.stop == 600  # clipped
    assert rows.stop - rows.start >= 24 and cols.stop - cols.start >= 24
    assert gt[rows, cols].sum() == gt.sum()  # the whole object is inside
    big = np.ones((50, 60), bool)
    assert plots.crop_window(big, (0, 0, 60, 50)) == (slice(0, 50), slice(0, 60))
