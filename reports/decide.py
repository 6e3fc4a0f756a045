"""The two questions a sweep answers, on per-configuration seed values (no pandas, no MLflow).

*Does SE help?* Every SE configuration against the no-SE baseline, one-sided t-tests
(H1: SE > no SE) with Holm's correction over the SE configurations: the chance that any "SE
helps" claim is false stays at most alpha.

*Which configuration?* The most accurate by mean is the reference. Every other configuration is
tested against it twice, each family Holm-corrected over the comparisons with the reference:
shown equivalent within ±margin (TOST), or shown worse (one-sided t, H1: reference > it). The
pick is the cheapest of the reference and the configurations shown equivalent; when a cheaper
configuration is neither, the answer is undecided, with the seeds that would decide it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .stats import TestResult, compare, equivalence, holm, power, seeds_needed

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


def se_helps(arms: list[Arm], alpha: float = DEFAULT_ALPHA, margin: float = DEFAULT_MARGIN,
             floor: float = 0.0) -> SeVerdict | None:
    """None without a finished baseline or SE configuration."""
    bases = [a for a in arms if a.baseline and a.n]
    others = [a for a in arms if not a.baseline and a.n]
    if not bases or not others:
        return None
    base = max(bases, key=lambda a: a.n)
    tests = [compare(a.values, base.values, a.seeds, base.seeds, "greater", floor)
             for a in others]
    adjusted = holm([t.p_value for t in tests])
    rows = sorted((Versus(a, t, p) for a, t, p in zip(others, tests, adjusted, strict=True)),
                  key=lambda v: (not math.isfinite(v.p_holm), v.p_holm))
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
    arm: Arm
    worse: TestResult  # one-sided, H1: reference > arm
    equivalent: TestResult  # TOST within ±margin
    p_worse_holm: float = math.nan
    p_equivalent_holm: float = math.nan
    verdict: str = "open"  # equivalent | worse | open | untested


@dataclass
class Choice:
    best: Arm
    pick: Arm
    contenders: list[Contender]
    alpha: float
    margin: float
    open_cheaper: list[Contender] = field(default_factory=list)
    seeds_to_decide: int | None = None

    @property
    def decided(self) -> bool:
        return not self.open_cheaper

    @property
    def family(self) -> int:
        return len(self.contenders)

    def contender(self, key: str) -> Contender | None:
        return next((c for c in self.contenders if c.arm.key == key), None)


def _contenders(best: Arm, others: list[Arm], alpha: float, margin: float,
                floor: float) -> list[Contender]:
    out = [Contender(a, compare(best.values, a.values, best.seeds, a.seeds, "greater", floor),
                     equivalence(a.values, best.values, margin, a.seeds, best.seeds, floor))
           for a in others]
    worse = holm([c.worse.p_value for c in out])
    same = holm([c.equivalent.p_value for c in out])
    for c, pw, pe in zip(out, worse, same, strict=True):
        c.p_worse_holm, c.p_equivalent_holm = pw, pe
        if not (c.worse.available and c.equivalent.available):
            c.verdict = "untested"
        elif pe < alpha:  # within the margin, even if also shown slightly worse
            c.verdict = "equivalent"
        elif pw < alpha:
            c.verdict = "worse"
    return out


def _seeds_to_decide(best: Arm, open_ones: list[Contender], alpha: float, margin: float,
                     family: int) -> int | None:
    """Seeds per configuration for the open comparisons to be decided with TARGET_POWER at the
    observed spread, if the observed differences are the true ones (Holm's worst case:
    alpha / family)."""
    needed = []
    for c in open_ones:
        if not c.worse.available:
            return None
        gap = abs(c.arm.mean - best.mean)
        effect = margin - gap if gap < margin else gap
        needed.append(seeds_needed(effect, c.worse.sd_diff, alpha / family, TARGET_POWER))
    if not needed or any(n is None for n in needed):
        return None
    return max(n for n in needed if n is not None)


def choose(arms: list[Arm], alpha: float = DEFAULT_ALPHA, margin: float = DEFAULT_MARGIN,
           floor: float = 0.0) -> Choice | None:
    """None when no configuration has a finished seed."""
    done = [a for a in arms if a.n]
    if not done:
        return None
    best = max(by_cost(done), key=lambda a: a.mean)  # max keeps the first: the cheaper on a tie
    others = [a for a in done if a.key != best.key]
    contenders = _contenders(best, others, alpha, margin, floor)
    verdicts = {c.arm.key: c.verdict for c in contenders}
    eligible = [a for a in done if a.key == best.key or verdicts.get(a.key) == "equivalent"]
    pick = by_cost(eligible)[0]
    order = [a.key for a in by_cost(done)]
    cheaper = set(order[:order.index(pick.key)])
    open_cheaper = [c for c in contenders
                    if c.arm.key in cheaper and c.verdict in ("open", "untested")]
    choice = Choice(best, pick, contenders, alpha, margin, open_cheaper)
    if open_cheaper:
        choice.seeds_to_decide = _seeds_to_decide(best, open_cheaper, alpha, margin,
                                                  max(len(contenders), 1))
    return choice
