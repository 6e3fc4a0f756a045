"""Everything a sweep writes to MLflow, exactly as docs/mlflow-schema.md says.

The driver opens one parent run per sweep (`open_parent_run`) and a Tune callback
(`MlflowTrialLogger`) keeps one nested run per trial. The callback finds a trial's run by the
`selab.trial_id` tag rather than by driver memory, so `selab resume` continues the same runs
instead of opening new ones. Only the MLflow client API is used: a SQLite file and an HTTP
tracking server behave the same.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from ray.tune import Callback
from ray.tune.experiment import Trial

from runners.outcome import outcome
from runners.points import TrialSettings, decode_point, fixed_settings, make_point, resolve_trial
from runners.spec import SweepSpec
from runners.store import choose_tracking_uri

PARENT_RUN_TAG = "mlflow.parentRunId"

# Logged every epoch at step = epoch (val_top5 only when the trial reports it).
EPOCH_METRICS = ("val_acc", "val_loss", "train_loss", "val_top5", "images_per_s", "epoch_time_s")


def resolve_tracking_uri(cli_uri: str | None, spec: SweepSpec) -> str:
    return choose_tracking_uri(cli_uri, spec.tracking.uri)


def experiment_name(spec: SweepSpec) -> str:
    return spec.tracking.experiment or spec.name


def now_ms() -> int:
    return int(time.time() * 1000)


# ----------------------------------------------------------------------------- parent run


@dataclass
class ParentRun:
    tracking_uri: str
    experiment_id: str
    run_id: str


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return client.create_experiment(name)


def open_parent_run(
    spec: SweepSpec, spec_yaml: str, tracking_uri: str, storage_dir: str
) -> ParentRun:
    """Create the sweep's parent run (RUNNING) with its tags, params and spec.yaml."""
    client = MlflowClient(tracking_uri)
    experiment_id = get_or_create_experiment(client, experiment_name(spec))
    tags = {
        "selab.role": "sweep",
        "selab.sweep": spec.name,
        "selab.search": spec.search.kind,
        "selab.varied": json.dumps(spec.search.varied_keys),
        "selab.objectives": json.dumps([o.model_dump() for o in spec.search.objectives]),
        "selab.dataset": spec.data.name,
        "selab.storage": storage_dir,
    }
    if spec.description:
        tags["mlflow.note.content"] = spec.description
    run = client.create_run(experiment_id, tags=tags, run_name=spec.name)
    params = _fixed_params(fixed_settings(spec), spec.search.varied_keys)
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    client.log_text(run.info.run_id, spec_yaml, "spec.yaml")
    return ParentRun(tracking_uri, experiment_id, run.info.run_id)


def _fixed_params(settings: TrialSettings, varied: Iterable[str]) -> dict[str, str]:
    """The spec's fixed part: every trial param except the varied keys and the seed."""
    varied = tuple(varied)
    return {
        key: value
        for key, value in settings.flat_params().items()
        if key != "seed" and not any(key == v or key.startswith(v + ".") for v in varied)
    }


def set_parent_status(parent: ParentRun, status: str) -> None:
    client = MlflowClient(parent.tracking_uri)
    if status == "RUNNING":
        client.update_run(parent.run_id, status="RUNNING")
    else:
        client.set_terminated(parent.run_id, status=status)


# ----------------------------------------------------------------------------- trial runs


@dataclass
class _TrialRun:
    run_id: str
    last_step: int = 0  # the last epoch already in MLflow (steps at or below are not re-logged)
    cost_logged: bool = False


