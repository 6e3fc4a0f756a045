"""The answer to "which configuration?" in words a reader can check against the table beside
it: one sentence that says what is picked and why, naming only configurations, verdicts and
costs that the decision table shows, then the numbers behind it.

The same text goes to the terminal, recommendation.md, the HTML report and the description of
the sweep's parent run in MLflow.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .best import worse_power
from .decide import TARGET_POWER, Choice, Contender
from .stats import format_p
from .units import human

COST_NAMES = {"flops": "FLOPs", "params": "params"}
COST_DIGITS = 4  # configurations of one backbone differ in the third digit of their FLOPs


@dataclass(frozen=True)
class Config:
    """What the words say about one configuration (accuracies as fractions)."""

    key: str
    label: str
    acc_text: str  # "97.77% [97.40, 98.14] (95% CI, 6 seeds)"
    cost: dict[str, float]  # {"flops": ..., "params": ...}

    def cost_text(self) -> str:
        return (
            f"{human(self.cost.get('flops'), COST_DIGITS)} FLOPs, "
            f"{human(self.cost.get('params'), COST_DIGITS)} params"
        )


def _pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def _names(labels: list[str], most: int = 4) -> str:
    """``a, b and c``; past ``most`` names, ``a, b, c and 7 others``."""
    if len(labels) > most:
        return ", ".join(labels[: most - 1]) + f" and {len(labels) - most + 1} others"
    if len(labels) <= 2:
        return " and ".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _is_are(labels: list[str]) -> str:
    return "is" if len(labels) == 1 else "are"


def cheaper_words(pick: Config, best: Config, cost_cols: tuple[str, str]) -> str:
    """``cheaper (2.58M vs 2.62M FLOPs)``: the first cost column that differs decides, as the
    pick does."""
    for col in cost_cols:
        a, b = pick.cost.get(col, math.nan), best.cost.get(col, math.nan)
        if math.isfinite(a) and math.isfinite(b) and a != b:
            word = "cheaper" if a < b else "dearer"
            return (
                f"{word} ({human(a, COST_DIGITS)} vs {human(b, COST_DIGITS)} "
                f"{COST_NAMES.get(col, col)})"
            )
    return "as cheap"


def _why(
    choice: Choice, configs: dict[str, Config], margin: float, cost_cols: tuple[str, str]
) -> str:
    pick, best = configs[choice.pick.key], configs[choice.best.key]
    cheaper = sorted(
        (c for c in choice.contenders if c.arm.cost < choice.pick.cost), key=lambda c: c.arm.cost
    )  # as the table lists them
    worse = [configs[c.arm.key].label for c in cheaper if c.verdict == "worse"]
    if pick.key == best.key:
        why = "the most accurate" + ("" if cheaper else ", and the cheapest")
    else:
        why = (
            f"within ±{100 * margin:.2f} pp of the best ({best.label}) by TOST, and "
            f"{cheaper_words(pick, best, cost_cols)}"
        )
    if worse:
        why += f"; the cheaper {_names(worse)} {_is_are(worse)} shown worse"
    return why


def _untestable(choice: Choice) -> bool:
    """Every configuration ran fewer than 2 seeds (a search): no claim can be tested."""
    return choice.best.n < 2 and all(c.arm.n < 2 for c in choice.contenders)


def headline(
    choice: Choice,
    configs: dict[str, Config],
    margin: float,
    cost_cols: tuple[str, str] = ("flops", "params"),
) -> str:
    """One sentence: what is picked and why (or what is undecided, and the pick meanwhile)."""
    pick = configs[choice.pick.key]
    if _untestable(choice):
        return (
            f"Pick {pick.label}: the most accurate of {len(choice.contenders) + 1} "
            "configurations, but with one seed each nothing is tested; run seeds of the "
            "best and the cheaper ones to decide."
        )
    why = _why(choice, configs, margin, cost_cols)
    if choice.decided:
        return f"Pick {pick.label}: {why}."
    open_labels = [
        configs[c.arm.key].label for c in sorted(choice.open_cheaper, key=lambda c: c.arm.cost)
    ]
    n = choice.seeds_to_decide
    if any(c.verdict == "untested" for c in choice.open_cheaper):
        seeds = " (fewer than 2 seeds on a side: no test); more seeds would decide it"
    elif n:
        seeds = f"; about {n} seeds per configuration would decide it"
    else:
        seeds = "; more seeds than is practical would be needed to decide it"
    return (
        f"Undecided: the cheaper {_names(open_labels)} {_is_are(open_labels)} neither "
        f"within ±{100 * margin:.2f} pp of the best ({configs[choice.best.key].label}) "
        f"nor shown worse{seeds}. Until then, pick {pick.label}: {why}."
    )


def equivalent_numbers(c: Contender, choice: Choice, best: Config) -> str:
    return (
        f"{_pp(c.equivalent.diff)} against {best.label}, {c.equivalent.test} within "
        f"±{100 * choice.margin:.2f} pp, p={format_p(c.equivalent.p_value)}, Holm over "
        f"{choice.family} comparisons with the best: "
        f"p={format_p(c.p_equivalent_holm, choice.alpha)}"
    )


def worse_numbers(c: Contender, choice: Choice, configs: dict[str, Config]) -> str:
    by = configs[c.beaten_by.key].label if c.beaten_by is not None else "?"
    return (
        f"{_pp(-c.worse.diff)} against {by}, {c.worse.test} one-sided, "
        f"p={format_p(c.worse.p_value)}, times {c.comparisons} comparisons and Holm over "
        f"{choice.family_worse} configurations: p={format_p(c.p_worse_holm, choice.alpha)}"
    )


def details(
    choice: Choice, configs: dict[str, Config], test_text: str | None = None, floor: float = 0.0
) -> list[str]:
    """The numbers behind the headline, one claim a line, each with its test and correction."""
    pick, best = configs[choice.pick.key], configs[choice.best.key]
    lines = [f"{pick.label}: {pick.acc_text}, {pick.cost_text()}."]
    if test_text:
        lines.append(f"Its {test_text}.")
    if pick.key != best.key:
        c = choice.contender(pick.key)
        assert c is not None
        lines.append(
            f"Best {best.label}: {best.acc_text}, {best.cost_text()}; {pick.label} is "
            f"{equivalent_numbers(c, choice, best)} < {choice.alpha}."
        )
    for c in choice.contenders:
        if c.verdict == "worse" and c.arm.cost < choice.pick.cost:
            lines.append(
                f"{configs[c.arm.key].label} shown worse: "
                f"{worse_numbers(c, choice, configs)} < {choice.alpha}."
            )
    if _untestable(choice):
        return lines
    for c in choice.open_cheaper:
        label = configs[c.arm.key].label
        if c.verdict == "untested":
            lines.append(
                f"{label} open: {_pp(c.arm.mean - choice.best.mean)} against "
                f"{best.label}, fewer than 2 seeds on a side (no test)."
            )
            continue
        lines.append(
            f"{label} open: {equivalent_numbers(c, choice, best)}; "
            f"{worse_numbers(c, choice, configs)}; neither below {choice.alpha}."
        )
    if choice.open_cheaper:
        lines.append(_seeds_line(choice))
    if (power := power_line(choice, floor)) is not None:
        lines.append(power)
    return lines


def power_line(choice: Choice, floor: float) -> str | None:
    """How likely this sweep's seeds were to show a configuration worse, at the observed
    spread: the median seed-to-seed sd of a difference, the fewest seeds of a configuration."""
    sds = [c.equivalent.sd_diff for c in choice.contenders if c.equivalent.available]
    seeds = min([choice.best.n, *(c.arm.n for c in choice.contenders)])
    k = len(choice.contenders) + 1
    if not sds or seeds < 2:
        return None
    sd = statistics.median(sds)
    found = {
        gap: worse_power(gap, sd, seeds, k, choice.alpha, floor)
        for gap in (choice.margin, 2 * choice.margin)
    }
    (near, p_near), (far, p_far) = found.items()
    return (
        f"Power of 'shown worse' here ({k} configurations, {seeds} seeds, seed-to-seed sd "
        f"of a difference {100 * sd:.2f} pp): a configuration {100 * near:.2f} pp below "
        f"the others is shown worse with probability {p_near:.2f}, one {100 * far:.2f} pp "
        f"below with {p_far:.2f} (simulated for this rule)."
    )


def _seeds_line(choice: Choice) -> str:
    n = choice.seeds_to_decide
    if any(c.verdict == "untested" for c in choice.open_cheaper):
        return (
            "With fewer than 2 seeds on a side there is no seed-to-seed spread to test "
            "with: run more seeds of these configurations and of the best."
        )
    if not n:
        return (
            "At the observed seed-to-seed spread, more seeds than is practical would be "
            "needed to decide it."
        )
    return (
        f"At the observed seed-to-seed spread, about {n} seeds per configuration would "
        f"decide it ({TARGET_POWER:.0%} power, if the observed differences are the true "
        "ones)."
    )


def _verdict_cell(row: pd.Series, pick_key: str) -> str:
    verdict = str(row["vs_best"])
    word = {"equivalent": f"within ±{row['margin_pp']:.2f} pp"}.get(verdict, verdict)
    return f"{word} <- pick" if row["point_key"] == pick_key else word


def _ci_cell(row: pd.Series) -> str:
    if not row["n"]:
        return "—"
    mean = f"{100 * row['acc_mean']:.2f}"
    if row["n"] < 2 or pd.isna(row.get("acc_ci_low")):
        return f"{mean} (1 seed)"
    return f"{mean} [{100 * row['acc_ci_low']:.2f}, {100 * row['acc_ci_high']:.2f}]"


def decision_table(
    candidates: pd.DataFrame,
    choice: Choice,
    margin: float,
    cost_cols: tuple[str, str] = ("flops", "params"),
) -> pd.DataFrame:
    """The table the headline refers to, cheapest first: every configuration, its accuracy,
    its difference to the best, its costs and its verdict with both p-values."""
    rows = candidates.assign(margin_pp=100 * margin)
    rows = rows.sort_values(
        [c for c in cost_cols if c in rows] + ["acc_mean"],
        ascending=[True] * sum(c in rows for c in cost_cols) + [False],
    )
    best_mean = choice.best.mean
    out: dict[str, Any] = {
        "configuration": rows["label"].astype(str),
        "seeds": rows["n"].astype(int),
        "acc % [95% CI]": rows.apply(_ci_cell, axis=1),
        "Δ vs best pp": [
            ("—" if not n else f"{100 * (m - best_mean):+.2f}")
            for m, n in zip(rows["acc_mean"], rows["n"], strict=True)
        ],
    }
    for col in cost_cols:
        if col in rows:
            out[COST_NAMES.get(col, col)] = rows[col].map(lambda v: human(v, COST_DIGITS))
    out["vs best"] = rows.apply(lambda r: _verdict_cell(r, choice.pick.key), axis=1)
    out["p TOST"] = rows["p_equivalent_holm"].map(lambda p: _p_cell(p, choice.alpha))
    out["p worse"] = rows["p_worse_holm"].map(lambda p: _p_cell(p, choice.alpha))
    if rows["beaten_by"].notna().any():
        out["worse than"] = rows["beaten_by"].fillna("").astype(str)
    return pd.DataFrame(out).reset_index(drop=True)


def _p_cell(p: float, alpha: float) -> str:
    return "—" if p is None or not math.isfinite(p) else format_p(p, alpha)


TABLE_NOTE = (
    "Cheapest first. vs best: best = the highest mean; within ±margin = shown equivalent to the "
    "best (p TOST: two one-sided t-tests, Holm over the comparisons with the best); worse = "
    "shown worse than the best, because 'worse than' beats it (p worse: its smallest one-sided "
    "t-test p against the others, times their number, Holm over all configurations: any false "
    "'worse' at most alpha); open = neither; untested = fewer than 2 seeds. The pick is the "
    "cheapest of the best and those within the margin."
)
