"""Which configuration to use: the cheapest one not shown to be worse than the best.

Rule (also printed in every report):
1. Candidates are all configurations with at least one finished trial, the no-SE baseline
   included: it is the cheapest configuration, so when no SE configuration is shown to be more
   accurate than it, the honest answer is "no SE". The best is the one with the highest mean
   accuracy (ties: the cheaper).
2. Each other candidate is compared with the best by a ONE-SIDED t-test across seeds,
   H1: mean(best) > mean(candidate), paired on seeds when both ran the same seeds, else Welch.
   It is "indistinguishable" from the best when p >= alpha (0.05). CI overlap is NOT used: two
   95% intervals can overlap while the difference is significant.
3. A candidate with fewer than 2 finished seeds (or a best with fewer than 2) cannot be tested
   and is never picked over the best on the strength of a missing test.
4. The recommendation is the cheapest (by ``cost_col``, then the other cost, then higher mean)
   among the best and the candidates indistinguishable from it.
5. Under a budget, the pick is the configuration (the baseline included) with the highest mean
   accuracy among those whose FLOPs and params fit, with a one-sided test against the overall
   best. When nothing fits, there is no pick and the text says what the cheapest one needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .frame import Sweep
from .points import point_summary
from .stats import TestResult, compare, format_p
from .units import human

RULE = (
    "Recommended = the cheapest configuration, the no-SE baseline included, whose accuracy is "
    "statistically indistinguishable from the most accurate one: a one-sided t-test across "
    "seeds (H1: best > candidate; paired on seeds when both ran the same seeds, else Welch) "
    "gives p >= {alpha}. Configurations with fewer than 2 finished seeds cannot be tested and "
    "are not picked over the best. CI overlap is not used."
)


@dataclass
class Pick:
    """One chosen configuration with its accuracy (fractions) and cost."""

    label: str
    point_key: str
    values: dict[str, Any]
    acc_mean: float
    acc_ci_half: float
    n: int
    flops: float
    params: float
    baseline: bool = False

    def acc_text(self) -> str:
        acc = f"{100 * self.acc_mean:.2f}%"
        if self.n >= 2 and math.isfinite(self.acc_ci_half):
            return f"{acc} ± {100 * self.acc_ci_half:.2f} (95% CI, {self.n} seeds)"
        return f"{acc} (1 seed, CI not available)"

    def cost_text(self) -> str:
        return f"{human(self.flops)} FLOPs, {human(self.params)} params"


@dataclass
class BudgetPick:
    budget_flops: float | None
    budget_params: float | None
    pick: Pick | None
    test_vs_best: TestResult | None
    text: str


@dataclass
class Recommendation:
    pick: Pick
    best: Pick
    test_vs_best: TestResult | None  # None when the pick is the best itself
    alpha: float
    cost_col: str
    confidence: str  # none | low | moderate | good
    text: str
    rule: str
    candidates: pd.DataFrame
    baseline_note: str | None = None
    budget: BudgetPick | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.pick.label


def _pick(row: pd.Series, varied: list[str]) -> Pick:
    return Pick(
        label=str(row["label"]),
        point_key=str(row["point_key"]),
        values={k: row.get(k) for k in varied if k in row},
        acc_mean=float(row["acc_mean"]),
        acc_ci_half=float(row["acc_ci_half"]),
        n=int(row["n"]),
        flops=float(row.get("flops", math.nan)),
        params=float(row.get("params", math.nan)),
        baseline=bool(row.get("baseline", False)),
    )


def _by_cost(df: pd.DataFrame, cost_col: str) -> pd.DataFrame:
    other = "params" if cost_col == "flops" else "flops"
    cols = [c for c in (cost_col, other) if c in df] + ["acc_mean"]
    asc = [True] * (len(cols) - 1) + [False]
    return df.sort_values(cols, ascending=asc, na_position="last")


def _confidence(n: int) -> str:
    if n < 2:
        return "none"
    return "low" if n == 2 else ("moderate" if n <= 4 else "good")


_CONFIDENCE_WORDS = {
    "none": "no noise estimate: a single seed per configuration, so differences may be luck",
    "low": "low: 2 seeds give a very wide interval; only large gaps can be detected",
    "moderate": "moderate: 3-4 seeds detect gaps of about the seed-to-seed spread or more",
    "good": "good: 5 or more seeds",
}


def recommend(
    data: Sweep | pd.DataFrame,
    acc_col: str = "val_acc",
    cost_col: str = "flops",
    alpha: float = 0.05,
    budget_flops: float | None = None,
    budget_params: float | None = None,
    varied: list[str] | None = None,
) -> Recommendation | None:
    """Apply the rule in this module's docstring; None when no SE configuration finished."""
    if isinstance(data, Sweep):
        trials, varied = data.trials, list(varied if varied is not None else data.varied)
    else:
        trials, varied = data, list(varied or [])
    points = point_summary(trials, acc_col=acc_col, varied=varied)
    if points.empty:
        return None
    done = points[(points["n"] > 0) & points["acc_mean"].notna()]
    if done[~done["baseline"]].empty:
        return None
    costs = [c for c in (cost_col, "params" if cost_col == "flops" else "flops") if c in done]
    # The baseline is a candidate like any other (rule 1): it is the cheapest configuration.
    cands = done.sort_values(["acc_mean", *costs], ascending=[False] + [True] * len(costs),
                             na_position="last").copy()
    best_row = cands.iloc[0]
    best = _pick(best_row, varied)

    tests: dict[str, TestResult] = {}
    status = []
    for _, row in cands.iterrows():
        if row["point_key"] == best_row["point_key"]:
            status.append("best")
            continue
        res = compare(best_row["acc_values"], row["acc_values"], best_row["seeds"], row["seeds"],
                      alternative="greater")
        tests[row["point_key"]] = res
        if not res.available:
            status.append("untested")
        else:
            status.append("indistinguishable" if res.p_value >= alpha else "worse")
    cands["vs_best"] = status
    cands["p_vs_best"] = [tests[k].p_value if k in tests else math.nan for k in cands["point_key"]]
    cands["test_vs_best"] = [tests[k].test if k in tests else "" for k in cands["point_key"]]
    eligible = cands[cands["vs_best"].isin(["best", "indistinguishable"])]
    pick_row = _by_cost(eligible, cost_col).iloc[0]
    pick = _pick(pick_row, varied)
    test = tests.get(pick.point_key)
    best_se_row = cands[~cands["baseline"]].iloc[0]

    n_min = min(best.n, pick.n)
    confidence = _confidence(n_min)
    name = "no SE (the no-SE baseline)" if pick.baseline else pick.label
    lines = [f"Use {name}: {pick.acc_text()}, {pick.cost_text()}."]
    if test is None and pick.baseline:
        lines.append(
            f"It is the cheapest configuration and no SE configuration is more accurate on "
            f"average: the best one, {best_se_row['label']}, is "
            f"{100 * (float(best_se_row['acc_mean']) - pick.acc_mean):+.2f} pp against it. "
            "This sweep gives no reason to pay for SE."
        )
    elif test is None:
        lines.append(
            "It is the most accurate configuration, and no cheaper one is statistically "
            "indistinguishable from it."
            if best.n >= 2
            else "It is the most accurate configuration; with a single seed no test is possible."
        )
    elif pick.baseline:
        lines.append(
            f"No SE configuration is significantly more accurate: the most accurate, "
            f"{best.label} ({best.acc_text()}, {best.cost_text()}), is "
            f"{100 * test.diff:+.2f} pp ahead, one-sided {test.describe()} >= {alpha}. SE adds "
            "cost without a gain this sweep can detect; that is no proof that there is none."
        )
    else:
        lines.append(
            f"It is the cheapest configuration not significantly less accurate than the best, "
            f"{best.label} ({best.acc_text()}, {best.cost_text()}): difference "
            f"{100 * -test.diff:+.2f} pp, one-sided {test.describe()} >= {alpha}. "
            "That is no evidence of a loss, not proof that there is none."
        )
    cheaper_worse = cands[(cands["vs_best"] == "worse")]
    if cost_col in cands and not math.isnan(pick.flops if cost_col == "flops" else pick.params):
        cheaper_worse = cheaper_worse[cheaper_worse[cost_col] < getattr(pick, cost_col)]
    if len(cheaper_worse):
        items = ", ".join(
            f"{r.label} (p={format_p(r.p_vs_best)})" for r in cheaper_worse.itertuples()
        )
        lines.append(f"Cheaper configurations that are significantly less accurate: {items}.")
    untested = cands[cands["vs_best"] == "untested"]
    if len(untested):
        lines.append(
            "Not testable (fewer than 2 finished seeds on one side): "
            + ", ".join(str(x) for x in untested["label"]) + "."
        )
    lines.append(f"Confidence: {_CONFIDENCE_WORDS[confidence]}.")

    baseline_note = None
    base = done[done["baseline"]]
    if len(base):
        b = base.sort_values("n", ascending=False).iloc[0]
        se = best_se_row
        res = compare(se["acc_values"], b["acc_values"], se["seeds"], b["seeds"],
                      alternative="greater")
        gain = 100 * (float(se["acc_mean"]) - float(b["acc_mean"]))
        if not res.available:
            baseline_note = (f"SE ({se['label']}) vs no SE: {gain:+.2f} pp accuracy; "
                             f"not testable ({res.reason}).")
        elif res.p_value < alpha:
            baseline_note = (f"SE helps: {se['label']} beats the no-SE baseline by {gain:+.2f} pp "
                             f"(one-sided {res.describe()}).")
        else:
            baseline_note = (f"The no-SE baseline is not significantly less accurate than the "
                             f"best SE configuration {se['label']} ({gain:+.2f} pp, one-sided "
                             f"{res.describe()}): this sweep does not establish a gain from SE.")

    budget = None
    if budget_flops is not None or budget_params is not None:
        budget = _budget_pick(cands, best_row, varied, budget_flops, budget_params, alpha)

    return Recommendation(
        pick=pick, best=best, test_vs_best=test, alpha=alpha, cost_col=cost_col,
        confidence=confidence, text=" ".join(lines), rule=RULE.format(alpha=alpha),
        candidates=cands.drop(columns=["acc_values", "point"], errors="ignore"),
        baseline_note=baseline_note, budget=budget,
    )


