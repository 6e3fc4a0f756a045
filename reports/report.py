"""One report per sweep: files in a folder, also logged under ``report/`` of the parent run."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from . import html
from .cost import DEFAULT_COST, cost_column, cost_view, write_cost_tables
from .curves import EarlyVsFinal, early_vs_final, epoch_histories
from .decide import DEFAULT_ALPHA, DEFAULT_MARGIN
from .excitation import analyzed_figures
from .frame import Sweep
from .importance import SEARCHES, Importance, parameter_importance
from .metrics import SPLIT, selection_metric
from .pareto import pareto_front
from .plots import make_plots
from .plots_search import plot_importance, plot_rank_correlation
from .points import point_summary
from .publish import publish_summary
from .recommend import Recommendation, recommend
from .tables import ablation_tables, write_tables

ARTIFACT_DIR = "report"


@dataclass
class Diagnostics:
    """What the sweep says about its own search: which knob mattered (search sweeps) and
    whether early epochs rank configurations as the last one does."""

    importance: Importance | None = None
    early: EarlyVsFinal | None = None
    plots: dict[str, Path] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [x.summary() for x in (self.importance, self.early) if x is not None]


@dataclass
class Report:
    html_path: Path
    files: list[Path]
    tables: dict[str, pd.DataFrame]
    recommendation: Recommendation | None
    fronts: dict[str, pd.DataFrame] = field(default_factory=dict)
    logged: bool = False
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


def _csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    # Lists and dicts go to CSV as JSON, not as Python reprs.
    out = df.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, (list, dict))).any():
            out[col] = out[col].map(
                lambda v: json.dumps(v, default=str) if isinstance(v, (list, dict)) else v
            )
    return out


def race_settings(spec_text: str | None) -> dict[str, Any] | None:
    """The race of a raced sweep's spec (``seeds: {initial, max, ...}``), else None."""
    try:
        spec = yaml.safe_load(spec_text or "")
    except yaml.YAMLError:
        return None
    race = spec.get("race") or spec.get("seeds") if isinstance(spec, dict) else None
    if not isinstance(race, dict):
        return None
    return {"initial": 3, "max": 10, "margin": 1.0, "alpha": 0.05} | race


def race_note(sweep: Sweep, race: dict[str, Any] | None) -> str | None:
    """How many trials racing saved against every seed on every configuration; None when it
    saved none (every configuration got every seed)."""
    if race is None or sweep.trials.empty:
        return None
    configs = sweep.trials["point_key"].nunique()
    full = configs * int(race.get("max", 0))
    ran = len(sweep.trials)
    if full <= 0 or ran >= full:
        return None
    return (
        f"Seeds were raced (start with {race.get('initial')}, at most {race.get('max')} per "
        f"configuration; seeds stop where a configuration is shown worse than the best or "
        f"equivalent to it): {ran} trials instead of {full} for every seed everywhere, "
        f"{100 * (full - ran) / full:.0f}% fewer."
    )


def _recommendation_md(sweep: Sweep, rec: Recommendation) -> str:
    return rec.as_markdown(f"Recommendation for {sweep.name}")


def _meta(sweep: Sweep, acc_col: str) -> dict[str, str]:
    return {
        "sweep": sweep.name,
        "parent run": f"{sweep.run_id} (experiment {sweep.experiment_name!r}, "
        f"status {sweep.status})",
        "tracking URI": sweep.tracking_uri,
        "search": sweep.search,
        "dataset": sweep.dataset,
        "varied": ", ".join(sweep.varied) or "—",
        "objectives": ", ".join(
            f"{o.get('metric')} ({o.get('mode')})" for o in sweep.objectives if isinstance(o, dict)
        )
        or "—",
        "metric for every choice": f"{acc_col} ({SPLIT.get(acc_col, 'validation')} split)",
    }


def _write_frames(
    out: Path, trials: pd.DataFrame, points: pd.DataFrame, fronts: dict[str, pd.DataFrame]
) -> list[Path]:
    files = []
    for fname, frame in (
        ("trials.csv", trials),
        ("points.csv", points),
        *((f"pareto_{c}.csv", f) for c, f in fronts.items()),
    ):
        _csv_safe(frame).to_csv(out / fname, index=False)
        files.append(out / fname)
    return files


