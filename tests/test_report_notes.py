"""reports.notes: "trained at chance" by an exact binomial test (its error rates simulated),
and the identity-path note read back from a trial's MLflow params."""

import math

import numpy as np
import pytest

from reports.notes import arch_from_params, chance_test, row_note
from search_space import ArchConfig

DIGITS_VAL = 359  # 20% of the 1797 digits


@pytest.mark.parametrize("rows", [1, 6])
def test_a_network_at_chance_is_called_at_chance_at_the_promised_rate(rows):
    """Every row guesses (accuracy ~ Binomial(n, 1/10) / n): the chance that any of `rows`
    rows is called above chance stays at most alpha (Bonferroni)."""
    rng = np.random.default_rng(0)
    draws = rng.binomial(DIGITS_VAL, 0.1, size=(2000, rows)) / DIGITS_VAL
    wrong = np.mean(
        [any(not chance_test(a, DIGITS_VAL, 10, rows).at_chance for a in trial) for trial in draws]
    )
    assert wrong <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000)


def test_a_network_that_learned_a_little_is_not_called_at_chance():
    """True accuracy 20% (twice chance) on 359 images: found above chance nearly always."""
    rng = np.random.default_rng(1)
    draws = rng.binomial(DIGITS_VAL, 0.2, size=1000) / DIGITS_VAL
    missed = np.mean([chance_test(a, DIGITS_VAL, 10, rows=6).at_chance for a in draws])
    assert missed < 0.01


def test_the_integration_tables_rows_as_it_printed_them():
    # POST and Identity at 88.6% error, after_3x3 at 18.4%, on digits
    test = chance_test(1 - 0.886, DIGITS_VAL, 10, rows=6)
    assert test.at_chance and test.upper > test.chance
    assert "Bonferroni over 6 rows" in test.describe(6) and "p = " in test.describe(6)
    assert not chance_test(1 - 0.184, DIGITS_VAL, 10, rows=6).at_chance


@pytest.mark.parametrize(
    "data",
    [
        {"backbone": "cifar_resnet164", "se": {"placement": "post", "gate_init": 0.9975}},
        {
            "backbone": "cifar_preact_resnet110",
            "zero_init_residual": True,
            "se": {"reduction": [4, 8, 16], "stages": [1, 0, 1], "squeeze": "none"},
        },
        {"backbone": "mobilenet_v2", "attention": "none"},
        {"backbone": "resnet50", "attention": "eca", "eca": {"k": 5}, "groups": 2},
    ],
)
def test_a_trials_params_read_back_to_its_config(data):
    arch = ArchConfig.parse(data)
    assert arch_from_params(arch.flat_params()) == arch
    # the trials frame holds the word "none" and empty params as NaN
    frame = {k: (math.nan if v in ("none", "") else v) for k, v in arch.flat_params().items()}
    assert arch_from_params(frame) == arch


def test_the_note_beside_a_row_at_chance_says_why_when_search_space_knows():
    post = ArchConfig.parse(
        {
            "backbone": "cifar_resnet164",
            "num_classes": 10,
            "input_size": 8,
            "in_channels": 1,
            "se": {"placement": "post"},
        }
    )
    note = row_note(post.flat_params(), 0.114, DIGITS_VAL, 10, rows=6)
    assert note.startswith("trained at chance") and "0.5^54" in note
    assert "arch.se.gate_init: 0.9975" in note
    standard = post.model_copy(update={"se": post.se.model_copy(update={"placement": "standard"})})
    plain_note = row_note(standard.flat_params(), 0.114, DIGITS_VAL, 10, rows=6)
    assert plain_note.startswith("trained at chance") and "gate" not in plain_note
    assert row_note(post.flat_params(), 0.816, DIGITS_VAL, 10, rows=6) is None
    assert row_note({"arch.backbone": "nonsense"}, 0.1, DIGITS_VAL, 10, rows=1).startswith(
        "trained at chance"
    )