def _fits(df: pd.DataFrame, budget_flops: float | None, budget_params: float | None) -> pd.Series:
    ok = pd.Series(True, index=df.index)
    if budget_flops is not None:
        ok &= pd.to_numeric(df.get("flops"), errors="coerce") <= budget_flops
    if budget_params is not None:
        ok &= pd.to_numeric(df.get("params"), errors="coerce") <= budget_params
    return ok


def _budget_pick(
    cands: pd.DataFrame,
    best_row: pd.Series,
    varied: list[str],
    budget_flops: float | None,
    budget_params: float | None,
    alpha: float,
) -> BudgetPick:
    limits = " and ".join(
        f"{human(v)} {what}" for v, what in ((budget_flops, "FLOPs"), (budget_params, "params"))
        if v is not None
    )
    inside = cands[_fits(cands, budget_flops, budget_params)]
    if inside.empty:
        needs = _by_cost(cands, "flops" if budget_flops is not None else "params").iloc[0]
        cheapest = _pick(needs, varied)
        return BudgetPick(budget_flops, budget_params, None, None,
                          f"Nothing fits within {limits}: the cheapest finished configuration, "
                          f"{cheapest.label}, needs {cheapest.cost_text()}.")
    row = inside.sort_values(["acc_mean", "flops" if "flops" in inside else "acc_mean"],
                             ascending=[False, True]).iloc[0]
    pick = _pick(row, varied)
    lead = f"Within {limits}: "
    if pick.baseline and inside["baseline"].all():
        lead = f"No SE configuration fits within {limits}; only the no-SE baseline does: "
    if row["point_key"] == best_row["point_key"]:
        text = (f"{lead}{pick.label}, {pick.acc_text()}, {pick.cost_text()}; "
                "the overall best fits the budget.")
        return BudgetPick(budget_flops, budget_params, pick, None, text)
    res = compare(best_row["acc_values"], row["acc_values"], best_row["seeds"], row["seeds"],
                  alternative="greater")
    if not res.available:
        verdict = f"whether it loses accuracy to the overall best cannot be tested ({res.reason})"
    elif res.p_value < alpha:
        verdict = (f"the budget costs {100 * res.diff:.2f} pp accuracy against the overall best "
                   f"{best_row['label']} (one-sided {res.describe()}: significant)")
    else:
        verdict = (f"{100 * res.diff:.2f} pp below the overall best {best_row['label']}, "
                   f"not significant (one-sided {res.describe()})")
    text = f"{lead}{pick.label}, {pick.acc_text()}, {pick.cost_text()}; {verdict}."
    return BudgetPick(budget_flops, budget_params, pick, res, text)