def diagnose(sweep: Sweep, spec_text: str | None, acc_col: str, out: Path) -> Diagnostics:
    """Parameter importance (search sweeps) and early-vs-final rank correlations, with their
    tables and figures under ``out``."""
    from mlflow import MlflowClient

    found = Diagnostics()
    trials = sweep.trials
    if sweep.search in SEARCHES:
        mode = next(
            (
                o.get("mode", "max")
                for o in sweep.objectives
                if isinstance(o, dict) and o.get("metric") == acc_col
            ),
            "max",
        )
        found.importance = parameter_importance(trials, spec_text, sweep.search, acc_col, mode)
    if not trials.empty:
        curves = epoch_histories(MlflowClient(sweep.tracking_uri), trials)
        found.early = early_vs_final(curves, trials)
    figures = {
        "Which knob mattered": (found.importance, plot_importance, "importance"),
        "Early vs final epoch": (found.early, plot_rank_correlation, "rank_correlation"),
    }
    for title, (result, draw, stem) in figures.items():
        if result is None or not result.available:
            continue
        if (png := draw(result, out / f"{stem}.png")) is not None:
            found.plots[title] = png
        result.table.to_csv(out / f"{stem}.csv", index=False)
        found.files += [png, out / f"{stem}.csv"] if png else [out / f"{stem}.csv"]
    if found.early is not None and len(found.early.stopped):
        found.early.stopped.to_csv(out / "asha_stopped.csv", index=False)
        found.files.append(out / "asha_stopped.csv")
    return found


def write_report(
    sweep: Sweep,
    out_dir: str | Path,
    budget_flops: float | None = None,
    budget_params: float | None = None,
    log_to_mlflow: bool = True,
    acc_col: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    margin: float | None = None,
    cost: str = DEFAULT_COST,
) -> Report:
    """Write report.html, PNGs and CSV/Markdown tables to ``out_dir``; log them to MLflow.

    ``margin`` (accuracy as a fraction) defaults to the raced sweep's, else 1 point. ``cost``
    (reports.cost.COSTS: flops, params, latency, latency_ratio) orders the configurations for
    the pick; FLOPs where the trials did not measure the one asked for. Works on
    whatever has finished: a running or partly failed sweep gets a report of its finished
    trials, with the others listed and counted.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    acc_col = acc_col or selection_metric(sweep.objectives)
    spec_text = sweep.spec_text()
    race = race_settings(spec_text)
    # A raced sweep stopped seeds at its own margin: report with the same one by default.
    if margin is None:
        margin = float(race["margin"]) / 100 if race else DEFAULT_MARGIN
    trials = sweep.trials
    points = point_summary(trials, acc_col=acc_col, varied=sweep.varied)
    tables = ablation_tables(trials, sweep.varied, acc_col=acc_col)
    cost_col, cost_note = cost_column(cost, points)
    rec = recommend(
        trials,
        acc_col=acc_col,
        alpha=alpha,
        margin=margin,
        cost_col=cost_col,
        budget_flops=budget_flops,
        budget_params=budget_params,
        varied=sweep.varied,
    )
    found = diagnose(sweep, spec_text, acc_col, out)
    if rec is not None:
        rec.notes += [n for n in (cost_note, race_note(sweep, race)) if n] + found.lines()
    fronts = {
        c: pareto_front(points, "acc_mean", c)
        for c in dict.fromkeys(("flops", "params", "latency_b1_ms", cost_col))
        if not points.empty and c in points
    }
    plots = (
        make_plots(points, trials, sweep.varied, out, sweep.name, acc_col, cost_col)
        if len(points)
        else {}
    )
    timing = cost_view(trials)
    files = [
        *plots.values(),
        *write_tables(tables, out),
        *write_cost_tables(timing, out),
        *_write_frames(out, trials, points, fronts),
        *found.files,
    ]
    if rec is not None:
        (out / "recommendation.md").write_text(_recommendation_md(sweep, rec), encoding="utf-8")
        files.append(out / "recommendation.md")
    html_path = _write_html(
        out,
        sweep,
        acc_col,
        spec_text,
        tables=tables,
        recommendation=rec,
        plots=plots,
        fronts=fronts,
        trials=trials,
        diagnostics=found,
        cost=timing,
    )
    files.insert(0, html_path)
    if log_to_mlflow:
        _log_to_mlflow(sweep, files, rec)
    return Report(html_path, files, tables, rec, fronts, log_to_mlflow, found)


def _write_html(
    out: Path, sweep: Sweep, acc_col: str, spec_text: str, trials: pd.DataFrame, **parts: Any
) -> Path:
    """report.html: `parts` are html.render's sections (tables, recommendation, plots, ...)."""
    with tempfile.TemporaryDirectory() as figures:
        page = html.render(
            name=sweep.name,
            meta=_meta(sweep, acc_col),
            status_counts=sweep.status_counts(),
            running=sweep.status == "RUNNING",
            trials=trials,
            varied=sweep.varied,
            spec_text=spec_text,
            dataset=sweep.dataset,
            excitation=analyzed_figures(sweep.tracking_uri, trials, Path(figures)),
            **parts,
        )
    html_path = out / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return html_path


def _log_to_mlflow(sweep: Sweep, files: list[Path], rec: Recommendation | None) -> None:
    """The files under the parent run's report/ artifacts, and the answer on the parent run."""
    from mlflow import MlflowClient

    client = MlflowClient(sweep.tracking_uri)
    # Only the files written now: a reused folder may hold stale plots of another run.
    for path in files:
        client.log_artifact(sweep.run_id, str(path), ARTIFACT_DIR)
    publish_summary(client, sweep, rec)
