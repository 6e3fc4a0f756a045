"""Configurations compared across tasks (several sweeps, or one sweep that varies the backbone
or the dataset), the way ML benchmark papers compare methods over datasets (Demsar 2006).

Each task gives one number per configuration: its mean accuracy over finished seeds.
Configurations are matched by label across tasks; one missing from a task is left out of the
comparison (and named). Then:

- *which configurations differ?* Friedman's test on the ranks within tasks, Nemenyi's post-hoc
  test and a critical-difference diagram (scikit-posthocs); configurations joined by a bar are
  not shown to differ;
- *does SE help across these tasks?* Each SE configuration against the no-SE baseline, the
  Wilcoxon signed-rank test on the per-task differences (one-sided, H1: SE is better), Holm's
  correction over the SE configurations. With N tasks the smallest one-sided p-value a
  Wilcoxon test can reach is 1/2^N: below 5 tasks, no claim at alpha 0.05 is possible, and the
  verdict says so instead of testing. Beside it, each task's own "does SE help" verdict over its
  seeds (reports.decide.se_helps), for reading, not as a combined test.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats as sps

from .decide import DEFAULT_ALPHA, se_helps
from .frame import Sweep
from .points import arms, point_summary
from .stats import holm
from .tables import to_markdown

BASELINE = "no SE"


@dataclass
class MultiComparison:
    """Per-task means, ranks, the tests and the verdict in words."""

    means: pd.DataFrame  # task x configuration, accuracy in %
    ranks: pd.Series  # average rank per configuration, 1 = most accurate
    friedman_p: float
    posthoc: pd.DataFrame  # configuration x configuration Nemenyi p-values
    se_rows: pd.DataFrame  # SE configuration vs no SE across tasks
    per_task: pd.DataFrame  # task x SE configuration: each task's own verdict
    alpha: float
    dropped: dict[str, list[str]] = field(default_factory=dict)  # configuration -> tasks
    lines: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return list(self.means.index)


def _task_points(sweep: Sweep, acc_col: str | None = None) -> pd.DataFrame:
    from .metrics import selection_metric

    return point_summary(
        sweep.trials, acc_col=acc_col or selection_metric(sweep.objectives), varied=sweep.varied
    )


def tasks_from_sweeps(sweeps: list[Sweep]) -> dict[str, pd.DataFrame]:
    """One task per sweep, named like it."""
    return {s.name: _task_points(s) for s in sweeps}


def tasks_from_sweep(sweep: Sweep, key: str) -> dict[str, pd.DataFrame]:
    """One task per value of ``key`` (``arch.backbone``, ``data.name``) in one sweep; the
    configurations are labelled by their other overrides."""
    points = _task_points(sweep)
    if key not in points:
        raise KeyError(f"{key!r} is not a varied key of {sweep.name}: {sweep.varied}")
    out = {}
    for value, rows in points.groupby(points[key].astype(str), sort=True):
        rows = rows.copy()
        rows["label"] = [
            BASELINE if base else _label_without(point, key)
            for base, point in zip(rows["baseline"], rows["point"], strict=True)
        ]
        out[f"{key.split('.')[-1]}={value}"] = rows
    return out


def _label_without(point: dict[str, Any], key: str) -> str:
    rest = {k: v for k, v in point.items() if k != key}
    return (
        ", ".join(
            f"{k.split('.')[-1]}={json.dumps(v) if isinstance(v, list) else v}"
            for k, v in sorted(rest.items())
        )
        or "fixed spec"
    )


def _means(tasks: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    table = (
        pd.DataFrame(
            {task: p[p["n"] > 0].groupby("label")["acc_mean"].mean() for task, p in tasks.items()}
        ).T
        * 100
    )
    missing = {
        str(c): [t for t in table.index if pd.isna(table.loc[t, c])]
        for c in table.columns
        if table[c].isna().any()
    }
    return table.dropna(axis=1), missing


def se_across(means: pd.DataFrame, alpha: float = DEFAULT_ALPHA) -> pd.DataFrame:
    """Each SE configuration against no SE over the tasks: one-sided Wilcoxon signed-rank on
    the per-task differences, Holm over the SE configurations."""
    if BASELINE not in means:
        return pd.DataFrame()
    n = len(means)
    rows = []
    for config in (c for c in means.columns if c != BASELINE):
        d = means[config] - means[BASELINE]
        p = (
            float(sps.wilcoxon(d, alternative="greater").pvalue)
            if n >= 2 and (d != 0).any()
            else math.nan
        )
        rows.append(
            {
                "configuration": config,
                "tasks": n,
                "mean_gain_pp": float(d.mean()),
                "wins": int((d > 0).sum()),
                "losses": int((d < 0).sum()),
                "p_wilcoxon": p,
            }
        )
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm(out["p_wilcoxon"].tolist())
    return out


def _per_task(tasks: dict[str, pd.DataFrame], alpha: float) -> pd.DataFrame:
    """Each task's own 'does SE help' (one-sided t over seeds, Holm within the task)."""
    rows = []
    for task, points in tasks.items():
        floor = float(points.attrs.get("resolution", 0.0))
        verdict = se_helps(arms(points), alpha, floor=floor)
        if verdict is None:
            continue
        for v in verdict.rows:
            rows.append(
                {
                    "task": task,
                    "configuration": v.arm.label,
                    "gain_pp": 100 * v.test.diff,
                    "p_holm": v.p_holm,
                    "shown": bool(v.p_holm < alpha),
                }
            )
    return pd.DataFrame(rows, columns=["task", "configuration", "gain_pp", "p_holm", "shown"])


