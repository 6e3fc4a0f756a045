"""The recommendation: the answers of :mod:`reports.decide` in words, each claim with its test,
its multiplicity correction and its margin."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import metrics as m
from . import verdict
from .decide import DEFAULT_ALPHA, DEFAULT_MARGIN, TARGET_POWER, Choice, SeVerdict, choose, se_helps
from .frame import Sweep
from .points import arms, point_summary
from .stats import format_p
from .tables import to_markdown, to_text
from .units import human

RULE = (
    "Decision rule, on {metric} ({split} split, final epoch; mean over finished seeds, the "
    "seed-to-seed spread taken as at least one evaluation image):\n"
    "1. Does SE help? Each SE configuration against the no-SE baseline, one-sided t-test "
    "(paired on seeds, else Welch), Holm's correction over all SE configurations at "
    "alpha={alpha}.\n"
    "2. The best is the configuration with the highest mean. Each other one is shown "
    "equivalent to it within ±{margin} pp (TOST, Holm over the comparisons with the best), or "
    "shown worse than the best: some configuration beats it (one-sided t against each other "
    "configuration, its smallest p times the number of comparisons, Holm over all "
    "configurations; a closed test, so the chance of any false 'worse' is at most alpha even "
    "though the best is chosen from the same data).\n"
    "3. The pick is the cheapest of the best and the configurations shown equivalent.\n"
    "4. If a cheaper configuration is neither shown equivalent nor shown worse, the answer is "
    "undecided, with the seeds that would decide it at the observed spread (power "
    f"{TARGET_POWER:.0%}).\n"
    "5. Failing to find a difference is never read as equivalence; intervals are 95% "
    "t-intervals clipped to [0, 100]%."
)


MAX_LISTED = 5  # configurations named in a note before "and N more"


@dataclass
class Pick:
    """One configuration with its accuracy (fractions) and cost."""

    label: str
    point_key: str
    values: dict[str, Any]
    acc_mean: float
    acc_low: float
    acc_high: float
    n: int
    flops: float
    params: float
    baseline: bool = False
    test_mean: float = math.nan
    test_low: float = math.nan
    test_high: float = math.nan
    test_n: int = 0

    @property
    def name(self) -> str:
        return "no SE (the no-SE baseline)" if self.baseline else self.label

    def acc_text(self) -> str:
        return _interval_text(self.acc_mean, self.acc_low, self.acc_high, self.n)

    def test_text(self) -> str | None:
        if not self.test_n:
            return None
        acc = _interval_text(self.test_mean, self.test_low, self.test_high, self.test_n)
        return f"{m.TEST_ACC} on the test split is {acc} (shown only: no choice uses it)"

    def cost_text(self) -> str:
        return f"{human(self.flops)} FLOPs, {human(self.params)} params"


def _interval_text(mean: float, low: float, high: float, n: int) -> str:
    if n >= 2 and math.isfinite(low):
        return f"{100 * mean:.2f}% [{100 * low:.2f}, {100 * high:.2f}] (95% CI, {n} seeds)"
    return f"{100 * mean:.2f}% (1 seed, CI not available)"


@dataclass
class BudgetPick:
    budget_flops: float | None
    budget_params: float | None
    pick: Pick | None
    text: str


@dataclass
class Recommendation:
    pick: Pick
    best: Pick
    choice: Choice
    se: SeVerdict | None
    metric: str
    alpha: float
    margin: float  # accuracy as a fraction
    resolution: float
    text: str  # which configuration: the one-sentence verdict
    se_text: str | None  # does SE help
    rule: str
    candidates: pd.DataFrame
    budget: BudgetPick | None = None
    notes: list[str] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)  # the claims behind `text`
    table: pd.DataFrame = field(default_factory=pd.DataFrame)  # what `text` names

    @property
    def label(self) -> str:
        return self.pick.label

    @property
    def decided(self) -> bool:
        return self.choice.decided

    def claims(self) -> list[str]:
        """Every claim after the verdict, in the order the report prints them."""
        out = list(self.numbers)
        if self.se_text:
            out.append(self.se_text)
        if self.budget is not None:
            out.append(f"Budget: {self.budget.text}")
        return out + self.notes

    def lines(self) -> list[str]:
        """The verdict, the decision table (fixed width) and every claim: what the terminal
        prints."""
        return [self.text, to_text(self.table), *self.claims()]

    def as_text(self) -> str:
        """The whole answer for a terminal: verdict, table, claims, the rule."""
        return "\n".join(
            [
                self.text,
                "",
                to_text(self.table),
                "",
                *self.claims(),
                "",
                verdict.TABLE_NOTE,
                "",
                self.rule,
            ]
        )

    def as_markdown(self, title: str | None = None) -> str:
        """The same answer in Markdown (recommendation.md, the parent run's description)."""
        head = [f"# {title}", ""] if title else []
        claims = [f"- {line}" for line in self.claims()]
        return "\n".join(
            [
                *head,
                f"**{self.text}**",
                "",
                to_markdown(self.table),
                verdict.TABLE_NOTE,
                "",
                *claims,
                "",
                *self.rule.splitlines(),
                "",
            ]
        )


def _pick(row: pd.Series, varied: list[str]) -> Pick:
    test = {}
    if "test_n" in row and int(row.get("test_n") or 0):
        test = {
            "test_mean": float(row["test_mean"]),
            "test_low": float(row["test_ci_low"]),
            "test_high": float(row["test_ci_high"]),
            "test_n": int(row["test_n"]),
        }
    return Pick(
        label=str(row["label"]),
        point_key=str(row["point_key"]),
        values={k: row.get(k) for k in varied if k in row},
        acc_mean=float(row["acc_mean"]),
        acc_low=float(row["acc_ci_low"]),
        acc_high=float(row["acc_ci_high"]),
        n=int(row["n"]),
        flops=float(row.get("flops", math.nan)),
        params=float(row.get("params", math.nan)),
        baseline=bool(row.get("baseline", False)),
        **test,
    )


def _pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def _holm(p: float, p_adj: float, family: int, what: str) -> str:
    return f"p={format_p(p)}, Holm-adjusted over {family} {what}: p={format_p(p_adj)}"


def _se_text(se: SeVerdict | None) -> str | None:
    if se is None:
        return None
    family = f"{se.family} SE configurations"
    if not se.family:
        return "Does SE help: not testable (fewer than 2 finished seeds on a side)."
    if se.helped:
        items = "; ".join(
            f"{v.arm.label} by {_pp(v.test.diff)} ({v.test.test} one-sided, "
            f"{_holm(v.test.p_value, v.p_holm, se.family, 'SE configurations')})"
            for v in se.helped
        )
        return (
            f"Does SE help: yes, at alpha={se.alpha} with Holm's correction over {family}: {items}."
        )
    top = se.rows[0]
    power = (
        ""
        if not math.isfinite(se.power_at_margin)
        else f" At the observed spread, a true gain of {100 * se.margin:.2f} pp in one "
        f"configuration would be found with probability {se.power_at_margin:.2f} with "
        f"{top.test.n_a} seeds."
    )
    return (
        f"Does SE help: not shown. No SE configuration beats the no-SE baseline at "
        f"alpha={se.alpha} after Holm's correction over {family}; the closest, "
        f"{top.arm.label} ({_pp(top.test.diff)}, {top.test.test} one-sided, "
        f"{_holm(top.test.p_value, top.p_holm, se.family, 'SE configurations')}). "
        "Not finding a gain is no evidence that there is none." + power
    )


def _candidates(points: pd.DataFrame, choice: Choice) -> pd.DataFrame:
    rows = []
    for _, p in points.iterrows():
        c = choice.contender(str(p["point_key"]))
        best = p["point_key"] == choice.best.key
        rows.append(
            {
                **p.drop(labels=["acc_values", "point"], errors="ignore").to_dict(),
                "vs_best": "best" if best else (c.verdict if c else "no finished seed"),
                "p_worse": c.worse.p_value if c else math.nan,
                "p_worse_holm": c.p_worse_holm if c else math.nan,
                "beaten_by": (
                    c.beaten_by.label
                    if c and c.verdict == "worse" and c.beaten_by is not None
                    else None
                ),
                "comparisons": c.comparisons if c else 0,
                "p_equivalent": c.equivalent.p_value if c else math.nan,
                "p_equivalent_holm": c.p_equivalent_holm if c else math.nan,
                "test": c.equivalent.test if c else "",
            }
        )
    return pd.DataFrame(rows)


def _configs(
    points: pd.DataFrame, varied: list[str], cost_col: str = "flops"
) -> dict[str, verdict.Config]:
    out = {}
    for _, row in points[points["n"] > 0].iterrows():
        pick = _pick(row, varied)
        # The cost the pick was made on (measured latency, say) is the one its words name.
        cost = {
            "flops": pick.flops,
            "params": pick.params,
            cost_col: float(row.get(cost_col, math.nan)),
        }
        out[pick.point_key] = verdict.Config(pick.point_key, pick.label, pick.acc_text(), cost)
    return out


def _stopped_note(points: pd.DataFrame) -> str | None:
    stopped = points[points["stopped_seeds"].map(len) > 0] if "stopped_seeds" in points else []
    if not len(stopped):
        return None
    items = [
        f"{r.label} (seeds {', '.join(map(str, r.stopped_seeds))})" for r in stopped.itertuples()
    ]
    if len(items) > MAX_LISTED:
        items = [*items[:MAX_LISTED], f"{len(items) - MAX_LISTED} more (points.csv lists them)"]
    items = ", ".join(items)
    return (
        f"Stopped early and excluded from every mean and test: {items}; the means of "
        "these configurations are over their finished seeds only."
    )


def recommend(
    data: Sweep | pd.DataFrame,
    acc_col: str | None = None,
    cost_col: str = "flops",
    alpha: float = DEFAULT_ALPHA,
    margin: float = DEFAULT_MARGIN,
    budget_flops: float | None = None,
    budget_params: float | None = None,
    varied: list[str] | None = None,
) -> Recommendation | None:
    """Apply :data:`RULE` (``margin`` in accuracy as a fraction); None when no SE
    configuration finished."""
    if isinstance(data, Sweep):
        trials, varied = data.trials, list(varied if varied is not None else data.varied)
        acc_col = acc_col or m.selection_metric(data.objectives)
    else:
        trials, varied, acc_col = data, list(varied or []), acc_col or m.VAL_ACC
    points = point_summary(trials, acc_col=acc_col, varied=varied)
    if points.empty or not ((points["n"] > 0) & ~points["baseline"]).any():
        return None
    floor = float(points.attrs.get("resolution", 0.0))
    configs = arms(points, cost_col)
    choice = choose(configs, alpha, margin, floor)
    se = se_helps(configs, alpha, margin, floor)
    by_key = {str(row["point_key"]): row for _, row in points.iterrows()}
    pick, best = _pick(by_key[choice.pick.key], varied), _pick(by_key[choice.best.key], varied)
    cost_cols = (cost_col, "params" if cost_col == "flops" else "flops")
    words = _configs(points, varied, cost_col)
    candidates = _candidates(points, choice)
    notes = [n for n in (_stopped_note(points),) if n]
    budget = None
    if budget_flops is not None or budget_params is not None:
        budget = _budget_pick(points, best, varied, budget_flops, budget_params, choice, words)
    rule = RULE.format(
        metric=acc_col,
        split=m.SPLIT.get(acc_col, "validation"),
        alpha=alpha,
        margin=f"{100 * margin:.2f}",
    )
    return Recommendation(
        pick,
        best,
        choice,
        se,
        acc_col,
        alpha,
        margin,
        floor,
        verdict.headline(choice, words, margin, cost_cols),
        _se_text(se),
        rule,
        candidates,
        budget,
        notes,
        verdict.details(choice, words, pick.test_text(), floor),
        verdict.decision_table(candidates[candidates["n"] > 0], choice, margin, cost_cols),
    )


def _fits(df: pd.DataFrame, budget_flops: float | None, budget_params: float | None) -> pd.Series:
    ok = pd.Series(True, index=df.index)
    if budget_flops is not None:
        ok &= pd.to_numeric(df.get("flops"), errors="coerce") <= budget_flops
    if budget_params is not None:
        ok &= pd.to_numeric(df.get("params"), errors="coerce") <= budget_params
    return ok


def _budget_verdict(key: str, choice: Choice, words: dict[str, verdict.Config]) -> str:
    """The budget pick against the overall best, by the verdict the choice already made on it
    (one rule and one correction for every "worse" and "equivalent" in the report)."""
    c = choice.contender(key)
    assert c is not None
    best = words[choice.best.key]
    gap = choice.best.mean - c.arm.mean
    if c.verdict == "untested":
        return (
            "whether it loses accuracy to the overall best cannot be tested (fewer than 2 "
            "seeds on a side)"
        )
    if c.verdict == "equivalent":
        return (
            f"within ±{100 * choice.margin:.2f} pp of the overall best {best.label}: "
            f"{verdict.equivalent_numbers(c, choice, best)}"
        )
    if c.verdict == "worse":
        return (
            f"the budget costs {100 * gap:.2f} pp against the overall best {best.label}: "
            f"shown worse, {verdict.worse_numbers(c, choice, words)}"
        )
    return (
        f"{_pp(-gap)} against the overall best {best.label}: neither within "
        f"±{100 * choice.margin:.2f} pp ({verdict.equivalent_numbers(c, choice, best)}) "
        f"nor shown worse ({verdict.worse_numbers(c, choice, words)})"
    )


def _budget_pick(
    points: pd.DataFrame,
    best: Pick,
    varied: list[str],
    budget_flops: float | None,
    budget_params: float | None,
    choice: Choice,
    words: dict[str, verdict.Config],
) -> BudgetPick:
    limits = " and ".join(
        f"{human(v)} {what}"
        for v, what in ((budget_flops, "FLOPs"), (budget_params, "params"))
        if v is not None
    )
    done = points[points["n"] > 0]
    inside = done[_fits(done, budget_flops, budget_params)]
    if inside.empty:
        cost = "flops" if budget_flops is not None else "params"
        cheapest = _pick(done.sort_values(cost).iloc[0], varied)
        return BudgetPick(
            budget_flops,
            budget_params,
            None,
            f"Nothing fits within {limits}: the cheapest finished configuration, "
            f"{cheapest.label}, needs {cheapest.cost_text()}.",
        )
    row = inside.sort_values(["acc_mean", "flops"], ascending=[False, True]).iloc[0]
    pick = _pick(row, varied)
    lead = f"Within {limits}: "
    if pick.baseline and inside["baseline"].all():
        lead = f"No SE configuration fits within {limits}; only the no-SE baseline does: "
    if row["point_key"] == best.point_key:
        return BudgetPick(
            budget_flops,
            budget_params,
            pick,
            f"{lead}{pick.label}, {pick.acc_text()}, {pick.cost_text()}; "
            "the overall best fits the budget.",
        )
    words_now = _budget_verdict(str(row["point_key"]), choice, words)
    return BudgetPick(
        budget_flops,
        budget_params,
        pick,
        f"{lead}{pick.label}, {pick.acc_text()}, {pick.cost_text()}; {words_now}.",
    )
