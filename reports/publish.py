"""The answer where users browse results: the sweep's parent run in MLflow.

- the parent run's description (`mlflow.note.content`) is the recommendation in Markdown: the
  verdict, its decision table and every claim, as the terminal and report.html print them;
- tags `selab.pick`, `selab.best`, `selab.decided`, `selab.verdict` (the one-sentence verdict);
- metrics `sweep.*`: the best and picked configurations' mean accuracy with their 95% interval
  and seeds, and the trials by status;
- a logged table `report/configurations.json` (one row per configuration: seeds, accuracy
  and interval, costs, verdict and p-values), shown as a table by MLflow's artifact view and
  replaced, not appended to, when the report runs again;
- a shared view of the sweep's experiment (experiment tag `mlflow.sharedViewState.selab`): the
  runs table with the trials ordered by accuracy and their accuracy, FLOPs, varied knobs (the
  trial runs' tags `selab.knob.*`) and status as columns (the run names hold label and seed).
  :func:`view_url` is its address; the parent run's own page (:func:`run_url`) shows the
  description, the ``sweep.*`` metrics and the table.
"""

from __future__ import annotations

import json
import math
import posixpath
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import metrics as m
from .frame import Sweep
from .recommend import Recommendation

VIEW_KEY = "selab"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# MLflow 3 opens an experiment on its GenAI overview; training runs are under this view.
RUNS_VIEW = "#/experiments/{experiment_id}/runs?workflowType=machine_learning"
MAX_TAG = 8000  # MLflow's limit on a tag value, the description's too
METRIC_PREFIX = "sweep."
TABLE_DIR, TABLE_FILE = "report", "configurations.json"
KNOB_TAG_PREFIX = "selab.knob."  # a trial run's varied knob, short (docs/mlflow-schema.md)
STATUS_METRICS = ("finished", "failed", "stopped_early", "diverged", "running")


@dataclass(frozen=True)
class Published:
    """What :func:`publish_summary` wrote to the parent run."""

    tags: dict[str, str]
    metrics: dict[str, float]
    table: str | None  # artifact path of the per-configuration table
    view_tag: str


def summary_metrics(
    rec: Recommendation | None, status_counts: Mapping[str, int]
) -> dict[str, float]:
    """``sweep.*`` metrics of the parent run (accuracies as fractions, like the trials')."""
    out = {f"{METRIC_PREFIX}trials_{s}": float(status_counts.get(s, 0)) for s in STATUS_METRICS}
    out[f"{METRIC_PREFIX}trials_total"] = float(sum(status_counts.values()))
    if rec is None:
        return out
    for role, pick in (("best", rec.best), ("pick", rec.pick)):
        out.update(
            {
                f"{METRIC_PREFIX}{role}_acc": pick.acc_mean,
                f"{METRIC_PREFIX}{role}_acc_ci_low": pick.acc_low,
                f"{METRIC_PREFIX}{role}_acc_ci_high": pick.acc_high,
                f"{METRIC_PREFIX}{role}_seeds": float(pick.n),
            }
        )
    out[f"{METRIC_PREFIX}decided"] = float(rec.decided)
    out[f"{METRIC_PREFIX}configurations"] = float(int((rec.candidates["n"] > 0).sum()))
    return {k: v for k, v in out.items() if math.isfinite(v)}


def summary_tags(rec: Recommendation | None) -> dict[str, str]:
    """The pick and the verdict as tags; the description starts with the verdict, which is
    what MLflow's runs table shows of it."""
    if rec is None:
        return {"selab.verdict": "no recommendation: no SE configuration has a finished trial"}
    # The verdict as plain text on the first line: the runs table's Description column shows
    # that line as it is (Markdown marks and all).
    description = rec.as_markdown().replace(f"**{rec.text}**", rec.text, 1)
    return {
        "selab.pick": rec.pick.label,
        "selab.best": rec.best.label,
        "selab.decided": str(rec.decided).lower(),
        "selab.verdict": rec.text[:MAX_TAG],
        "mlflow.note.content": clip(description, MAX_TAG),
    }


def clip(text: str, limit: int) -> str:
    """``text`` cut at the last whole line that fits ``limit`` characters, saying where the
    rest is."""
    if len(text) <= limit:
        return text
    tail = "\n\n(cut to fit MLflow's tag limit: report/recommendation.md has all of it)"
    head = text[: limit - len(tail)]
    end = head.rfind("\n")
    return (head[:end] if end > 0 else head) + tail


def configurations_table(rec: Recommendation) -> pd.DataFrame:
    """One row per finished configuration, numbers as numbers (accuracies in %)."""
    c = rec.candidates[rec.candidates["n"] > 0]
    cols = {
        "label": "configuration",
        "n": "seeds",
        "acc_mean": "acc_mean_pct",
        "acc_ci_low": "acc_ci_low_pct",
        "acc_ci_high": "acc_ci_high_pct",
        "flops": "flops",
        "params": "params",
        "vs_best": "vs_best",
        "p_equivalent_holm": "p_tost_holm",
        "p_worse_holm": "p_worse_adjusted",
        "beaten_by": "worse_than",
    }
    out = c[[k for k in cols if k in c]].rename(columns=cols).copy()
    for col in ("acc_mean_pct", "acc_ci_low_pct", "acc_ci_high_pct"):
        out[col] = (100 * out[col]).round(3)
    out["picked"] = c["point_key"].eq(rec.pick.point_key).to_numpy()
    return out.reset_index(drop=True)


