"""The two questions a sweep answers, on per-configuration seed values (no pandas, no MLflow).

*Does SE help?* Every SE configuration against the no-SE baseline, one-sided t-tests
(H1: SE > no SE) with Holm's correction over the SE configurations: the chance that any "SE
helps" claim is false stays at most alpha.

*Which configuration?* The most accurate by mean is the best. Every other configuration is
shown equivalent to it within ±margin (TOST, Holm over the comparisons with the best), or shown
worse than the best (some configuration beats it: the closed test of :mod:`reports.best`),
or neither (open). The pick is the cheapest of the best and the configurations shown
equivalent; when a cheaper configuration is open, the answer is undecided, with the seeds that
would decide it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .best import compare_samples, equivalent_alpha, worse_alpha
from .stats import TestResult, compare, holm, power, seeds_needed

DEFAULT_ALPHA = 0.05
DEFAULT_MARGIN = 0.01  # accuracy as a fraction: 1 point
TARGET_POWER = 0.8


@dataclass(frozen=True)
class Arm:
    """One configuration's finished seeds; ``cost`` orders arms, cheapest first."""

    key: str
    label: str
    values: tuple[float, ...]
    seeds: tuple[object, ...]
    baseline: bool = False
    cost: tuple[float, ...] = ()

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(sum(self.values) / len(self.values)) if self.values else math.nan


def by_cost(arms: list[Arm]) -> list[Arm]:
    """Cheapest first (unknown costs last), ties by higher mean."""

    def key(arm: Arm) -> tuple:
        costs = tuple(c if math.isfinite(c) else math.inf for c in arm.cost)
        return (*costs, -arm.mean)

    return sorted(arms, key=key)


# ----------------------------------------------------------------------------- does SE help?


@dataclass
class Versus:
    """One configuration against a reference, with its Holm-adjusted p-value."""

    arm: Arm
    test: TestResult
    p_holm: float


@dataclass
class SeVerdict:
    baseline: Arm
    rows: list[Versus]  # every SE configuration against the baseline, most significant first
    alpha: float
    margin: float
    power_at_margin: float  # chance to find a gain of `margin` in one configuration
    sd_diff: float  # median seed-to-seed sd of a difference over the comparisons

    @property
    def helped(self) -> list[Versus]:
        return [v for v in self.rows if v.p_holm < self.alpha]

    @property
    def family(self) -> int:
        return sum(1 for v in self.rows if v.test.available)


def se_helps(
    arms: list[Arm],
    alpha: float = DEFAULT_ALPHA,
    margin: float = DEFAULT_MARGIN,
    floor: float = 0.0,
) -> SeVerdict | None:
    """None without a finished baseline or SE configuration."""
    bases = [a for a in arms if a.baseline and a.n]
    others = [a for a in arms if not a.baseline and a.n]
    if not bases or not others:
        return None
    base = max(bases, key=lambda a: a.n)
    tests = [compare(a.values, base.values, a.seeds, base.seeds, "greater", floor) for a in others]
    adjusted = holm([t.p_value for t in tests])
    rows = sorted(
        (Versus(a, t, p) for a, t, p in zip(others, tests, adjusted, strict=True)),
        key=lambda v: (not math.isfinite(v.p_holm), v.p_holm),
    )
    sds = [t.sd_diff for t in tests if t.available]
    sd = statistics.median(sds) if sds else math.nan
    k = max(len(sds), 1)
    # Holm's first step compares the smallest p with alpha / k: the power of that step is
    # what a single true gain among k configurations is found with (slightly more in practice).
    n = min(base.n, min(a.n for a in others))
    return SeVerdict(base, rows, alpha, margin, power(margin, sd, n, alpha / k), sd)


# ----------------------------------------------------------------------------- which one?


