"""The analysis package: aggregation, Δ tables with Holm, winners on common masks, claims, sentences, examples."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from uncertsam_utils import analysis


def toy_results():
    rng = np.random.default_rng(5)
    rows = []
    for dataset in ("A", "B"):
        for image_id in range(12):
            for mask_id in range(1 + image_id % 3):
                for method, shift in (("good", 0.3), ("bad", 0.0)):
                    rows.append({"image_id": image_id, "mask_id": mask_id, "dataset": dataset, "method": method,
                                 "pearson": shift + 0.1 * rng.standard_normal(), "IoU": rng.random(),
                                 "ause": 0.1 - shift / 10 + 0.01 * rng.random()})
    frame = pd.DataFrame(rows)
    frame.loc[0, "IoU"] = np.nan
    return frame


def paired_frame(shift=0.05, noise=0.01, images=30, datasets=("D",), methods=("a", "b"), seed=5):
    rng = np.random.default_rng(seed)
    rows = []
    for dataset in datasets:
        for image in range(images):
            for mask in range(1 + image % 3):
                base = rng.random()
                rows.append({"dataset": dataset, "method": methods[0], "image_id": image, "mask_id": mask,
                             "IoU": base + shift})
                rows.append({"dataset": dataset, "method": methods[1], "image_id": image, "mask_id": mask,
                             "IoU": base + rng.normal(0, noise)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ aggregation

def test_summary_means_over_masks_and_bootstraps_over_images():
    frame = toy_results()
    summary = analysis.summarise(frame, ["pearson", "IoU"], n_boot=300, seed=1)
    pd.testing.assert_frame_equal(summary, analysis.summarise(frame, ["pearson", "IoU"], n_boot=300, seed=1))  # seeded
    row = summary[(summary.dataset == "A") & (summary.method == "good") & (summary.metric == "IoU")].iloc[0]
    values = frame[(frame.dataset == "A") & (frame.method == "good")]["IoU"]
    assert row["mean"] == pytest.approx(values.mean())  # NaN skipped, mean over masks
    assert row["masks"] == values.notna().sum() and row["images"] == 12
    assert row["lo"] < row["mean"] < row["hi"]
    wide = analysis.wide_table(summary, ["pearson", "IoU"])
    assert list(wide.columns) == ["dataset", "method", "Pearson ρ", "mIoU"] and "[" in wide.iloc[0, 2]
    numeric = analysis.numeric_table(summary, ["pearson"])
    assert list(numeric.columns) == ["dataset", "method", "pearson", "pearson_lo", "pearson_hi", "masks", "images"]


def test_mean_over_datasets_and_its_interval_from_the_same_resamples():
    frame = toy_results()
    means = analysis.dataset_mean_summary(frame, ["pearson"], n_boot=400, seed=2)
    summary = analysis.summarise(frame, ["pearson"], n_boot=400, seed=2)
    good = means[means.method == "good"].iloc[0]
    assert good["mean"] == pytest.approx(summary[summary.method == "good"]["mean"].mean())
    assert good["lo"] < good["mean"] < good["hi"] and good["datasets"] == 2
    # resample b of the mean is the mean of the datasets' resample b: narrower than either dataset's interval
    per = summary[summary.method == "good"]
    assert good["hi"] - good["lo"] < (per["hi"] - per["lo"]).min()
    with pytest.raises(ValueError, match="missing"):
        analysis.dataset_mean_summary(frame[~((frame.method == "bad") & (frame.dataset == "B"))], ["pearson"])
    partial = analysis.dataset_mean_summary(frame[~((frame.method == "bad") & (frame.dataset == "B"))], ["pearson"],
                                            allow_missing=True, n_boot=10)
    assert partial.set_index("method").loc["bad", "datasets"] == 1


def test_common_masks_keep_only_masks_every_method_scored():
    frame = toy_results()
    frame.loc[(frame.method == "bad") & (frame.dataset == "A") & (frame.image_id == 3), "pearson"] = np.nan
    common = analysis.common_masks(frame, "pearson")
    assert not ((common.dataset == "A") & (common.image_id == 3)).any()
    assert len(common) == len(frame) - 2 * ((frame.dataset == "A") & (frame.image_id == 3) & (frame.method == "bad")).sum()


# ------------------------------------------------------------------------------------------ comparisons

def test_paired_difference_matches_a_direct_paired_bootstrap():
    frame = paired_frame()
    table = analysis.paired_difference(frame, "a", "b", n_boot=2000, seed=3)
    a, b = frame[frame.method == "a"], frame[frame.method == "b"]
    assert table.loc[0, "difference"] == pytest.approx(a.IoU.mean() - b.IoU.mean())
    # the same resamples recomputed mask by mask: each mask weighted by its image's multiplicity
    weights = analysis.bootstrap_weights(np.arange(30), 2000, 3, "paired|D")
    per_mask = np.repeat(weights, [1 + i % 3 for i in range(30)], axis=1)
    direct = per_mask @ a.IoU.to_numpy() / per_mask.sum(1) - per_mask @ b.IoU.to_numpy() / per_mask.sum(1)
    lo, hi = np.quantile(direct, [0.025, 0.975])
    assert table.loc[0, "lo"] == pytest.approx(lo, abs=1e-12) and table.loc[0, "hi"] == pytest.approx(hi, abs=1e-12)
    assert table.loc[0, "lo"] > 0.04 and table.loc[0, "hi"] < 0.06  # the paired interval is tight around 0.05
    assert table.loc[0, "p_two_sided"] == pytest.approx(2 / 2001)  # (1 + 0) / (n + 1), never 0
    assert table["dataset"].tolist() == ["D", "mean"] and table["significant"].all()
    assert "a is better (Holm-corrected across the 1 datasets, α = 0.05) on 1 of 1 datasets (D)" in \
        analysis.describe_difference(table)
    swapped = analysis.paired_difference(frame, "b", "a", n_boot=2000, seed=3)
    assert swapped.loc[0, "difference"] == pytest.approx(-table.loc[0, "difference"])
    # a mask only one method scored is left out of both means
    fewer = analysis.paired_difference(frame.drop(index=0), "a", "b", n_boot=100)
    assert fewer.loc[0, "masks"] == table.loc[0, "masks"] - 1


def test_holm_against_a_direct_step_down():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan, 0.2])
    got = analysis.holm(p)
    finite = [0.01, 0.04, 0.03, 0.005, 0.2]
    m = len(finite)
    order = np.argsort(finite)
    expected = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):  # the textbook loop
        running = max(running, min(1.0, (m - rank) * finite[i]))
        expected[i] = running
    np.testing.assert_allclose(got[[0, 1, 2, 3, 5]], expected)
    assert math.isnan(got[4])
    assert got[1] == pytest.approx(0.09) and got[3] == pytest.approx(0.025)


def test_delta_vs_baseline_has_one_holm_family_per_method_and_metric_and_a_mean_row():
    frame = paired_frame(shift=0.02, noise=0.05, datasets=("A", "B", "C"), methods=("m", "baseline"))
    frame["ause"] = 1.0 - frame["IoU"]  # lower is better: "better" flips the sign
    delta = analysis.delta_vs_baseline(frame, ["IoU", "ause"], n_boot=500, seed=0)
    assert set(delta.method_a) == {"m"} and set(delta.method_b) == {"baseline"}
    for metric, part in delta.groupby("metric"):
        per = part[part.dataset != "mean"]
        np.testing.assert_allclose(per["p_holm"], analysis.holm(per["p_two_sided"]))
        mean = part[part.dataset == "mean"].iloc[0]
        assert mean["difference"] == pytest.approx(per["difference"].mean())
    iou = delta[(delta.metric == "IoU") & (delta.dataset == "mean")].iloc[0]
    ause = delta[(delta.metric == "ause") & (delta.dataset == "mean")].iloc[0]
    assert iou["better"] == pytest.approx(-ause["better"] * -1) and iou["better"] > 0
    text = analysis.describe_delta(delta, "IoU")
    assert "- m: +0.0" in text and "better on" in text
    shown = analysis.delta_display(delta)
    assert list(shown.columns) == ["method", "metric", "A", "B", "C", "mean"]


def test_difference_between_splits_resamples_each_side_on_its_own():
    frame = paired_frame(shift=0.0, datasets=("X", "Y"), methods=("baseline", "other"))
    domains = frame[frame.method == "baseline"]
    fit = domains[domains.dataset == "X"].assign(dataset="fit", IoU=lambda f: f.IoU + 0.3)
    table = analysis.difference_between_splits(domains, fit, "IoU", n_boot=500)
    assert table.dataset.tolist() == ["X", "Y", "mean"]
    assert table.loc[0, "difference"] == pytest.approx(-0.3)
    assert (table["hi"] < 0).all() and table["significant"].all()
    with pytest.raises(ValueError, match="one dataset"):
        analysis.difference_between_splits(domains, domains, "IoU")


def test_delta_from_intervals_is_a_conservative_normal_approximation():
    numeric = pd.DataFrame({"dataset": ["A", "A", "B", "B"], "method": ["x", "y"] * 2, "IoU": [0.5, 0.4, 0.6, 0.6],
                            "IoU_lo": [0.46, 0.36, 0.5, 0.5], "IoU_hi": [0.54, 0.44, 0.7, 0.7], "masks": 10, "images": 5})
    table = analysis.delta_from_intervals(numeric, "x", "y", "IoU")
    se = math.hypot(0.08 / 3.92, 0.08 / 3.92)
    assert table.loc[0, "lo"] == pytest.approx(0.1 - 1.959964 * se, rel=1e-5)
    assert table.loc[1, "p_two_sided"] == pytest.approx(1.0)
    assert table.loc[2, "dataset"] == "mean" and table.loc[2, "difference"] == pytest.approx(0.05)


def test_from_paired_table_adds_holm_and_the_mean_row_to_an_old_table():
    old = analysis.paired_difference(paired_frame(datasets=("A", "B")), "a", "b", n_boot=200)
    rebuilt = analysis.from_paired_table(old[old.dataset != "mean"].drop(columns=["p_holm", "significant"]))
    pd.testing.assert_series_equal(rebuilt["p_holm"].iloc[:2], old["p_holm"].iloc[:2])
    assert rebuilt.iloc[-1]["dataset"] == "mean" and rebuilt.iloc[-1]["lo"] > 0


# ------------------------------------------------------------------------------------------ winners

def test_winners_on_common_masks_and_generated_text():
    frame = toy_results()
    table = analysis.winners(frame, "pearson", n_boot=200, seed=0)
    assert list(table["best"]) == ["good", "good"] and (table["p_best"] == 1.0).all()
    assert analysis.winners(frame, "ause", n_boot=200, seed=0)["best"].tolist() == ["good", "good"]  # lower wins
    text = analysis.describe_winners(table)
    assert text.startswith("By Pearson ρ (on the masks every compared method scored), good is the best method on "
                           "2 of 2 datasets (A, B).")
    assert "clearly the winner" in text
    few = analysis.winners(frame[frame.image_id < 2], "pearson", n_boot=50, seed=0)
    assert "too few" in analysis.describe_winners(few)
    with pytest.raises(ValueError):
        analysis.winners(frame, "sharp")
    # "bad" wins on every mask it scored, but those are few: on the common masks "good" is compared fairly
    skewed = frame.copy()
    bad = skewed.method == "bad"
    skewed.loc[bad, "pearson"] = np.where(skewed.loc[bad, "image_id"] < 3, 2.0, np.nan)
    common = analysis.winners(skewed, "pearson", n_boot=50)
    assert (common["best"] == "bad").all() and (common["masks"] < 12).all()


def test_generated_sentences_about_the_paper_claim_and_combinations():
    frame = toy_results().replace({"method": {"good": "laplace"}})
    table = analysis.winners(frame, "pearson", n_boot=50, seed=0)
    assert analysis.paper_claim(table, ["laplace", "bad"]).endswith(
        "here, by Pearson ρ, laplace is the best of the 2 methods on 2 of 2 datasets (A, B).")
    assert "no Laplace method" in analysis.paper_claim(table, ["bad"])
    summary = pd.DataFrame({"dataset": ["A"] * 3, "method": ["c", "x", "y"], "metric": ["pearson"] * 3,
                            "mean": [0.5, 0.4, 0.45], "lo": [0.0] * 3, "hi": [1.0] * 3, "masks": [1] * 3,
                            "images": [1] * 3})
    gains = analysis.combination_gains(summary, {"c": ["x", "y"]}, ["pearson"])
    assert gains.iloc[0]["best_component"] == "y" and gains.iloc[0]["gain"] == pytest.approx(0.05)
    assert analysis.describe_combinations(gains).startswith("c beats its best component by Pearson ρ on 1 of 1")


def test_softening_sentence_names_a_gain_on_the_own_error_alone():
    means = pd.DataFrame({"method": ["soft"] * 3 + ["baseline"] * 3, "metric": ["pearson", "pearson_shared", "auroc"] * 2,
                          "mean": [0.66, 0.50, 0.90, 0.53, 0.53, 0.94]})
    assert "gains only on its own error" in analysis.describe_softening(means, "soft")


def test_markdown_and_table_files(tmp_path):
    table = pd.DataFrame({"dataset": ["A|B"], "value": [0.5], "missing": [math.nan]})
    text = analysis.to_markdown(table)
    assert text.splitlines() == ["| dataset | value | missing |", "|---|---|---|", "| A\\|B | 0.5000 | – |"]
    csv, md = analysis.write_table(table, tmp_path / "t", title="T", note="note")
    assert csv.read_text() == "dataset,value,missing\nA|B,0.5,nan\n"
    assert md.read_text().startswith("# T\n\n| dataset")


# ------------------------------------------------------------------------------------------ claims

def delta_table(differences, lo, hi, significant, mean=(0.0, -0.01, 0.01)):
    rows = [{"dataset": f"D{i}", "metric": "IoU", "method_a": "a", "method_b": "b", "mean_a": 0.5 + d, "mean_b": 0.5,
             "difference": d, "lo": l, "hi": h, "p_two_sided": 0.01 if s else 0.5, "p_holm": 0.01 if s else 0.5,
             "significant": s, "images": 10, "masks": 20}
            for i, (d, l, h, s) in enumerate(zip(differences, lo, hi, significant))]
    rows.append(rows[0] | {"dataset": "mean", "difference": mean[0], "lo": mean[1], "hi": mean[2]})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("mean, against, expect, verdict", [
    ((0.05, 0.02, 0.08), False, "higher", "holds"),
    ((0.05, 0.02, 0.08), True, "higher", "inconclusive"),  # one dataset significantly the other way
    ((-0.05, -0.08, -0.02), False, "higher", "does not hold"),
    ((0.01, -0.01, 0.03), False, "higher", "inconclusive"),
    ((-0.05, -0.08, -0.02), False, "lower", "holds"),
    ((0.004, 0.002, 0.006), False, "like", "holds"),  # inside ±0.01 although significant
    ((0.02, 0.015, 0.03), False, "like", "does not hold"),
    ((0.008, 0.002, 0.014), False, "like", "inconclusive"),
])
def test_delta_verdict_rules(mean, against, expect, verdict):
    sign = -1 if against else 1
    table = delta_table([sign * 0.05, 0.01, 0.02, 0.01], [sign * 0.03, -0.01, 0.0, -0.02], [sign * 0.07, 0.03, 0.04, 0.04],
                        [True, False, False, False], mean=mean)
    if expect == "lower":
        table[["difference", "lo", "hi"]] = -table[["difference", "hi", "lo"]].to_numpy()
        table.loc[table.dataset == "mean", ["difference", "lo", "hi"]] = mean
    assert analysis.delta_verdict(table, expect, margin=0.01)[0] == verdict


def test_delta_claim_row_states_rule_numbers_and_what_it_rests_on():
    table = analysis.paired_difference(paired_frame(datasets=("A", "B")), "a", "b", n_boot=300)
    claim = analysis.delta_claim("ours-x", "a beats b", table, "higher", notebook="07", source="ours")
    assert claim.verdict == "holds" and claim.paper_verdict == "not tested"
    assert "mIoU a − b: mean over 2 datasets +0.05" in claim.evidence and "Holm-significant higher on 2 (A, B)" in claim.evidence
    assert "Holm across datasets" in claim.test and claim.rests_on.startswith("60 images, 120 masks, 2 datasets")
    bound = analysis.bound_claim("paper-gt", "a bounds b", {"b": table}, notebook="07")
    assert bound.verdict == "holds"
    reversed_ = analysis.paired_difference(paired_frame(datasets=("A", "B")), "b", "a", n_boot=300)
    assert analysis.bound_claim("paper-gt", "s", {"b": table, "c": reversed_}, notebook="07").verdict == "does not hold"


def test_rank_claim_best_and_worst():
    frame = toy_results()
    frame = pd.concat([frame, frame[frame.method == "bad"].assign(method="mid", pearson=lambda f: f.pearson + 0.15)])
    means, lead = analysis.rank_evidence(frame, "pearson", ["good"], ["good", "bad", "mid"], n_boot=200)
    assert means["method"].tolist() == ["good", "mid", "bad"] and lead["method_b"].iloc[0] == "mid"
    best = analysis.rank_claim("paper-best", "good is best", means, lead, ["good"], notebook="06")
    assert best.verdict == "holds" and "best first: good 0.285" in best.evidence
    means, lead = analysis.rank_evidence(frame, "pearson", ["mid"], ["good", "bad", "mid"], n_boot=200)
    assert analysis.rank_claim("x", "mid is best", means, lead, ["mid"], notebook="06").verdict == "does not hold"
    means, lead = analysis.rank_evidence(frame, "pearson", ["bad"], ["good", "bad", "mid"], worst=True, n_boot=200)
    worst = analysis.rank_claim("paper-worst", "bad is worst", means, lead, ["bad"], notebook="06", worst=True)
    assert worst.verdict == "holds" and means["method"].iloc[0] == "bad"


# ------------------------------------------------------------------------------------------ examples

def test_examples_are_the_worst_median_and_best_by_delta():
    frame = toy_results()
    picks = analysis.select_examples(frame, "pearson", "good", "bad")
    deltas = analysis.object_deltas(frame, "pearson", "good", "bad")
    assert picks["rule"].tolist() == ["worst", "median", "best"]
    assert picks["delta"].tolist() == [deltas["delta"].min(), deltas["delta"].iloc[(len(deltas) - 1) // 2],
                                       deltas["delta"].max()]
    lower = analysis.select_examples(frame, "ause", "good", "bad", rules=["best"])
    best_raw = analysis.object_deltas(frame, "ause", "good", "bad")
    assert lower["delta"].iloc[0] == best_raw["delta"].max() and (best_raw["value"] < best_raw["reference_value"]).mean() > 0.9
    per = analysis.select_examples(frame, "pearson", "good", "bad", per_dataset=True)
    assert len(per) == 6 and set(per.dataset) == {"A", "B"}
    caption = analysis.examples_caption(per, "pearson", "good", "bad", per_dataset=True)
    assert caption.startswith("the worst, median and best object of each dataset by Δ Pearson ρ = good − bad")
    with pytest.raises(ValueError, match="unknown rules"):
        analysis.select_examples(frame, "pearson", "good", "bad", rules=["first"])


def test_every_public_name_of_the_old_module_is_still_importable():
    old = ["ACCURACY_METRICS", "HIGHER_IS_BETTER", "LABELS", "LOWER_IS_BETTER", "MIN_IMAGES_FOR_INTERVAL",
           "UNCERTAINTY_METRICS", "bootstrap_weights", "combination_gains", "describe_combinations",
           "describe_difference", "describe_winners", "direction", "image_means", "label", "numeric_table",
           "paired_difference", "paper_claim", "per_dataset_table", "summarise", "to_markdown", "wide_table",
           "winners", "write_table"]
    assert all(hasattr(analysis, name) for name in old)
    assert not list(itertools.filterfalse(lambda n: hasattr(analysis, n), analysis.__all__))


# ------------------------------------------------------------------------------------------ notebook rows and text

def test_uncertainty_claims_decide_the_paper_rows_from_results():
    frame = toy_results().replace({"method": {"good": "laplace", "bad": "varnet"}})
    frame = pd.concat([frame, frame[frame.method == "varnet"].assign(method="baseline", pearson=lambda f: f.pearson + 0.1)])
    frame["pearson_shared"], frame["auroc"] = frame["pearson"], frame["pearson"]
    fit = frame[(frame.method == "baseline") & (frame.dataset == "A")].assign(dataset="fit", IoU=lambda f: f.IoU + 0.5)
    claims = {c.id: c for c in analysis.uncertainty_claims(frame, fit, n_boot=200)}
    assert claims["paper-laplace-correlates-best"].verdict == "holds"
    assert claims["ours-laplace-best-by-fair-measures"].verdict == "holds"
    assert claims["paper-varnet-worst"].verdict == "holds"
    assert claims["paper-sam-degrades-on-shifted-domains"].verdict == "holds"
    assert "baseline (each domain) − baseline on fit" in claims["paper-sam-degrades-on-shifted-domains"].evidence


def test_refinement_claims_from_results_and_from_committed_tables():
    rng = np.random.default_rng(3)
    rows = []
    for dataset in ("A", "B"):
        for image in range(20):
            base = 0.5 + 0.1 * rng.random()
            for method, shift in (("baseline", 0.0), ("fusion-laplace", -0.1), ("fusion-ones", -0.102),
                                  ("gt-mask-prompt", 0.2), ("mask-prompt", 0.005)):
                rows.append({"dataset": dataset, "method": method, "image_id": image, "mask_id": 0,
                             "IoU": base + shift + rng.normal(0, 0.005)})
    frame = pd.DataFrame(rows)
    claims = {c.id: c for c in analysis.refinement_claims(analysis.deltas_from_results(frame, n_boot=300),
                                                          sorted(set(frame.method)))}
    assert claims["paper-refinement-modest-gains"].verdict == "does not hold"
    assert claims["paper-ones-map-like-laplace"].verdict == "holds"
    assert claims["paper-gt-mask-bounds-refinement"].verdict == "holds"
    numeric = analysis.numeric_table(analysis.summarise(frame, ["IoU"], n_boot=300), ["IoU"])
    from_tables = analysis.refinement_claims(analysis.deltas_from_tables(numeric), sorted(set(frame.method)))
    assert [c.verdict for c in from_tables][0] == "does not hold" and "normal approximation" in from_tables[0].test


def test_generated_notebook_sentences():
    text = analysis.describe_core(0.1, 0.01, 4, 3e-6, [0.8, 0.9])
    assert "10 % of the encoder's time" in text and "3.0e-06" in text and "0.850" in text
    spread = pd.DataFrame({"domain": ["A", "B"], "baseline H": [0.1, 0.2], "v H": [0.2, 0.1], "v MI": [0.0, 0.05]})
    text = analysis.describe_spread(spread, "baseline H", {"v": ("v H", "v MI")})
    assert "largest on B (0.0500)" in text and "above the baseline's on 1 of 2" in text and "(MI < 1e-06 nats) on A" in text
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1, 0.5], "val_loss": [0.9, 0.8], "val_pearson": [0.3, 0.4],
                            "val_pearson_variance": [0.35, 0.45], "val_pearson_entropy": [0.5, 0.5]}).set_index("epoch")
    assert "does not correlate better" in analysis.describe_varnet_training(history, 2)
    costs = pd.DataFrame({"model": ["m"] * 3, "method": ["baseline", "a", "b"], "ratio_to_baseline": [1, 2, 5],
                          "flop_ratio_to_baseline": [1, 2, 1.5]})
    assert "cheapest a at 2.00×" in analysis.describe_costs(costs) and "excess is b" in analysis.describe_costs(costs)
    recipes = pd.DataFrame({"domain": ["A"], "H laplace": [0.1], "H paper": [0.3], "sd laplace": [0.01], "sd paper": [1.0]})
    assert "100 times" in analysis.describe_laplace_recipes({"x": [74.0]}, recipes)
    stats = pd.DataFrame({"dataset": ["fit", "A", "B"], "split": ["test"] * 3, "images": [10, 5, 5], "masks": [30, 5, 20],
                          "masks_per_image": [3.0, 1.0, 4.0], "mean_area_frac": [0.04, 0.1, 0.01],
                          "mean_box_side_frac": [0.2, 0.3, 0.1]})
    text = analysis.describe_benchmark(stats)
    assert "2 test domains with 10 test images and 25 masks" in text and "1 of 2 domains have larger boxes (A)" in text


def test_resamples_without_a_value_are_counted_not_dropped_silently():
    """Two images, one of them with no scored mask for the method: about a quarter of the resamples draw
    only that image and have no mean; summarise, paired_difference and winners count them."""
    import pandas as pd

    from uncertsam_utils.analysis import paired_difference, summarise, winners

    rows = []
    for method, values in (("a", [0.5, float("nan")]), ("b", [0.4, 0.7])):
        for image, value in enumerate(values):
            rows.append({"dataset": "D", "method": method, "image_id": image, "mask_id": 0, "IoU": value})
    frame = pd.DataFrame(rows)
    summary = summarise(frame, ["IoU"], n_boot=400, seed=0)
    undefined = summary.set_index("method")["undefined_resamples"]
    assert undefined["b"] == 0 and 60 < undefined["a"] < 140  # P(only image 1 drawn twice) = 1/4
    delta = paired_difference(frame, "a", "b", "IoU", n_boot=400, seed=0)
    assert delta.iloc[0]["undefined_resamples"] > 0
    table = winners(frame, "IoU", n_boot=400, seed=0)
    assert table.iloc[0]["undefined_resamples"] > 0 and 0 <= table.iloc[0]["p_best"] <= 1


def test_laplace_claims_give_every_recipe_a_row():
    rng = np.random.default_rng(11)
    rows = []
    for dataset in ("A", "B"):
        for image in range(15):
            for mask in range(2):
                base = 0.3 + 0.1 * rng.random()
                for method, shift in (("baseline", 0.0), ("laplace-untempered", 0.001), ("laplace", 0.15),
                                      ("baseline-ts", 0.1)):
                    rows.append({"dataset": dataset, "method": method, "image_id": image, "mask_id": mask,
                                 "pearson": base + shift + rng.normal(0, 0.002)})
    results = pd.DataFrame(rows)
    images = np.repeat(np.arange(20), 3)
    nll = {"laplace": 0.010 + 0.001 * rng.random(60), "laplace-paper": 0.0115 + 0.001 * rng.random(60)}
    heldout = analysis.heldout_results(images, nll)
    assert list(heldout.columns) == ["dataset", "method", "image_id", "mask_id", "nll"] and len(heldout) == 120
    claims = {c.id: c for c in analysis.laplace_claims(results, heldout, n_boot=300)}
    assert set(claims) == {"ours-laplace-tempered-beats-baseline", "ours-laplace-untempered-collapses",
                           "ours-laplace-tempered-beats-temperature-scaling",
                           "ours-laplace-paper-recipe-fits-heldout-worse"}
    assert {c.verdict for c in claims.values()} == {"holds"} and {c.notebook for c in claims.values()} == {"04"}
    paper = claims["ours-laplace-paper-recipe-fits-heldout-worse"]
    direct = nll["laplace-paper"].mean() - nll["laplace"].mean()  # one dataset: the mask mean difference
    assert f"{direct:+.5f}" in paper.evidence and "20 images, 60 masks, 1 datasets" in paper.rests_on
    # a collapse that is not: the untempered posterior 0.05 above the baseline is outside ±0.01
    moved = results.assign(pearson=np.where(results.method == "laplace-untempered", results.pearson + 0.05,
                                            results.pearson))
    verdicts = {c.id: c.verdict for c in analysis.laplace_claims(moved, heldout.iloc[:0], n_boot=300)}
    assert verdicts["ours-laplace-untempered-collapses"] == "does not hold"
    assert "ours-laplace-paper-recipe-fits-heldout-worse" not in verdicts
    with pytest.raises(ValueError, match="one held-out NLL per mask"):
        analysis.heldout_results(images, {"laplace": [0.1, 0.2]})


def test_close_pearson_pairs_against_a_loop_over_pairs():
    """Every pair of close Pearson ρ on a dataset is listed once, with its Spearman gap, as a plain
    double loop finds them (m6 sits 0.01 from the methods at 0.5: at the tolerance, not close)."""
    from uncertsam_utils.analysis import close_pearson_pairs, describe_close_pairs

    rng = np.random.default_rng(3)
    rows = []
    for dataset in ("A", "B"):
        for method in ("m1", "m2", "m3", "m4", "m5"):
            rows.append({"dataset": dataset, "method": method, "metric": "pearson",
                         "mean": round(float(rng.choice([0.5, 0.505, 0.52, 0.5099])), 4)})
            rows.append({"dataset": dataset, "method": method, "metric": "spearman", "mean": float(rng.random())})
    rows.append({"dataset": "B", "method": "m6", "metric": "pearson", "mean": 0.51})  # 0.01 from 0.5: not close
    rows.append({"dataset": "B", "method": "m6", "metric": "spearman", "mean": 0.5})
    summary = pd.DataFrame(rows)
    pairs = close_pearson_pairs(summary, tolerance=0.01, agreement=0.05)
    value = {(r["dataset"], r["method"], r["metric"]): r["mean"] for r in rows}
    expected = []
    for dataset in ("A", "B"):
        methods = sorted({r["method"] for r in rows if r["dataset"] == dataset})
        for a, b in itertools.combinations(methods, 2):
            if abs(value[dataset, a, "pearson"] - value[dataset, b, "pearson"]) < 0.01:
                gap = abs(value[dataset, a, "spearman"] - value[dataset, b, "spearman"])
                expected.append((dataset, a, b, gap, gap < 0.05))
    got = [(r.dataset, r.method_a, r.method_b, r.spearman_gap, r.agrees) for r in pairs.itertuples()]
    assert [g[:3] for g in got] == [e[:3] for e in expected] and expected
    assert np.allclose([g[3] for g in got], [e[3] for e in expected])
    assert [g[4] for g in got] == [e[4] for e in expected]
    text = describe_close_pairs(pairs)
    assert f": {len(expected)};" in text and f"on {sum(e[4] for e in expected)}." in text
    assert describe_close_pairs(pairs.iloc[:0]).startswith("No two methods")
