"""Means with t-intervals, t-tests, equivalence tests, Holm's correction and power, across seeds.

Every number a report shows about accuracy goes through here, so the noise rules live in one
place:
- a t-interval needs at least two seeds;
- a test pairs runs by seed only when both sides ran exactly the same seeds (otherwise Welch);
- the seed-to-seed standard deviation is taken as at least ``floor``, the metric's resolution
  (one validation image for an accuracy): seeds that tie, or differ by the same number of
  images, are not infinitely precise, so no interval has zero width and no p is exactly 0.
Distributions come from scipy, power from statsmodels (imported when a power is asked for: it
brings pandas, which a racing searcher does not need); Holm's correction is checked against
statsmodels'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

Alternative = Literal["two-sided", "greater", "less"]
MAX_SEEDS_REPORTED = 1000  # "more than this many seeds" is as good as "never"


@dataclass(frozen=True)
class MeanCI:
    """A mean (or a difference of means) with a two-sided t-interval.

    ``std_error`` is the standard error the interval uses (with the spread floored);
    ``low``/``high`` are clipped to ``bounds`` (accuracies cannot leave [0, 1]).
    ``half_width`` is NaN when there are fewer than 2 seeds.
    """

    n: int
    mean: float
    std_error: float
    half_width: float
    level: float = 0.95
    bounds: tuple[float, float] = (-math.inf, math.inf)

    @property
    def low(self) -> float:
        return max(self.mean - self.half_width, self.bounds[0])

    @property
    def high(self) -> float:
        return min(self.mean + self.half_width, self.bounds[1])

    @property
    def has_ci(self) -> bool:
        return self.n >= 2 and math.isfinite(self.half_width)

    def describe(self, scale: float = 100.0, unit: str = "%", digits: int = 2) -> str:
        """Plain words, e.g. ``92.00% [87.03, 96.97] (95% CI, 3 seeds)``."""
        if self.n == 0:
            return "no finished run"
        mean = f"{self.mean * scale:.{digits}f}{unit}"
        if not self.has_ci:
            return f"{mean} (1 seed: CI not available)"
        return (
            f"{mean} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}] "
            f"({self.level:.0%} CI, {self.n} seeds)"
        )


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    return arr[np.isfinite(arr)]


def floored_sd(values: np.ndarray, floor: float) -> float:
    """Sample standard deviation (ddof=1), at least ``floor``."""
    return max(float(np.std(values, ddof=1)), floor)


def mean_ci(
    values: Sequence[float],
    level: float = 0.95,
    floor: float = 0.0,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> MeanCI:
    """Mean ± t_{(1+level)/2, n-1} · max(sd, floor)/√n; NaNs are ignored."""
    arr = _finite(values)
    n = int(arr.size)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, level, bounds)
    mean = float(arr.mean())
    if n == 1:
        return MeanCI(1, mean, math.nan, math.nan, level, bounds)
    se = floored_sd(arr, floor) / math.sqrt(n)
    return MeanCI(n, mean, se, float(sps.t.ppf((1 + level) / 2, n - 1)) * se, level, bounds)


@dataclass(frozen=True)
class TestResult:
    """One test of mean(a) against mean(b); ``diff`` = mean(a) - mean(b).

    ``std_error`` and ``dof`` are those of the difference, ``sd_diff`` the seed-to-seed
    standard deviation of a difference (what a power calculation needs).
    """

    test: str  # "paired t", "Welch t", "TOST paired t", "TOST Welch t" or "n/a"
    p_value: float
    statistic: float
    diff: float
    n_a: int
    n_b: int
    alternative: str
    reason: str = ""
    std_error: float = math.nan
    dof: float = math.nan
    sd_diff: float = math.nan

    @property
    def available(self) -> bool:
        return self.test != "n/a"

    def significant(self, alpha: float = 0.05) -> bool:
        return self.available and self.p_value < alpha

    def describe(self) -> str:
        if not self.available:
            return f"no test ({self.reason})"
        n = f"{self.n_a} pairs" if "paired" in self.test else f"n={self.n_a} vs {self.n_b}"
        return f"{self.test}, {n}, p={format_p(self.p_value)}"


def format_p(p: float, alpha: float | None = None) -> str:
    """``0.012``, ``<0.001``; with ``alpha``, a p that rounds to it gets a fourth decimal
    (``0.0498``), so that "p=0.050 < 0.05" is never printed."""
    if not math.isfinite(p):
        return "n/a"
    if p < 0.001:
        return "<0.001"
    if alpha is not None and round(p, 3) == round(alpha, 3) and p != alpha:
        return f"{p:.4f}"
    return f"{p:.3f}"


def _seeds_pair_up(seeds_a: Sequence[object] | None, seeds_b: Sequence[object] | None) -> bool:
    # Pairing is only valid when each seed appears once per side and both sides ran the same
    # seeds; a missing seed (failed trial) falls back to Welch rather than dropping data.
    if seeds_a is None or seeds_b is None:
        return False
    a, b = [str(s) for s in seeds_a], [str(s) for s in seeds_b]
    if any(s in ("None", "nan", "") for s in a + b):
        return False
    return len(set(a)) == len(a) and len(set(b)) == len(b) and set(a) == set(b)


@dataclass(frozen=True)
class Difference:
    """The difference of two means with its standard error and degrees of freedom."""

    kind: str  # "paired t" | "Welch t"
    diff: float
    std_error: float
    dof: float
    sd_diff: float
    n_a: int
    n_b: int


def _clean(values: Sequence[float], seeds: Sequence[object] | None) -> tuple[np.ndarray, list]:
    vals = [math.nan if v is None else float(v) for v in values]
    keep = [i for i, v in enumerate(vals) if math.isfinite(v)]
    seeds_kept = [list(seeds)[i] for i in keep] if seeds is not None else None
    return np.array([vals[i] for i in keep]), seeds_kept


def difference(
    a: Sequence[float],
    b: Sequence[float],
    seeds_a: Sequence[object] | None = None,
    seeds_b: Sequence[object] | None = None,
    floor: float = 0.0,
) -> Difference | str:
    """mean(a) - mean(b), paired or Welch as :func:`compare` says, or the reason there is
    none."""
    va, sa = _clean(a, seeds_a)
    vb, sb = _clean(b, seeds_b)
    if va.size < 2 or vb.size < 2:
        return "needs at least 2 seeds on each side"
    diff = float(va.mean() - vb.mean())
    if _seeds_pair_up(sa, sb):
        order_b = {str(s): i for i, s in enumerate(sb)}
        d = va - np.array([vb[order_b[str(s)]] for s in sa])
        sd = floored_sd(d, floor)
        if sd == 0:
            return "no spread between seeds and no resolution given"
        return Difference(
            "paired t", diff, sd / math.sqrt(d.size), d.size - 1, sd, va.size, vb.size
        )
    var_a = floored_sd(va, floor) ** 2 / va.size
    var_b = floored_sd(vb, floor) ** 2 / vb.size
    if var_a + var_b == 0:
        return "no spread between seeds and no resolution given"
    dof = (var_a + var_b) ** 2 / (var_a**2 / (va.size - 1) + var_b**2 / (vb.size - 1))
    sd_diff = math.sqrt(floored_sd(va, floor) ** 2 + floored_sd(vb, floor) ** 2)
    return Difference("Welch t", diff, math.sqrt(var_a + var_b), dof, sd_diff, va.size, vb.size)


def _p(t: float, dof: float, alternative: Alternative) -> float:
    if alternative == "greater":
        return float(sps.t.sf(t, dof))
    if alternative == "less":
        return float(sps.t.cdf(t, dof))
    return float(2 * sps.t.sf(abs(t), dof))


def compare(
    a: Sequence[float],
    b: Sequence[float],
    seeds_a: Sequence[object] | None = None,
    seeds_b: Sequence[object] | None = None,
    alternative: Alternative = "two-sided",
    floor: float = 0.0,
) -> TestResult:
    """t-test of mean(a) against mean(b) across seeds.

    Paired on runs matched by seed when both sides ran exactly the same seeds, each once, at
    least two; otherwise Welch's unequal-variance test; otherwise no test. The spread (of the
    differences, or of each side) is at least ``floor``. ``alternative="greater"`` tests
    H1: mean(a) > mean(b).
    """
    d = difference(a, b, seeds_a, seeds_b, floor)
    if isinstance(d, str):
        return untested(a, b, alternative, d)
    return t_test(d, alternative)


def untested(a: Sequence[float], b: Sequence[float], alternative: str, reason: str) -> TestResult:
    """The "n/a" result for two sides that cannot be tested (``reason`` says why)."""
    va, vb = _finite(a), _finite(b)
    diff = float(va.mean() - vb.mean()) if va.size and vb.size else math.nan
    return TestResult("n/a", math.nan, math.nan, diff, va.size, vb.size, alternative, reason)


def t_test(d: Difference, alternative: Alternative = "two-sided") -> TestResult:
    """The t-test of a :class:`Difference` (H1 of ``alternative`` on mean(a) - mean(b))."""
    t = d.diff / d.std_error
    return TestResult(
        d.kind,
        _p(t, d.dof, alternative),
        t,
        d.diff,
        d.n_a,
        d.n_b,
        alternative,
        std_error=d.std_error,
        dof=d.dof,
        sd_diff=d.sd_diff,
    )


def equivalence(
    a: Sequence[float],
    b: Sequence[float],
    margin: float,
    seeds_a: Sequence[object] | None = None,
    seeds_b: Sequence[object] | None = None,
    floor: float = 0.0,
) -> TestResult:
    """TOST: two one-sided t-tests of H0: |mean(a) - mean(b)| >= margin.

    p is the larger of the two one-sided p-values (intersection-union: no correction between
    the two). Same pairing and floor as :func:`compare`.
    """
    d = difference(a, b, seeds_a, seeds_b, floor)
    if isinstance(d, str):
        return untested(a, b, "equivalence", d)
    return tost(d, margin)


def tost(d: Difference, margin: float) -> TestResult:
    """TOST of a :class:`Difference` within ±margin (see :func:`equivalence`)."""
    t_low = (d.diff + margin) / d.std_error  # H1: diff > -margin
    t_high = (d.diff - margin) / d.std_error  # H1: diff < +margin
    p = max(_p(t_low, d.dof, "greater"), _p(t_high, d.dof, "less"))
    return TestResult(
        f"TOST {d.kind}",
        p,
        min(t_low, -t_high),
        d.diff,
        d.n_a,
        d.n_b,
        "equivalence",
        std_error=d.std_error,
        dof=d.dof,
        sd_diff=d.sd_diff,
    )


def diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    seeds_a: Sequence[object] | None = None,
    seeds_b: Sequence[object] | None = None,
    level: float = 0.95,
    floor: float = 0.0,
) -> MeanCI:
    """Interval for mean(a) - mean(b), with the pairing and floor of :func:`compare`.

    ``n`` is the number of pairs (paired) or min(n_a, n_b); the half-width is NaN when no test
    is possible (fewer than 2 runs on a side).
    """
    d = difference(a, b, seeds_a, seeds_b, floor)
    if isinstance(d, str):
        va, vb = _finite(a), _finite(b)
        diff = float(va.mean() - vb.mean()) if va.size and vb.size else math.nan
        return MeanCI(min(va.size, vb.size), diff, math.nan, math.nan, level)
    half = float(sps.t.ppf((1 + level) / 2, d.dof)) * d.std_error
    return MeanCI(min(d.n_a, d.n_b), d.diff, d.std_error, half, level)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values; NaN (no test) stays NaN and is not counted in the family.

    The same numbers as statsmodels' ``multipletests(method="holm")`` (tested), written out
    because that function runs a full garbage collection on every call (0.1 s), which the
    simulations and the racing searcher would pay thousands of times.
    """
    return holm_rows(np.asarray(p_values, dtype=float)).tolist()