def compare_sweeps(tasks: dict[str, pd.DataFrame], alpha: float = DEFAULT_ALPHA) -> MultiComparison:
    """Friedman + Nemenyi over the configurations every task ran, and SE against no SE across
    tasks (see the module). ``tasks`` maps a task name to its :func:`point_summary`."""
    import scikit_posthocs as sp

    means, dropped = _means(tasks)
    if len(means) < 2 or means.shape[1] < 2:
        raise ValueError(
            f"need at least 2 tasks sharing at least 2 configurations; got "
            f"{len(means)} tasks sharing {list(means.columns)}"
        )
    ranks = (-means).rank(axis=1).mean().sort_values()
    friedman = (
        float(sps.friedmanchisquare(*[means[c] for c in means]).pvalue)
        if means.shape[1] >= 3
        else math.nan
    )
    posthoc = sp.posthoc_nemenyi_friedman(means.to_numpy())
    posthoc.index = posthoc.columns = list(means.columns)
    result = MultiComparison(
        means,
        ranks,
        friedman,
        posthoc,
        se_across(means, alpha),
        _per_task(tasks, alpha),
        alpha,
        dropped,
    )
    result.lines = verdict_lines(result)
    return result


def _se_line(c: MultiComparison) -> str:
    n = len(c.tasks)
    floor = 0.5**n
    if c.se_rows.empty:
        return "Does SE help across these tasks: no no-SE baseline in every task to compare with."
    best = c.se_rows.sort_values("p_wilcoxon").iloc[0]
    tally = (
        f"{best['configuration']} gains {best['mean_gain_pp']:+.2f} pp on average, more "
        f"accurate in {best['wins']} of {n} tasks"
    )
    if floor >= c.alpha:
        return (
            f"Does SE help across these tasks: not testable with {n} tasks (a one-sided "
            f"Wilcoxon test cannot go below p={floor:.3f}; at least "
            f"{math.ceil(math.log2(1 / c.alpha))} tasks are needed at alpha={c.alpha}); "
            f"{tally}."
        )
    shown = c.se_rows[c.se_rows["p_holm"] < c.alpha]
    if len(shown):
        items = ", ".join(
            f"{r.configuration} ({r.mean_gain_pp:+.2f} pp, Holm p={r.p_holm:.3f})"
            for r in shown.itertuples()
        )
        return (
            f"Does SE help across these tasks: yes, {items} (one-sided Wilcoxon over {n} "
            f"tasks, Holm over {len(c.se_rows)} SE configurations)."
        )
    return (
        f"Does SE help across these tasks: not shown (one-sided Wilcoxon over {n} tasks, "
        f"Holm over {len(c.se_rows)} SE configurations; the closest: {tally}, Holm p="
        f"{best['p_holm']:.3f})."
    )


