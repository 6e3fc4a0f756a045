"""Comparisons with the best: which configurations are shown worse than the best, and which
are shown within ±margin of it. The report (:func:`reports.decide.choose`) and the racing
searcher decide by this one rule; it needs only numpy and scipy.

*Shown worse.* The claim "configuration i is worse than the best" is true when some
configuration is more accurate than i. Testing each configuration against the one with the
highest mean is not a test of that claim: the highest of several equal means is biased upward,
so with all configurations equal such tests claim "worse" far more often than alpha (12% of
sweeps with 5 configurations and 6 seeds at alpha 5%). Hsu's multiple comparisons with the best
(MCB) are exact for the claim "i is not the unique best", but with ties at the top, which is
the all-equal case, they claim "i is not the best" about configurations that are (tested in
tests/test_reports_mcb.py).

The rule here is a closed test of the hypotheses G_i: "configuration i is a best" (its mean is
the highest). G_i is false exactly when some j beats i, so its evidence against is the smallest
one-sided p-value p_ji of "j > i" over the k_i configurations j it can be compared with
(paired t on seeds, else Welch, the spread floored at the metric's resolution, as everywhere
in the report). Under the intersection of the G_i for i in a set S, every p_ji with i in S is
valid, so rejecting when some k_i · p_ji < alpha / |S| has level alpha (union bound over the
|S| · k_i tests, whatever their correlation). The closure of these Bonferroni tests is Holm's
procedure on p~_i = min(1, k_i · min_j p_ji) over the configurations: the chance of any false
"worse" claim is at most alpha, for any configurations, spreads and correlations — including
the shared seed effect, which the paired tests remove. The first step is as strict as
Bonferroni over all k(k-1) ordered pairs, the last as loose as a comparison with one
configuration; Holm over all k(k-1)/2 pairwise tests has the same first step and stricter
later ones, so this rule is never less powerful.

*Shown equivalent.* TOST of each configuration against the most accurate by mean within
±margin, Holm-corrected over those comparisons (as before: its rate holds in the simulations).

A configuration shown equivalent counts as equivalent even if also shown (slightly) worse;
one that is neither is open; one with no test against the best (fewer than 2 seeds) is
untested.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from .stats import (
    Difference,
    TestResult,
    difference,
    holm_rows,
    paired_matrices,
    t_test,
    tost,
    untested,
)

BEST, EQUIVALENT, WORSE, OPEN, UNTESTED = "best", "equivalent", "worse", "open", "untested"
# Verdict codes of the array form (the simulations), in the order of VERDICTS.
VERDICTS = (BEST, EQUIVALENT, WORSE, OPEN, UNTESTED)

Sample = tuple[Sequence[float], Sequence[object]]  # values and the seeds they ran
POWER_SIMS = 4000


@dataclass(frozen=True)
class Versus:
    """One configuration in the comparison with the best."""

    key: Hashable
    verdict: str
    worse: TestResult  # one-sided, H1: beaten_by > key (the smallest p over the others)
    beaten_by: Hashable | None
    comparisons: int  # k_i: the configurations it could be compared with
    p_worse_adjusted: float  # Holm over configurations of min(1, k_i * worse.p_value)
    equivalent: TestResult  # TOST against the best, within ±margin
    p_equivalent_holm: float  # Holm over the comparisons with the best


@dataclass(frozen=True)
class BestComparison:
    """The verdict on every configuration; ``rows`` holds all but the best."""

    best: Hashable
    rows: dict[Hashable, Versus]
    alpha: float
    margin: float
    family_worse: int  # configurations in the Holm family of "shown worse"
    family_equivalent: int  # comparisons with the best in the TOST family
    means: dict[Hashable, float] = field(default_factory=dict)

    def verdict(self, key: Hashable) -> str:
        return BEST if key == self.best else self.rows[key].verdict

    def open_keys(self) -> set[Hashable]:
        """Configurations neither shown equivalent nor shown worse (untested ones too)."""
        return {k for k, v in self.rows.items() if v.verdict in (OPEN, UNTESTED)}

    def still_open(self) -> set[Hashable]:
        """What a race still gives seeds to: the open ones and, while any is, the best."""
        open_ones = self.open_keys()
        return open_ones | {self.best} if open_ones else set()


def decide_matrices(
    means: np.ndarray,
    diff: np.ndarray,
    se: np.ndarray,
    dof: np.ndarray,
    alpha: float,
    margin: float,
    rank: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The rule on arrays: ``means`` (..., k); ``diff``/``se``/``dof`` (..., k, k) with
    [..., j, i] = mean_j - mean_i (NaN where there is no test); ``rank`` (k,) breaks ties for
    the best (lower first, e.g. cheaper). Returns ``best`` (...), and per configuration
    ``verdict`` (codes into VERDICTS), ``p_worse``/``beaten_by``/``comparisons``/
    ``p_worse_adjusted`` and ``p_equivalent``/``p_equivalent_holm`` (NaN for the best)."""
    k = means.shape[-1]
    rank = np.arange(k) if rank is None else np.asarray(rank)
    top = means == np.max(means, axis=-1, keepdims=True)
    best = np.argmin(np.where(top, rank, np.iinfo(np.int64).max), axis=-1)
    with np.errstate(invalid="ignore"):
        p = sps.t.sf(diff / se, dof)  # [j, i]: H1 mean_j > mean_i
    comparisons = np.isfinite(p).sum(axis=-2)
    p_min = np.nanmin(np.where(np.isfinite(p), p, np.inf), axis=-2)
    beaten_by = np.argmin(np.where(np.isfinite(p), p, np.inf), axis=-2)
    p_min = np.where(comparisons > 0, p_min, np.nan)
    adjusted = holm_rows(np.minimum(1.0, comparisons * p_min))
    to_best = np.take_along_axis(diff, best[..., None, None], axis=-2)[..., 0, :]  # best - i
    se_b = np.take_along_axis(se, best[..., None, None], axis=-2)[..., 0, :]
    dof_b = np.take_along_axis(dof, best[..., None, None], axis=-2)[..., 0, :]
    with np.errstate(invalid="ignore"):
        p_eq = np.maximum(
            sps.t.sf((margin - to_best) / se_b, dof_b), sps.t.sf((margin + to_best) / se_b, dof_b)
        )
    is_best = np.arange(k) == best[..., None]
    p_eq = np.where(is_best, np.nan, p_eq)
    eq_holm = holm_rows(p_eq)
    verdict = np.full(means.shape, VERDICTS.index(OPEN))
    verdict[~np.isfinite(p_eq)] = VERDICTS.index(UNTESTED)
    verdict[adjusted < alpha] = VERDICTS.index(WORSE)
    verdict[eq_holm < alpha] = VERDICTS.index(EQUIVALENT)
    verdict[is_best] = VERDICTS.index(BEST)
    return {
        "best": best,
        "verdict": verdict,
        "p_worse": p_min,
        "beaten_by": beaten_by,
        "comparisons": comparisons,
        "p_worse_adjusted": adjusted,
        "p_equivalent": p_eq,
        "p_equivalent_holm": eq_holm,
    }


