"""Load a sweep from MLflow into one tidy frame: one row per trial, nothing dropped.

Follows docs/mlflow-schema.md. Reports read MLflow only, so a sweep that is still running, or
whose driver died, can be reported on what it has logged so far.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import metrics as m

FINISHED = "finished"
# Statuses a trial can have (tag selab.status); only "finished" enters means, tests and fronts.
STATUSES = ("finished", "stopped_early", "diverged", "failed", "running")
SEED_KEY = "seed"
# Runs per bulk history query, and the most epochs a run is expected to log.
_BULK_RUNS, _MAX_STEPS = 200, 100_000
_PROGRESS_BAR_VAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class SweepNotFound(LookupError):
    """No parent run for that sweep name; ``available`` lists the sweep names that exist."""

    def __init__(self, name: str, tracking_uri: str, available: list[str]):
        self.name, self.tracking_uri, self.available = name, tracking_uri, available
        listing = ", ".join(available) if available else "none"
        super().__init__(
            f"no sweep named {name!r} in {tracking_uri} (no parent run with tag "
            f"selab.sweep={name!r}); sweeps there: {listing}"
        )


@dataclass
class Sweep:
    """A sweep's parent run and its trials frame (see :func:`trials_frame` for the columns)."""

    name: str
    tracking_uri: str
    run_id: str
    experiment_id: str
    experiment_name: str
    tags: dict[str, str]
    params: dict[str, str]
    status: str  # MLflow status of the parent run: RUNNING, FINISHED, FAILED ...
    start_time: pd.Timestamp | None
    trials: pd.DataFrame
    varied: list[str] = field(default_factory=list)
    objectives: list[dict[str, Any]] = field(default_factory=list)

    @property
    def search(self) -> str:
        return self.tags.get("selab.search", "?")

    @property
    def dataset(self) -> str:
        return self.tags.get("selab.dataset") or self.params.get("data.name", "?")

    def status_counts(self) -> dict[str, int]:
        counts = self.trials["status"].value_counts() if len(self.trials) else pd.Series()
        return {s: int(counts.get(s, 0)) for s in STATUSES if counts.get(s, 0)} | {
            str(s): int(c) for s, c in counts.items() if s not in STATUSES
        }

    def spec_text(self) -> str | None:
        """The spec that ran (artifact ``spec.yaml`` of the parent run), or None if absent."""
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri)
        with tempfile.TemporaryDirectory() as tmp, _no_artifact_progress_bar():
            try:
                path = client.download_artifacts(self.run_id, "spec.yaml", tmp)
            except Exception:  # noqa: BLE001 - any store error means "no spec to show"
                return None
            if not os.path.isfile(path):
                return None
            with open(path, encoding="utf-8") as fh:
                return fh.read()


@contextlib.contextmanager
def _no_artifact_progress_bar() -> Iterator[None]:
    """MLflow draws a tqdm bar for every artifact download, even of one small file; reading
    spec.yaml is an internal detail of a report, so keep that bar out of the user's terminal."""
    old = os.environ.get(_PROGRESS_BAR_VAR)
    os.environ[_PROGRESS_BAR_VAR] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_PROGRESS_BAR_VAR, None)
        else:
            os.environ[_PROGRESS_BAR_VAR] = old