@dataclass
class Contender:
    """A configuration other than the best, as :mod:`reports.best` judged it."""

    arm: Arm
    worse: TestResult  # one-sided, H1: beaten_by > arm (the strongest of its comparisons)
    equivalent: TestResult  # TOST against the best within ±margin
    p_worse_holm: float = math.nan  # Holm over configurations of k_i x the smallest p
    p_equivalent_holm: float = math.nan
    verdict: str = "open"  # equivalent | worse | open | untested
    beaten_by: Arm | None = None
    comparisons: int = 0


@dataclass
class Choice:
    best: Arm
    pick: Arm
    contenders: list[Contender]
    alpha: float
    margin: float
    open_cheaper: list[Contender] = field(default_factory=list)
    seeds_to_decide: int | None = None
    family_worse: int = 0  # configurations in the Holm family of "shown worse"

    @property
    def decided(self) -> bool:
        return not self.open_cheaper

    @property
    def family(self) -> int:
        """Comparisons with the best in the TOST family."""
        return len(self.contenders)

    def contender(self, key: str) -> Contender | None:
        return next((c for c in self.contenders if c.arm.key == key), None)


def _contenders(
    done: list[Arm], alpha: float, margin: float, floor: float
) -> tuple[Arm, list[Contender], int]:
    by_key = {a.key: a for a in done}
    judged = compare_samples(
        {a.key: (a.values, a.seeds) for a in done},
        alpha,
        margin,
        floor,
        preference=[a.key for a in by_cost(done)],
    )
    assert judged is not None  # every arm here has a value
    out = [
        Contender(
            by_key[v.key],
            v.worse,
            v.equivalent,
            v.p_worse_adjusted,
            v.p_equivalent_holm,
            v.verdict,
            by_key[v.beaten_by] if v.beaten_by is not None else None,
            v.comparisons,
        )
        for v in judged.rows.values()
    ]
    return by_key[judged.best], out, judged.family_worse


def _seeds_to_decide(
    best: Arm, open_ones: list[Contender], alpha: float, margin: float, configurations: int
) -> int | None:
    """Seeds per configuration for the open comparisons to be decided with TARGET_POWER at the
    observed spread, if the observed differences are the true ones: within the margin by TOST
    (Holm's strictest step, alpha / (k - 1)), else shown worse (alpha / (k (k - 1)))."""
    needed = []
    for c in open_ones:
        if not c.equivalent.available:
            return None
        gap = abs(c.arm.mean - best.mean)
        if gap < margin:
            level, effect = equivalent_alpha(configurations, alpha), margin - gap
        else:
            level, effect = worse_alpha(configurations, alpha), gap
        needed.append(seeds_needed(effect, c.equivalent.sd_diff, level, TARGET_POWER))
    if not needed or any(n is None for n in needed):
        return None
    return max(n for n in needed if n is not None)


def choose(
    arms: list[Arm],
    alpha: float = DEFAULT_ALPHA,
    margin: float = DEFAULT_MARGIN,
    floor: float = 0.0,
) -> Choice | None:
    """None when no configuration has a finished seed. The verdicts come from
    :func:`reports.best.compare_samples`; ties for the best go to the cheaper."""
    done = [a for a in arms if a.n]
    if not done:
        return None
    best, contenders, family_worse = _contenders(done, alpha, margin, floor)
    verdicts = {c.arm.key: c.verdict for c in contenders}
    eligible = [a for a in done if a.key == best.key or verdicts.get(a.key) == "equivalent"]
    pick = by_cost(eligible)[0]
    order = [a.key for a in by_cost(done)]
    cheaper = set(order[: order.index(pick.key)])
    open_cheaper = [
        c for c in contenders if c.arm.key in cheaper and c.verdict in ("open", "untested")
    ]
    choice = Choice(best, pick, contenders, alpha, margin, open_cheaper, family_worse=family_worse)
    if open_cheaper:
        choice.seeds_to_decide = _seeds_to_decide(best, open_cheaper, alpha, margin, len(done))
    return choice