def holm_rows(p_values: np.ndarray) -> np.ndarray:
    """:func:`holm` along the last axis of an array: each row is one family (NaN left out)."""
    p = np.asarray(p_values, dtype=float)
    finite = np.isfinite(p)
    family = finite.sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(finite, p, np.inf), axis=-1, kind="stable")
    ranked = np.take_along_axis(np.where(finite, p, 0.0), order, axis=-1)
    steps = ranked * (family - np.arange(p.shape[-1]))  # m, m-1, ..., 1; the NaNs sort last
    adjusted = np.minimum(np.maximum.accumulate(steps, axis=-1), 1.0)
    out = np.empty_like(p)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.where(finite, out, np.nan)


def power(effect: float, sd_diff: float, n: int, alpha: float) -> float:
    """Probability that a one-sided t-test at ``alpha`` on n pairs (sd of a difference
    ``sd_diff``) detects a true difference ``effect``."""
    if n < 2 or not sd_diff > 0 or not math.isfinite(effect):
        return math.nan
    from statsmodels.stats.power import TTestPower  # statsmodels imports pandas: only here

    return float(
        TTestPower().power(
            effect_size=abs(effect) / sd_diff, nobs=n, alpha=alpha, alternative="larger"
        )
    )


def seeds_needed(effect: float, sd_diff: float, alpha: float, target: float = 0.8) -> int | None:
    """Seeds per configuration for a one-sided t-test at ``alpha`` to detect ``effect`` with
    probability ``target``; None when more than MAX_SEEDS_REPORTED would be needed."""
    if not sd_diff > 0 or not abs(effect) > 0:
        return None
    size = abs(effect) / sd_diff
    if power(size * sd_diff, sd_diff, MAX_SEEDS_REPORTED, alpha) < target:
        return None
    from statsmodels.stats.power import TTestPower

    n = TTestPower().solve_power(effect_size=size, alpha=alpha, power=target, alternative="larger")
    return max(2, math.ceil(float(n)))


def paired_matrices(
    values: np.ndarray, floor: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every paired difference between configurations that ran the same seeds, at once.

    ``values`` is (..., k, n): k configurations, n seeds in the same order for all. Returns
    (diff, std_error, dof), each (..., k, k), where [..., j, i] is mean_j - mean_i with the
    paired t's standard error (spread floored at ``floor``) — what :func:`difference` gives
    for each pair, for many sweeps in one call (the simulations). The diagonal is NaN.
    """
    x = np.asarray(values, dtype=float)
    n = x.shape[-1]
    d = x[..., :, None, :] - x[..., None, :, :]
    diff = d.mean(axis=-1)
    sd = np.maximum(d.std(axis=-1, ddof=1), floor) if n >= 2 else np.full(diff.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(sd > 0, sd / math.sqrt(n), np.nan)
    eye = np.eye(x.shape[-2], dtype=bool)
    se = np.where(eye, np.nan, se)
    dof = np.where(np.isfinite(se), float(n - 1), np.nan)
    return np.where(eye, np.nan, diff), se, dof
