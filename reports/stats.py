"""Means with 95% t-intervals and t-tests across seeds.

Every number a report shows about accuracy goes through here, so the noise rules live in one
place: a t-interval needs at least two seeds, and a test pairs runs by seed only when both sides
ran exactly the same seeds (otherwise Welch's unequal-variance test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

Alternative = Literal["two-sided", "greater", "less"]
# Differences below this are floating-point rounding (accuracies are fractions), not signal.
_ROUNDING = 1e-12


@dataclass(frozen=True)
class MeanCI:
    """Mean of n values with a two-sided t-interval; ``half_width`` is NaN when n < 2."""

    n: int
    mean: float
    sd: float
    half_width: float
    level: float = 0.95

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def has_ci(self) -> bool:
        return self.n >= 2 and math.isfinite(self.half_width)

    def describe(self, scale: float = 100.0, unit: str = "%", digits: int = 2) -> str:
        """Plain words, e.g. ``92.00% ± 4.97 (95% CI, 3 seeds)``."""
        if self.n == 0:
            return "no finished run"
        mean = f"{self.mean * scale:.{digits}f}{unit}"
        if not self.has_ci:
            return f"{mean} (1 seed: CI not available)"
        return (
            f"{mean} ± {self.half_width * scale:.{digits}f} "
            f"({self.level:.0%} CI, {self.n} seeds)"
        )


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    return arr[np.isfinite(arr)]


def mean_ci(values: Sequence[float], level: float = 0.95) -> MeanCI:
    """Mean ± t_{(1+level)/2, n-1} · sd/√n with the sample sd (ddof=1); NaNs are ignored."""
    arr = _finite(values)
    n = int(arr.size)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, level)
    mean = float(arr.mean())
    if n == 1:
        return MeanCI(1, mean, math.nan, math.nan, level)
    sd = float(arr.std(ddof=1))
    half = float(sps.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(n, mean, sd, half, level)


@dataclass(frozen=True)
class TestResult:
    """Outcome of comparing a against b; ``diff`` = mean(a) - mean(b)."""

    test: str  # "paired t", "Welch t" or "n/a"
    p_value: float
    statistic: float
    diff: float
    n_a: int
    n_b: int
    alternative: str
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.test != "n/a"

    def significant(self, alpha: float = 0.05) -> bool:
        return self.available and self.p_value < alpha

    def describe(self) -> str:
        if not self.available:
            return f"no test ({self.reason})"
        n = f"{self.n_a} pairs" if self.test == "paired t" else f"n={self.n_a} vs {self.n_b}"
        return f"{self.test}, {n}, p={format_p(self.p_value)}"


def format_p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _seeds_pair_up(seeds_a: Sequence[object] | None, seeds_b: Sequence[object] | None) -> bool:
    # Pairing is only valid when each seed appears once per side and both sides ran the same
    # seeds; a missing seed (failed trial) falls back to Welch rather than dropping data.
    if seeds_a is None or seeds_b is None:
        return False
    a, b = [str(s) for s in seeds_a], [str(s) for s in seeds_b]
    if any(s in ("None", "nan", "") for s in a + b):
        return False
    return len(set(a)) == len(a) and len(set(b)) == len(b) and set(a) == set(b)


def _no_spread(values: np.ndarray) -> bool:
    # Differences such as 0.93 - 0.90 and 0.94 - 0.91 are equal on paper but not in floating
    # point; a spread that small is rounding, not noise, and scipy would turn it into an
    # arbitrary huge t (with a precision-loss warning) instead of the exact answer below.
    if values.size == 0:
        return True
    scale = max(float(np.max(np.abs(values))), 1.0)
    return float(np.max(values) - np.min(values)) <= _ROUNDING * scale


def _degenerate(diff: float, alternative: Alternative) -> float:
    # Zero variance: scipy returns NaN. No spread means the observed difference is exact:
    # a zero difference is no evidence (p=1); a non-zero one is conclusive in its direction.
    if abs(diff) <= _ROUNDING:
        return 1.0
    if alternative == "two-sided":
        return 0.0
    return 0.0 if (diff > 0) == (alternative == "greater") else 1.0


def _inf_stat(diff: float) -> float:
    return 0.0 if abs(diff) <= _ROUNDING else math.copysign(math.inf, diff)


def compare(
    a: Sequence[float],
    b: Sequence[float],
    seeds_a: Sequence[object] | None = None,
    seeds_b: Sequence[object] | None = None,
    alternative: Alternative = "two-sided",
) -> TestResult:
    """t-test of mean(a) vs mean(b) across seeds.

    Paired t-test (scipy ``ttest_rel``) on runs matched by seed when both sides ran exactly the
    same set of seeds, each once, and there are at least two; otherwise Welch's t-test
    (``ttest_ind(equal_var=False)``) when each side has at least two runs; otherwise no test.
    ``alternative="greater"`` tests H1: mean(a) > mean(b).
    """
    a_list, b_list = list(a), list(b)
    keep_a = [i for i, v in enumerate(a_list) if v is not None and math.isfinite(float(v))]
    keep_b = [i for i, v in enumerate(b_list) if v is not None and math.isfinite(float(v))]
    va = np.array([float(a_list[i]) for i in keep_a])
    vb = np.array([float(b_list[i]) for i in keep_b])
    sa = [list(seeds_a)[i] for i in keep_a] if seeds_a is not None else None
    sb = [list(seeds_b)[i] for i in keep_b] if seeds_b is not None else None
    diff = float(va.mean() - vb.mean()) if va.size and vb.size else math.nan
    if va.size < 2 or vb.size < 2:
        reason = "needs at least 2 seeds on each side"
        return TestResult("n/a", math.nan, math.nan, diff, va.size, vb.size, alternative, reason)

    if _seeds_pair_up(sa, sb):
        order_b = {str(s): i for i, s in enumerate(sb)}
        vb_paired = np.array([vb[order_b[str(s)]] for s in sa])
        d = va - vb_paired
        if _no_spread(d):
            p, stat = _degenerate(float(d.mean()), alternative), _inf_stat(float(d.mean()))
        else:
            res = sps.ttest_rel(va, vb_paired, alternative=alternative)
            p, stat = float(res.pvalue), float(res.statistic)
        return TestResult("paired t", p, stat, diff, va.size, vb.size, alternative)

    if _no_spread(va) and _no_spread(vb):
        p, stat = _degenerate(diff, alternative), _inf_stat(diff)
    else:
        res = sps.ttest_ind(va, vb, equal_var=False, alternative=alternative)
        p, stat = float(res.pvalue), float(res.statistic)
    return TestResult("Welch t", p, stat, diff, va.size, vb.size, alternative)


def diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    seeds_a: Sequence[object] | None = None,
    seeds_b: Sequence[object] | None = None,
    level: float = 0.95,
) -> MeanCI:
    """Interval for mean(a) - mean(b), with the same pairing rule as :func:`compare`.

    Paired: t-interval of the per-seed differences. Otherwise Welch: sd-of-difference
    sqrt(s_a²/n_a + s_b²/n_b) with Welch-Satterthwaite degrees of freedom. ``n`` is the number
    of pairs (paired) or min(n_a, n_b); the half-width is NaN when either side has < 2 runs.
    """
    va, vb = _finite(a), _finite(b)
    if va.size == 0 or vb.size == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, level)
    diff = float(va.mean() - vb.mean())
    if va.size < 2 or vb.size < 2:
        return MeanCI(min(va.size, vb.size), diff, math.nan, math.nan, level)
    keep_a = [s for v, s in zip(a, seeds_a or [], strict=False) if v is not None
              and math.isfinite(float(v))] if seeds_a is not None else None
    keep_b = [s for v, s in zip(b, seeds_b or [], strict=False) if v is not None
              and math.isfinite(float(v))] if seeds_b is not None else None
    if _seeds_pair_up(keep_a, keep_b):
        order_b = {str(s): i for i, s in enumerate(keep_b or [])}
        d = va - np.array([vb[order_b[str(s)]] for s in keep_a or []])
        return mean_ci(d, level)
    var_a, var_b = va.var(ddof=1) / va.size, vb.var(ddof=1) / vb.size
    se = math.sqrt(var_a + var_b)
    if se == 0:
        return MeanCI(min(va.size, vb.size), diff, 0.0, 0.0, level)
    dof = (var_a + var_b) ** 2 / (var_a**2 / (va.size - 1) + var_b**2 / (vb.size - 1))
    half = float(sps.t.ppf((1 + level) / 2, dof)) * se
    return MeanCI(min(va.size, vb.size), diff, se, half, level)