class MlflowTrialLogger(Callback):
    """Tune callback: one nested MLflow run per trial, found or created by `selab.trial_id`.

    It runs in the driver; trials never talk to MLflow. Ray pickles it into tuner.pkl (only
    the spec and the parent run), so `Tuner.restore` brings it back logging to the same parent.
    """

    def __init__(self, spec: SweepSpec, parent: ParentRun) -> None:
        self.spec = spec
        self.parent = parent
        self._client: MlflowClient | None = None
        self._runs: dict[str, _TrialRun] = {}
        self._known_before_start: set[str] = set()
        # Seconds spent in MLflow calls per trial id (the overhead benchmark reads it).
        self.logging_seconds: dict[str, float] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "parent": self.parent}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__init__(spec=state["spec"], parent=state["parent"])

    # --- Tune hooks

    def setup(self, **info: Any) -> None:
        """Load the runs an earlier driver of this sweep created (none on a fresh sweep)."""
        self._client = MlflowClient(self.parent.tracking_uri)
        self._runs = {}
        for run in self._child_runs():
            trial_id = run.data.tags.get("selab.trial_id")
            if trial_id:
                logged_cost = "flops" in run.data.metrics
                self._runs[trial_id] = _TrialRun(run.info.run_id, cost_logged=logged_cost)
        self._known_before_start = set(self._runs)

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._known_before_start:
            self._drop_orphans({t.trial_id for t in trials})
            self._known_before_start = set()

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        with self._timed(trial):
            run = self._runs.get(trial.trial_id)
            if run is None:
                self._runs[trial.trial_id] = self._create_run(trial)
                return
            # A resumed or retried trial: same run, back to running.
            self.client.update_run(run.run_id, status="RUNNING")
            self.client.set_tag(run.run_id, "selab.status", "running")
            if run.last_step == 0:
                run.last_step = self._last_logged_epoch(run.run_id)

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        run = self._runs.get(trial.trial_id)
        step = result.get("epoch")
        if run is None or step is None or step <= run.last_step:
            return  # not ours, or already logged by an earlier driver
        with self._timed(trial):
            timestamp = now_ms()
            metrics = [
                Metric(key, float(result[key]), timestamp, int(step))
                for key in EPOCH_METRICS
                if _is_number(result.get(key))
            ]
            if not run.cost_logged:
                metrics += [
                    Metric(key, float(value), timestamp, 0)
                    for key, value in result.items()
                    if _is_cost_metric(key) and _is_number(value)
                ]
                run.cost_logged = True
            self.client.log_batch(run.run_id, metrics=metrics)
            run.last_step = int(step)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        status = outcome(trial.last_result)
        self._end_run(trial, status, RunStatus.to_string(RunStatus.FINISHED))

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        # Fires once the trial has used up its retries (each retry fires on_trial_recover).
        failed = RunStatus.to_string(RunStatus.FAILED)
        self._end_run(trial, "failed", failed, _last_error_line(trial))

    # --- helpers

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.parent.tracking_uri)
        return self._client

    def _child_runs(self) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.parent.experiment_id],
                filter_string=f"tags.`{PARENT_RUN_TAG}` = '{self.parent.run_id}'",
                page_token=token,
            )
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def _drop_orphans(self, live_trial_ids: set[str]) -> None:
        """Delete runs of trials that Ray's saved state does not know: the driver died after
        the trial started but before Ray saved it, so Ray runs that point again under a new
        trial id. Without this the point would have two runs."""
        for trial_id in self._known_before_start - live_trial_ids:
            self.client.delete_run(self._runs.pop(trial_id).run_id)

    def _create_run(self, trial: Trial) -> _TrialRun:
        overrides = decode_point(self.spec, trial.config["point"])
        seed = int(trial.config["seed"])
        point = make_point(self.spec, overrides)
        settings = resolve_trial(self.spec, overrides, seed)
        tags = {
            PARENT_RUN_TAG: self.parent.run_id,
            "selab.role": "trial",
            "selab.sweep": self.spec.name,
            "selab.trial_id": trial.trial_id,
            "selab.point": json.dumps(overrides),
            "selab.label": point.label,
            "selab.baseline": str(point.baseline).lower(),
            "selab.status": "running",
        }
        run = self.client.create_run(
            self.parent.experiment_id, tags=tags, run_name=f"{point.label} seed={seed}"
        )
        params = [Param(k, v) for k, v in settings.flat_params().items()]
        self.client.log_batch(run.info.run_id, params=params)
        return _TrialRun(run.info.run_id)

    def _last_logged_epoch(self, run_id: str) -> int:
        history = self.client.get_metric_history(run_id, "val_acc")
        return max((m.step for m in history), default=0)

    def _end_run(self, trial: Trial, status: str, mlflow_status: str, error: str = "") -> None:
        run = self._runs.get(trial.trial_id)
        if run is None:
            return  # never started (e.g. still pending when the sweep was stopped)
        with self._timed(trial):
            result = trial.last_result or {}
            epochs_done = int(result.get("epoch", 0) or 0)
            timestamp = now_ms()
            metrics = [Metric("epochs_done", float(epochs_done), timestamp, epochs_done)]
            if _is_number(result.get("best_val_acc")) and epochs_done > 0:
                metrics.append(Metric("best_val_acc", float(result["best_val_acc"]), timestamp,
                                      epochs_done))
            tags = [RunTag("selab.status", status)]
            if error:
                tags.append(RunTag("selab.error", error[:5000]))
            self.client.log_batch(run.run_id, metrics=metrics, tags=tags)
            self.client.set_terminated(run.run_id, status=mlflow_status)

    def _timed(self, trial: Trial) -> _Timer:
        return _Timer(self.logging_seconds, trial.trial_id)


class _Timer:
    """Adds the seconds spent inside `with` to totals[key]."""

    def __init__(self, totals: dict[str, float], key: str) -> None:
        self.totals, self.key = totals, key

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.totals[self.key] = self.totals.get(self.key, 0.0) + time.perf_counter() - self.start


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_cost_metric(key: str) -> bool:
    base = key.rsplit(".", 1)[-1]
    return base in ("flops", "params", "se_flops", "se_params") and (
        "." not in key or key.startswith("stage")
    )


def _last_error_line(trial: Trial) -> str:
    """The last line of the trial's error (the exception's type and message)."""
    text = ""
    if trial.error_file and os.path.exists(trial.error_file):
        text = Path(trial.error_file).read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"
