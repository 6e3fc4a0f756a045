"""The metric names reports read (docs/mlflow-schema.md), and which split each one measures.

Every choice a report makes uses a validation metric; a test-split metric is shown beside the
chosen configuration only, so the test split never takes part in a decision.
"""

from __future__ import annotations

from fractions import Fraction
from math import lcm
from typing import Any

VAL_ACC = "val_acc"  # final epoch, validation split: the default selection metric
BEST_VAL_ACC = "best_val_acc"  # best epoch, validation split
VAL_TOP5 = "val_top5"
BEST_VAL_TOP5 = "best_val_top5"
VAL_LOSS = "val_loss"
TRAIN_LOSS = "train_loss"
TEST_ACC = "test_acc"  # final epoch, test split (datasets that have one)
IMAGES_PER_S = "images_per_s"
EPOCH_TIME_S = "epoch_time_s"
EPOCHS_DONE = "epochs_done"
COSTS = ("flops", "params", "se_flops", "se_params")

# Per-epoch histories a report reads: accuracies for their best epoch, throughput for its
# median over the epochs after the first (the first carries warm-up).
HISTORY_MAX = (VAL_ACC, VAL_TOP5)
THROUGHPUT = (IMAGES_PER_S, EPOCH_TIME_S)
# Metrics a sweep may select on that the reports know how to test (fractions in [0, 1]).
SELECTABLE = (VAL_ACC, BEST_VAL_ACC, VAL_TOP5)

SPLIT = {
    VAL_ACC: "validation",
    BEST_VAL_ACC: "validation",
    VAL_TOP5: "validation",
    TEST_ACC: "test",
}
# Largest evaluation set whose accuracy resolution is inferred (ImageNet's val has 50,000).
_MAX_EVAL_IMAGES = 1_000_000
_MIN_EVAL_IMAGES = 50


def top5_of(acc_col: str) -> str:
    return BEST_VAL_TOP5 if acc_col == BEST_VAL_ACC else VAL_TOP5


def selection_metric(objectives: list[dict[str, Any]]) -> str:
    """The accuracy the sweep selects on: its first objective when that is an accuracy."""
    first = objectives[0].get("metric") if objectives and isinstance(objectives[0], dict) else None
    return first if first in SELECTABLE else VAL_ACC


def accuracy_resolution(values: Any) -> float | None:
    """One evaluation image, 1/n, for accuracies measured on the same n images; None if unknown.

    Accuracies are hits/n, so n is a multiple of every value's reduced denominator; their least
    common multiple is n itself as soon as the values are varied, and a divisor of n (a coarser,
    more cautious resolution) otherwise. Values that are no such fraction, or a denominator
    under _MIN_EVAL_IMAGES (too few distinct values to tell), give None.
    """
    denominator = 1
    for value in values:
        frac = Fraction(float(value)).limit_denominator(_MAX_EVAL_IMAGES)
        if abs(float(frac) - float(value)) > 1e-9:
            return None
        denominator = lcm(denominator, frac.denominator)
        if denominator > _MAX_EVAL_IMAGES:
            return None
    return 1.0 / denominator if denominator >= _MIN_EVAL_IMAGES else None