def coerce(value: Any) -> Any:
    """MLflow params are strings; give numbers and booleans back their type.

    Lists (a per-stage reduction or stage mask in ``selab.point``) become the comma-joined
    string the params use (``4,8,16,16``, ``1,1,0,1``) so point values and params compare equal.
    """
    if isinstance(value, (list, tuple)):
        # Stage masks as the params write them: 1,1,0,1 (not True,True,False,True).
        return ",".join(str(int(v)) if isinstance(v, bool) else str(coerce(v)) for v in value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return int(value) if isinstance(value, float) and value.is_integer() else value
    text = str(value).strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "e" not in low else number


def point_key(point: dict[str, Any]) -> str:
    """Canonical id of a configuration: its overrides (never the seed), as sorted JSON."""
    clean = {k: coerce(v) for k, v in point.items() if k != SEED_KEY}
    return json.dumps(clean, sort_keys=True, default=str)


def parse_json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _ts(ms: int | None) -> pd.Timestamp | None:
    return pd.Timestamp(ms, unit="ms", tz="UTC") if ms else None


def _histories(client: Any, run_ids: list[str], key: str) -> dict[str, list[Any]]:
    """Every logged value of ``key`` for each run, in one query per chunk of runs where the
    store can (MLflow's SQL stores), else one query per run."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    bulk = getattr(store, "get_metric_history_bulk", None)
    out: dict[str, list[Any]] = {run_id: [] for run_id in run_ids}
    if bulk is None:
        return {run_id: client.get_metric_history(run_id, key) for run_id in run_ids}
    for start in range(0, len(run_ids), _BULK_RUNS):
        chunk = run_ids[start : start + _BULK_RUNS]
        for item in bulk(chunk, key, max_results=_BULK_RUNS * _MAX_STEPS):
            out[item.run_id].append(item)  # a Metric with its run_id
    return out


def _history_summary(client: Any, runs: list[Any]) -> dict[str, dict[str, float]]:
    """Per run: ``best_<key>`` and ``epochs_logged`` from the accuracy histories, and the
    median throughput over the epochs after the first (the first carries warm-up)."""
    ids = [run.info.run_id for run in runs]
    out: dict[str, dict[str, float]] = {run_id: {} for run_id in ids}
    for key in (*m.HISTORY_MAX, *m.THROUGHPUT):
        wanted = [run.info.run_id for run in runs if key in run.data.metrics]
        for run_id, hist in _histories(client, wanted, key).items():
            hist = sorted(hist, key=lambda h: h.step)
            vals = [h.value for h in hist if math.isfinite(h.value)]
            if key in m.THROUGHPUT:
                vals = vals[1:] if len(vals) > 1 else vals
                if vals:
                    out[run_id][key] = float(pd.Series(vals).median())
                continue
            if vals:
                out[run_id][f"best_{key}"] = max(vals)
            if key == m.VAL_ACC and hist:
                out[run_id]["epochs_logged"] = max(h.step for h in hist)
    return out


def _search_children(client: Any, parent_run: Any) -> list[Any]:
    filt = f"tags.`mlflow.parentRunId` = '{parent_run.info.run_id}'"
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [parent_run.info.experiment_id], filt, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return [r for r in runs if r.data.tags.get("selab.role", "trial") == "trial"]


def _trial_row(run: Any, varied: list[str], history: dict[str, float]) -> dict[str, Any]:
    tags, metrics = run.data.tags, dict(run.data.metrics)
    point = parse_json(tags.get("selab.point"), {})
    point = point if isinstance(point, dict) else {}
    params = {k: coerce(v) for k, v in run.data.params.items()}
    row: dict[str, Any] = {
        "run_id": run.info.run_id,
        "trial_id": tags.get("selab.trial_id", run.info.run_name),
        "label": tags.get("selab.label") or point_key(point),
        "status": tags.get("selab.status", "running").strip().lower(),
        "mlflow_status": run.info.status,
        "baseline": str(tags.get("selab.baseline", "false")).lower() == "true",
        "error": tags.get("selab.error"),
        "point": point,
        "point_key": point_key(point),
        "seed": params.get(SEED_KEY),
        "start_time": _ts(run.info.start_time),
        "end_time": _ts(run.info.end_time),
    }
    for key in varied:
        # The point holds the override; the full config holds it too (and the default
        # for trials that do not override it, such as the baseline in an r sweep).
        row[key] = coerce(point[key]) if key in point else params.get(key)
    # Metrics logged under a best_ name by the trainer win over our own max of history.
    for key, value in history.items():
        if key.startswith("best_"):
            metrics.setdefault(key, value)
        else:
            metrics[key] = value
    if m.EPOCHS_DONE not in metrics and "epochs_logged" in metrics:
        metrics[m.EPOCHS_DONE] = metrics["epochs_logged"]
    metrics.pop("epochs_logged", None)
    return row | metrics | {k: v for k, v in params.items() if k not in row and k not in metrics}


_LEAD = ["run_id", "trial_id", "label", "status", "finished", "baseline", "seed"]
_METRIC_ORDER = [
    m.VAL_ACC,
    m.BEST_VAL_ACC,
    m.TEST_ACC,
    m.VAL_TOP5,
    m.BEST_VAL_TOP5,
    m.VAL_LOSS,
    m.TRAIN_LOSS,
    m.EPOCHS_DONE,
    m.IMAGES_PER_S,
    m.EPOCH_TIME_S,
    *m.COSTS,
]
_TAIL = ["error", "point", "point_key", "mlflow_status", "start_time", "end_time"]


def _column_order(df: pd.DataFrame, varied: list[str]) -> list[str]:
    stage_cols = sorted(
        (c for c in df.columns if c.startswith("stage") and "." in c),
        key=lambda c: (int("".join(ch for ch in c.split(".")[0] if ch.isdigit()) or 0), c),
    )
    lead = _LEAD + varied + _METRIC_ORDER
    known = set(lead + stage_cols + _TAIL)
    rest = sorted(c for c in df.columns if c not in known)
    order = [c for c in lead if c in df.columns] + stage_cols + rest + _TAIL
    return list(dict.fromkeys(order))


def trials_frame(client: Any, parent_run: Any, varied: list[str]) -> pd.DataFrame:
    """One row per trial run nested under ``parent_run``.

    Columns: ``run_id``, ``trial_id``, ``label``, ``status`` (selab status), ``finished``,
    ``baseline``, ``error``, ``point`` (dict of overrides), ``point_key`` (config id without
    seed), ``seed``, one column per varied key, then metrics: ``val_acc``/``test_acc``/
    ``val_top5``/``val_loss``/``train_loss`` (last logged epoch), ``best_val_acc``/
    ``best_val_top5``, ``epochs_done``, ``images_per_s`` and ``epoch_time_s`` (median over
    epochs after the first), ``flops``, ``params``, ``se_flops``, ``se_params``, ``stage{i}.*``;
    then the rest of the flattened config (``arch.*``, ``train.*``, ``data.*``) with numbers
    typed. Histories are read in bulk, not one query per run.
    """
    runs = _search_children(client, parent_run)
    history = _history_summary(client, runs)
    df = pd.DataFrame([_trial_row(run, varied, history[run.info.run_id]) for run in runs])
    if df.empty:
        return pd.DataFrame(columns=[*_LEAD, *varied, "point", "point_key"])
    df["finished"] = df["status"] == FINISHED
    df = df[_column_order(df, varied)]
    return df.sort_values(["start_time", "trial_id"], na_position="last").reset_index(drop=True)


def list_sweeps(tracking_uri: str) -> list[str]:
    """Names of all sweeps (parent runs tagged selab.role=sweep) in the store."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    if not exp_ids:
        return []
    runs = client.search_runs(exp_ids, "tags.`selab.role` = 'sweep'", max_results=5000)
    return sorted({r.data.tags.get("selab.sweep", r.info.run_name) for r in runs})


def _find_parent(client: Any, tracking_uri: str, name: str, experiment: str | None) -> Any:
    quoted = name.replace("'", "\\'")
    filt = f"tags.`selab.sweep` = '{quoted}' and tags.`selab.role` = 'sweep'"
    order = ["attributes.start_time DESC"]
    # The sweep's own experiment first (cheap, and the documented place), then everywhere.
    exp = client.get_experiment_by_name(experiment or name)
    if exp is not None:
        runs = client.search_runs([exp.experiment_id], filt, max_results=1, order_by=order)
        if runs:
            return runs[0]
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exp_ids, filt, max_results=1, order_by=order) if exp_ids else []
    if runs:
        return runs[0]
    raise SweepNotFound(name, tracking_uri, list_sweeps(tracking_uri))


def load_sweep(tracking_uri: str, name: str, experiment: str | None = None) -> Sweep:
    """Newest parent run tagged ``selab.sweep=name`` and its trials.

    Looks in the experiment ``experiment`` (default: named like the sweep) first, then in all
    experiments. Raises :class:`SweepNotFound` listing the sweeps that exist.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    parent = _find_parent(client, tracking_uri, name, experiment)
    tags = dict(parent.data.tags)
    varied = parse_json(tags.get("selab.varied"), [])
    objectives = parse_json(tags.get("selab.objectives"), [])
    exp = client.get_experiment(parent.info.experiment_id)
    return Sweep(
        name=name,
        tracking_uri=tracking_uri,
        run_id=parent.info.run_id,
        experiment_id=parent.info.experiment_id,
        experiment_name=exp.name if exp else "?",
        tags=tags,
        params=dict(parent.data.params),
        status=parent.info.status,
        start_time=_ts(parent.info.start_time),
        trials=trials_frame(client, parent, list(varied)),
        varied=[str(v) for v in varied] if isinstance(varied, list) else [],
        objectives=objectives if isinstance(objectives, list) else [],
    )
