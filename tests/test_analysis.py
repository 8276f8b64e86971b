"""Aggregation helpers of analysis.py not covered by the evaluation tests."""

import numpy as np
import pandas as pd
import pytest


def test_paired_difference_matches_a_direct_paired_bootstrap():
    from uncertsam_utils.analysis import bootstrap_weights, describe_difference, paired_difference

    rng = np.random.default_rng(5)
    rows = []
    for image in range(30):
        for mask in range(1 + image % 3):
            base = rng.random()
            rows.append({"dataset": "D", "method": "a", "image_id": image, "mask_id": mask, "IoU": base + 0.05})
            rows.append({"dataset": "D", "method": "b", "image_id": image, "mask_id": mask, "IoU": base + rng.normal(0, 0.01)})
    frame = pd.DataFrame(rows)
    table = paired_difference(frame, "a", "b", n_boot=2000, seed=3)
    a, b = frame[frame.method == "a"], frame[frame.method == "b"]
    assert table.loc[0, "difference"] == pytest.approx(a.IoU.mean() - b.IoU.mean())
    # the same resamples recomputed mask by mask: each mask weighted by its image's multiplicity
    weights = bootstrap_weights(np.arange(30), 2000, 3, "paired|D")
    per_mask = np.repeat(weights, [1 + i % 3 for i in range(30)], axis=1)
    direct = per_mask @ a.IoU.to_numpy() / per_mask.sum(1) - per_mask @ b.IoU.to_numpy() / per_mask.sum(1)
    lo, hi = np.quantile(direct, [0.025, 0.975])
    assert table.loc[0, "lo"] == pytest.approx(lo, abs=1e-12) and table.loc[0, "hi"] == pytest.approx(hi, abs=1e-12)
    assert table.loc[0, "lo"] > 0.04 and table.loc[0, "hi"] < 0.06  # the paired interval is tight around 0.05
    assert table.loc[0, "p_two_sided"] == 0.0
    assert "a is better (95 % interval above 0) on 1 of 1 datasets (D)" in describe_difference(table)
    swapped = paired_difference(frame, "b", "a", n_boot=2000, seed=3)
    assert swapped.loc[0, "difference"] == pytest.approx(-table.loc[0, "difference"])
    with pytest.raises(ValueError, match="same masks"):
        paired_difference(frame.drop(index=0), "a", "b")