def log_table(client: Any, run_id: str, table: pd.DataFrame, artifact_file: str) -> None:
    """What ``MlflowClient.log_table`` does (a JSON table the UI shows, registered in the
    run's ``mlflow.loggedArtifacts`` tag), except that a report run again replaces the table
    instead of appending its rows to the old ones."""
    from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

    folder, name = posixpath.split(artifact_file)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        table.to_json(path, orient="split", index=False, date_format="iso")
        client.log_artifact(run_id, str(path), folder or None)
    logged = json.loads(client.get_run(run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
    entry = {"path": artifact_file, "type": "table"}
    if entry not in logged:
        client.set_tag(run_id, MLFLOW_LOGGED_ARTIFACTS, json.dumps([*logged, entry]))


def knob_columns(client: Any, sweep: Sweep) -> list[str]:
    """The view's columns for the varied knobs: the trial runs' tags ``selab.knob.*`` (short,
    and "—" where a trial does not have the knob, as the no-SE baseline has no r), else, for a
    sweep of an earlier selab, the params of the varied keys."""
    if not sweep.trials.empty:
        tags = client.get_run(str(sweep.trials["run_id"].iloc[0])).data.tags
        knobs = sorted(k for k in tags if k.startswith(KNOB_TAG_PREFIX))
        if knobs:
            return [f"tags.`{k}`" for k in knobs]
    return [f"params.`{k}`" for k in sweep.varied if k != "arch.se.enabled"]


def view_state(sweep: Sweep, knobs: list[str] | None = None) -> dict[str, Any]:
    """The runs table MLflow's UI shows for :func:`view_url`: the trials ordered by accuracy
    with the knobs that vary (``knobs``: column keys, :func:`knob_columns`) and the numbers
    that matter as columns, the parent run's verdict as its description. Column keys as
    MLflow's UI writes them (``params.`name```)."""
    if knobs is None:
        knobs = [f"params.`{k}`" for k in sweep.varied if k != "arch.se.enabled"]
    metric = m.selection_metric(sweep.objectives)
    # In this order (columnOrder), and no wide attribute column (Models, Description) nor the
    # seed (the run name has it): beside the run names, the accuracy and the knobs fit a
    # laptop's window with MLflow's assistant panel open.
    columns = list(
        dict.fromkeys(
            [*(f"metrics.`{k}`" for k in (metric, "flops")), *knobs, "tags.`selab.status`"]
        )
    )
    return {
        "searchFilter": "",
        "orderByKey": f"metrics.`{metric}`",
        "orderByAsc": False,
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "selectedColumns": columns,
        "columnOrder": columns,
        "runsExpanded": {sweep.run_id: True},
        "runsPinned": [sweep.run_id],
        "runsHidden": [],
        "runsHiddenMode": "SHOW_ALL",
    }


def view_url(address: str, experiment_id: str) -> str:
    """The runs page of the sweep's experiment in the view :func:`publish_summary` saved."""
    return (
        address.rstrip("/")
        + "/"
        + RUNS_VIEW.format(experiment_id=experiment_id)
        + f"&viewStateShareKey={VIEW_KEY}"
    )


def run_url(address: str, experiment_id: str, run_id: str) -> str:
    """The parent run's page: the answer (description), its metrics and the report files."""
    return (
        address.rstrip("/")
        + f"/#/experiments/{experiment_id}/runs/{run_id}"
        + "?workflowType=machine_learning"
    )  # MLflow 3 would open its GenAI side


def publish_summary(client: Any, sweep: Sweep, rec: Recommendation | None) -> Published:
    """Write the answer to the sweep's parent run and its experiment (see the module)."""
    from mlflow.entities import Metric, RunTag

    tags = summary_tags(rec)
    values = summary_metrics(rec, sweep.status_counts())
    now = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
    client.log_batch(
        sweep.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in values.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    table = None
    if rec is not None:
        table = f"{TABLE_DIR}/{TABLE_FILE}"
        log_table(client, sweep.run_id, configurations_table(rec), table)
    client.set_experiment_tag(
        sweep.experiment_id, VIEW_TAG, json.dumps(view_state(sweep, knob_columns(client, sweep)))
    )
    return Published(tags, values, table, VIEW_TAG)


def publish_answer(
    sweep: Sweep, margin: float, alpha: float | None = None
) -> Recommendation | None:
    """The answer without the report's files: the recommendation at ``margin`` (accuracy as a
    fraction; `selab report` uses the raced sweep's own, else 1 point), published to the parent
    run and its experiment. What `selab run` does when its sweep ends, so that the MLflow UI
    has the answer before any report is written; `selab report` later writes the same answer
    with the rest."""
    from mlflow import MlflowClient

    from .decide import DEFAULT_ALPHA
    from .recommend import recommend

    rec = recommend(sweep, alpha=alpha or DEFAULT_ALPHA, margin=margin)
    publish_summary(MlflowClient(sweep.tracking_uri), sweep, rec)
    return rec
