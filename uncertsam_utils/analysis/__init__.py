"""Analysis of the evaluation CSVs, one module per job:

* ``aggregation``: means over masks with bootstrap intervals over images (``summarise``), the mean over
  datasets with its interval (``dataset_mean_summary``), the masks every method scored (``common_masks``);
* ``comparisons``: Δ tables (paired bootstrap, Holm across datasets, the mean over datasets):
  ``paired_difference``, ``delta_vs_baseline``, ``difference_between_splits``, ``delta_from_intervals``;
* ``winners``: the best method per dataset on the common masks;
* ``rank_agreement``: pairs of methods of close Pearson ρ and their Spearman gap (``close_pearson_pairs``);
* ``tables``: wide / numeric tables, Markdown, ``write_table``, Table 1's layout, Δ tables as text,
  the scored / skipped counts every table states (``counts_note``);
* ``claims``: scorecard rows decided by stated rules (``delta_claim``, ``bound_claim``, ``rank_claim``,
  ``joint_claim``); ``paper_claims``: the rows of notebooks 04 (``laplace_claims``),
  06 (``uncertainty_claims``) and 07 (``refinement_claims``; seeded rows: ``deltas_from_crossed``);
* ``sentences``: the generated sentences of the notebooks' "What this shows" cells;
* ``examples``: which objects a figure shows (worst, median, best by Δ);
* ``notebook_text``: the "What this shows" sentences of the notebooks without an evaluation;
* ``seeds``: the spread over training seeds and the crossed images x seeds comparison (notebook 07);
* ``laplace_text``: notebook 04's sentences on tempering (imported by module, not re-exported).

Every public name is importable from here (``uncertsam_utils.analysis`` was one module in 0.2).
"""

from __future__ import annotations

from .aggregation import (
    ACCURACY_METRICS,
    HIGHER_IS_BETTER,
    LABELS,
    LOWER_IS_BETTER,
    UNCERTAINTY_METRICS,
    bootstrap_weights,
    common_masks,
    dataset_mean_summary,
    direction,
    image_means,
    label,
    summarise,
)
from .claims import bound_claim, delta_claim, delta_verdict, joint_claim, rank_claim, rank_evidence
from .comparisons import (
    ALPHA,
    combination_gains,
    delta_from_intervals,
    delta_vs_baseline,
    difference_between_splits,
    from_paired_table,
    holm,
    paired_difference,
)
from .rank_agreement import close_pearson_pairs, describe_close_pairs
from .examples import examples_caption, object_deltas, select_examples
from .notebook_text import (
    describe_benchmark,
    describe_core,
    describe_costs,
    describe_laplace_recipes,
    describe_spread,
    describe_varnet_training,
)
from .paper_claims import (deltas_from_crossed, deltas_from_results, deltas_from_tables, heldout_results,
                           laplace_claims, refinement_claims, uncertainty_claims)
from .sentences import (
    MIN_IMAGES_FOR_INTERVAL,
    describe_combinations,
    describe_delta,
    describe_difference,
    describe_softening,
    describe_winners,
    interval,
    paper_claim,
)
from .tables import counts_note, delta_display, numeric_table, per_dataset_table, to_markdown, wide_table, write_table
from .winners import winners

__all__ = [
    "ACCURACY_METRICS", "ALPHA", "HIGHER_IS_BETTER", "LABELS", "LOWER_IS_BETTER", "MIN_IMAGES_FOR_INTERVAL",
    "UNCERTAINTY_METRICS", "bootstrap_weights", "bound_claim", "combination_gains", "common_masks", "counts_note",
    "close_pearson_pairs", "dataset_mean_summary", "delta_claim", "delta_display", "delta_from_intervals", "delta_verdict",
    "delta_vs_baseline", "deltas_from_crossed", "deltas_from_results", "deltas_from_tables", "describe_benchmark",
    "describe_close_pairs", "describe_combinations", "describe_core", "describe_costs", "describe_delta", "describe_difference",
    "describe_laplace_recipes", "describe_softening", "describe_spread", "describe_varnet_training",
    "describe_winners", "difference_between_splits", "direction", "examples_caption", "from_paired_table", "holm",
    "image_means", "interval", "joint_claim", "label", "numeric_table", "object_deltas", "paired_difference",
    "paper_claim", "per_dataset_table", "rank_claim", "rank_evidence", "refinement_claims", "heldout_results",
    "laplace_claims", "select_examples", "summarise", "to_markdown", "uncertainty_claims", "wide_table", "winners",
    "write_table"
]