def decide_paired(
    values: np.ndarray, alpha: float, margin: float, floor: float = 0.0, sign: float = 1.0
) -> dict[str, np.ndarray]:
    """The rule for configurations that all ran the same seeds, on (..., k, n) values: many
    sweeps in one call (what the simulations run). ``sign`` -1 for a metric to minimise."""
    x = sign * np.asarray(values, dtype=float)
    diff, se, dof = paired_matrices(x, floor)
    return decide_matrices(x.mean(axis=-1), diff, se, dof, alpha, margin)


def _differences(samples: list[Sample], floor: float) -> list[list[Difference | str]]:
    k = len(samples)
    table: list[list[Difference | str]] = [["same configuration"] * k for _ in range(k)]
    for j in range(k):
        for i in range(j + 1, k):
            d = difference(samples[j][0], samples[i][0], samples[j][1], samples[i][1], floor)
            table[j][i] = d
            table[i][j] = (
                d
                if isinstance(d, str)
                else Difference(d.kind, -d.diff, d.std_error, d.dof, d.sd_diff, d.n_b, d.n_a)
            )
    return table


def _matrices(table: list[list[Difference | str]]) -> tuple[np.ndarray, ...]:
    k = len(table)
    out = np.full((3, k, k), np.nan)
    for j in range(k):
        for i in range(k):
            d = table[j][i]
            if not isinstance(d, str):
                out[:, j, i] = (d.diff, d.std_error, d.dof)
    return out[0], out[1], out[2]