def verdict_lines(c: MultiComparison) -> list[str]:
    """The comparison in words: what differs, does SE help, what was left out."""
    n, k = len(c.tasks), len(c.ranks)
    order = ", ".join(f"{name} ({rank:.2f})" for name, rank in c.ranks.items())
    lines = [f"Across {n} tasks ({', '.join(c.tasks)}), average rank (1 = most accurate): {order}."]
    if math.isfinite(c.friedman_p):
        differ = [
            f"{a} vs {b} (p={c.posthoc.loc[a, b]:.3f})"
            for i, a in enumerate(c.ranks.index)
            for b in c.ranks.index[i + 1 :]
            if c.posthoc.loc[a, b] < c.alpha
        ]
        rough = "" if n >= 10 else f" (its chi-square approximation is rough with {n} tasks)"
        if c.friedman_p >= c.alpha:  # Demsar: no post-hoc claims unless Friedman rejects
            posthoc = "the ranks are not shown to differ, so no pair is compared."
        else:
            posthoc = "Nemenyi post-hoc: " + (
                ", ".join(differ) + " differ." if differ else "no pair is shown to differ."
            )
        lines.append(
            f"Friedman's test over {k} configurations: p={c.friedman_p:.3f}{rough}; " + posthoc
        )
    lines.append(_se_line(c))
    if len(c.per_task):
        helped = c.per_task[c.per_task["shown"]].groupby("task")["configuration"].apply(list)
        lines.append(
            f"Within each task (over its seeds, Holm within the task): SE shown to help "
            f"in {len(helped)} of {c.per_task['task'].nunique()} tasks"
            + (
                ": " + "; ".join(f"{t}: {', '.join(v)}" for t, v in helped.items())
                if len(helped)
                else ""
            )
            + "."
        )
    if c.dropped:
        lines.append(
            "Left out (not in every task): "
            + "; ".join(
                f"{name} (missing in {', '.join(tasks)})" for name, tasks in c.dropped.items()
            )
            + "."
        )
    return lines


def plot_cd(c: MultiComparison, path: Path) -> Path:
    """The critical-difference diagram of the Nemenyi test (scikit-posthocs)."""
    import scikit_posthocs as sp
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 0.35 * len(c.ranks) + 1.6), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    sp.critical_difference_diagram(c.ranks, c.posthoc, alpha=c.alpha, ax=ax)
    ax.set_title(
        f"Average rank over {len(c.tasks)} tasks (1 = most accurate); a bar joins "
        f"configurations not shown to differ (Nemenyi, alpha={c.alpha})",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", facecolor="white")
    return path


def as_markdown(c: MultiComparison) -> str:
    means = c.means.round(2).reset_index(names="task")
    parts = [
        "# Configurations across tasks",
        "",
        *[f"- {line}" for line in c.lines],
        "",
        "## Mean accuracy (%) per task",
        "",
        to_markdown(means),
    ]
    if len(c.se_rows):
        rows = c.se_rows.round(4)
        parts += ["## SE against no SE across tasks", "", to_markdown(rows)]
    return "\n".join(parts)


def write_multi_report(c: MultiComparison, out_dir: str | Path) -> list[Path]:
    """comparison.md, means.csv, se_vs_no_se.csv, per_task.csv and critical_difference.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(as_markdown(c), encoding="utf-8")
    c.means.to_csv(out / "means.csv")
    c.se_rows.to_csv(out / "se_vs_no_se.csv", index=False)
    c.per_task.to_csv(out / "per_task.csv", index=False)
    return [
        out / "comparison.md",
        out / "means.csv",
        out / "se_vs_no_se.csv",
        out / "per_task.csv",
        plot_cd(c, out / "critical_difference.png"),
    ]


def report_many(
    tracking_uri: str,
    names: list[str],
    out_dir: str | Path,
    by: str | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> tuple[MultiComparison, list[Path]]:
    """What `selab report A B C` (or `selab report A --by arch.backbone`) runs: load the
    sweeps, compare their configurations across tasks, write the files."""
    from .frame import load_sweep

    sweeps = [load_sweep(tracking_uri, name) for name in names]
    if by is not None:
        if len(sweeps) != 1:
            raise ValueError("--by splits one sweep into tasks; give one sweep name")
        tasks = tasks_from_sweep(sweeps[0], by)
    else:
        tasks = tasks_from_sweeps(sweeps)
    comparison = compare_sweeps(tasks, alpha)
    return comparison, write_multi_report(comparison, out_dir)
