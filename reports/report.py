"""One report per sweep: files in a folder, also logged under ``report/`` of the parent run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import html
from .frame import Sweep
from .pareto import pareto_front
from .plots import make_plots
from .points import point_summary
from .recommend import Recommendation, recommend
from .tables import ablation_tables, write_tables

ARTIFACT_DIR = "report"


@dataclass
class Report:
    html_path: Path
    files: list[Path]
    tables: dict[str, pd.DataFrame]
    recommendation: Recommendation | None
    fronts: dict[str, pd.DataFrame] = field(default_factory=dict)
    logged: bool = False


def _csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    # Lists and dicts go to CSV as JSON, not as Python reprs.
    out = df.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, (list, dict))).any():
            out[col] = out[col].map(lambda v: json.dumps(v, default=str)
                                    if isinstance(v, (list, dict)) else v)
    return out


def write_report(
    sweep: Sweep,
    out_dir: str | Path,
    budget_flops: float | None = None,
    budget_params: float | None = None,
    log_to_mlflow: bool = True,
    acc_col: str = "val_acc",
    alpha: float = 0.05,
) -> Report:
    """Write report.html, PNGs and CSV/Markdown tables to ``out_dir``; log them to MLflow.

    Works on whatever has finished: a running or partly failed sweep gets a report of its
    finished trials, with the others listed and counted.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = sweep.trials
    points = point_summary(trials, acc_col=acc_col, varied=sweep.varied)
    tables = ablation_tables(trials, sweep.varied, acc_col=acc_col)
    rec = recommend(trials, acc_col=acc_col, alpha=alpha, budget_flops=budget_flops,
                    budget_params=budget_params, varied=sweep.varied)
    fronts = {}
    if not points.empty:
        for cost in ("flops", "params"):
            if cost in points:
                fronts[cost] = pareto_front(points, "acc_mean", cost)

    files: list[Path] = []
    plots = make_plots(points, trials, sweep.varied, out, sweep.name, acc_col) if len(
        points) else {}
    files += list(plots.values())
    files += write_tables(tables, out)
    for fname, frame in (("trials.csv", trials), ("points.csv", points)):
        _csv_safe(frame).to_csv(out / fname, index=False)
        files.append(out / fname)
    for cost, front in fronts.items():
        _csv_safe(front).to_csv(out / f"pareto_{cost}.csv", index=False)
        files.append(out / f"pareto_{cost}.csv")
    if rec is not None:
        lines = [f"# Recommendation for {sweep.name}", "", rec.text, ""]
        if rec.budget is not None:
            lines += [f"Budget: {rec.budget.text}", ""]
        if rec.baseline_note:
            lines += [rec.baseline_note, ""]
        lines += [f"Rule: {rec.rule}", ""]
        (out / "recommendation.md").write_text("\n".join(lines), encoding="utf-8")
        files.append(out / "recommendation.md")

    meta = {
        "sweep": sweep.name,
        "parent run": f"{sweep.run_id} (experiment {sweep.experiment_name!r}, "
                      f"status {sweep.status})",
        "tracking URI": sweep.tracking_uri,
        "search": sweep.search,
        "dataset": sweep.dataset,
        "varied": ", ".join(sweep.varied) or "—",
        "objectives": ", ".join(f"{o.get('metric')} ({o.get('mode')})" for o in sweep.objectives
                                if isinstance(o, dict)) or "—",
        "accuracy used": f"{acc_col} (last logged epoch)" if acc_col == "val_acc" else acc_col,
    }
    page = html.render(
        name=sweep.name, meta=meta, status_counts=sweep.status_counts(),
        running=sweep.status == "RUNNING", tables=tables, recommendation=rec, plots=plots,
        fronts=fronts, trials=trials, varied=sweep.varied, spec_text=sweep.spec_text(),
        dataset=sweep.dataset,
    )
    html_path = out / "report.html"
    html_path.write_text(page, encoding="utf-8")
    files.insert(0, html_path)

    logged = False
    if log_to_mlflow:
        from mlflow import MlflowClient

        client = MlflowClient(sweep.tracking_uri)
        # Only the files written now: a reused folder may hold stale plots of another run.
        for path in files:
            client.log_artifact(sweep.run_id, str(path), ARTIFACT_DIR)
        logged = True
    return Report(html_path, files, tables, rec, fronts, logged)