def compare_samples(
    samples: Mapping[Hashable, Sample],
    alpha: float,
    margin: float,
    floor: float = 0.0,
    sign: float = 1.0,
    preference: Sequence[Hashable] | None = None,
) -> BestComparison | None:
    """The rule on {configuration: (values, seeds)}; configurations without a value are left
    out; None when none has one. ``preference`` orders ties for the best (first wins)."""
    keys = [key for key, (values, _) in samples.items() if len(values)]
    if not keys:
        return None
    order = list(preference or []) + [k for k in keys if k not in (preference or [])]
    data = [([sign * float(v) for v in samples[k][0]], list(samples[k][1])) for k in keys]
    table = _differences(data, floor)
    diff, se, dof = _matrices(table)
    means = np.array([float(np.mean(values)) for values, _ in data])
    got = decide_matrices(
        means, diff, se, dof, alpha, margin, np.array([order.index(k) for k in keys])
    )
    best = int(got["best"])
    rows = {
        keys[i]: _versus(i, keys, data, table, got, best, margin)
        for i in range(len(keys))
        if i != best
    }
    return BestComparison(
        keys[best],
        rows,
        alpha,
        margin,
        int(np.isfinite(got["p_worse"]).sum()),
        int(np.isfinite(got["p_equivalent"]).sum()),
        {k: sign * float(m) for k, m in zip(keys, means, strict=True)},
    )


def _versus(
    i: int,
    keys: list,
    data: list[tuple[list[float], list]],
    table: list,
    got: dict[str, np.ndarray],
    best: int,
    margin: float,
) -> Versus:
    j = int(got["beaten_by"][i])
    worse = table[j][i] if got["comparisons"][i] else "needs at least 2 seeds on each side"
    to_best = table[i][best]
    return Versus(
        key=keys[i],
        verdict=VERDICTS[int(got["verdict"][i])],
        worse=(
            t_test(worse, "greater")
            if not isinstance(worse, str)
            else untested(data[j][0], data[i][0], "greater", worse)
        ),
        beaten_by=keys[j] if got["comparisons"][i] else None,
        comparisons=int(got["comparisons"][i]),
        p_worse_adjusted=float(got["p_worse_adjusted"][i]),
        equivalent=(
            tost(to_best, margin)
            if not isinstance(to_best, str)
            else untested(data[i][0], data[best][0], "equivalence", to_best)
        ),
        p_equivalent_holm=float(got["p_equivalent_holm"][i]),
    )


def compare_with_best(
    results: Mapping[Hashable, Mapping[object, float]],
    alpha: float,
    margin: float,
    floor: float = 0.0,
    sign: float = 1.0,
    preference: Sequence[Hashable] | None = None,
) -> BestComparison | None:
    """The rule on {configuration: {seed: value}} (what a racing searcher holds); ``margin``
    and ``floor`` in the metric's units, ``sign`` -1 for a metric to minimise."""
    samples = {
        key: (list(by_seed.values()), list(by_seed.keys())) for key, by_seed in results.items()
    }
    return compare_samples(samples, alpha, margin, floor, sign, preference)


def worse_power(
    effect: float,
    sd_diff: float,
    n: int,
    configurations: int,
    alpha: float,
    floor: float = 0.0,
    sims: int = POWER_SIMS,
    seed: int = 0,
) -> float:
    """The chance that one configuration ``effect`` below k - 1 equal others is shown worse by
    this rule, with n seeds each and differences of seed-to-seed sd ``sd_diff``, values on the
    ``floor`` grid (the resolution) — simulated (``sims`` sweeps, fixed ``seed``: ±0.01 at
    the default), as no closed form covers the closed test. NaN when it cannot be said."""
    k = configurations
    if n < 2 or k < 2 or not sd_diff > 0 or not math.isfinite(effect):
        return math.nan
    rng = np.random.default_rng(seed)
    # Paired tests see only differences: per-configuration noise of sd sd_diff / sqrt 2.
    x = 0.5 + rng.normal(0.0, sd_diff / math.sqrt(2), size=(sims, k, n))
    x[:, 0, :] -= abs(effect)
    if floor > 0:
        x = np.round(x / floor) * floor
    got = decide_paired(x, alpha, abs(effect), floor)
    return float(np.mean(got["p_worse_adjusted"][:, 0] < alpha))


def worse_alpha(configurations: int, alpha: float) -> float:
    """The strictest level a "worse" test meets: alpha / (k (k - 1))."""
    k = max(configurations, 2)
    return alpha / (k * (k - 1))


def equivalent_alpha(configurations: int, alpha: float) -> float:
    """The strictest level a TOST against the best meets: alpha / (k - 1)."""
    return alpha / max(configurations - 1, 1)
