"""Configurations that ran different seeds (a race stops them at different counts): Welch's test
on every seed, which the report and the race use (reports.stats.difference), against pairing on
the seeds both ran, by simulation.

Race-like data: one configuration with seeds 0-2, one with seeds 0-5; each value is the
configuration's mean plus a seed effect shared by both (the same seed) plus its own noise,
rho = the shared share of the variance. Pairing on the common seeds removes the shared effect
but drops the extra seeds; Welch keeps them but counts the shared effect as noise. Both hold
alpha (Welch conservatively when rho > 0). Pairing wins on power only when rho is above about
0.5; in a real sweep rho is near 0 (the quickstart with every seed on every configuration, 5
configurations x 6 seeds on digits: two-way ANOVA seed effect F = 0.81, p = 0.56, estimated
rho 0): different networks draw different initial weights from the same seed, and a shared
data order alone leaves no common seed effect. So the rule stays Welch for unequal seed sets.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from reports.stats import compare

ALPHA = 0.05
SIMS = 2000
LIMIT = sps.binom.ppf(0.999, SIMS, ALPHA) / SIMS  # Monte-Carlo tolerance, as in test_reports_mcb
FEW, MANY = 3, 6


def draw(rng: np.random.Generator, rho: float, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """(SIMS, 3) values of a configuration that stopped early and (SIMS, 6) of one ``gap``
    (in sd units) better that ran on, with a shared seed effect of variance share ``rho``."""
    shared = rng.normal(0, math.sqrt(rho), (SIMS, MANY))
    few = shared[:, :FEW] + rng.normal(0, math.sqrt(1 - rho), (SIMS, FEW))
    many = shared + rng.normal(0, math.sqrt(1 - rho), (SIMS, MANY)) + gap
    return few, many


def welch_rate(few: np.ndarray, many: np.ndarray) -> float:
    """How often the report's test (seed sets differ: Welch) finds `many` > `few`."""
    seeds_few, seeds_many = list(range(FEW)), list(range(MANY))
    found = [
        compare(b, a, seeds_many, seeds_few, "greater").p_value < ALPHA
        for a, b in zip(few, many, strict=True)
    ]
    return float(np.mean(found))


def common_seed_rate(few: np.ndarray, many: np.ndarray) -> float:
    """The alternative: a paired t on the seeds both ran."""
    d = many[:, :FEW] - few
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(FEW))
    return float(np.mean(sps.t.sf(t, FEW - 1) < ALPHA))


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_welch_on_unequal_seed_sets_holds_alpha_with_a_shared_seed_effect(rho):
    rng = np.random.default_rng(int(10 * rho))
    few, many = draw(rng, rho, gap=0.0)
    assert welch_rate(few, many) <= LIMIT
    assert common_seed_rate(few, many) <= LIMIT


def test_at_the_seed_correlation_of_a_real_sweep_welch_finds_more():
    rng = np.random.default_rng(7)
    few, many = draw(rng, rho=0.0, gap=1.0)
    welch, common = welch_rate(few, many), common_seed_rate(few, many)
    assert welch > common + 0.05  # about 0.32 against 0.21
