"""What the tests read of a sweep from outside: Ray's saved sweep state, the trials in MLflow."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient


def state_statuses(state_text: str | bytes) -> dict[str, str]:
    """Trial id -> status in one `experiment_state-*.json` that Ray saved (the file's text).

    Raises ValueError or KeyError for a file that Ray is rewriting right now.
    """
    trials = (json.loads(entry[0]) for entry in json.loads(state_text)["trial_data"])
    return {trial["trial_id"]: trial["status"] for trial in trials}


def sweep_runs(uri: str, experiment: str) -> tuple[Any, list[Any]]:
    """(the newest parent run, its trial runs) of an experiment."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("selab.role") == "sweep"]
    assert parents, "no parent run"
    parent = max(parents, key=lambda r: r.info.start_time)
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, trials


def mlflow_trials(uri: str, experiment: str) -> dict[str, tuple[str, bool]]:
    """Trial id -> (selab.status, whether it logged an epoch) of the runs in MLflow so far."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp is not None else []
    return {
        r.data.tags["selab.trial_id"]: (r.data.tags["selab.status"], "val_acc" in r.data.metrics)
        for r in runs
        if r.data.tags.get("selab.role") == "trial"
    }


def wait_for_kill_point(
    saved_statuses: Callable[[], dict[str, str]],
    uri: str,
    experiment: str,
    driver: subprocess.Popen,
    log: Path,
    limit_s: float = 240,
) -> None:
    """Block until a trial has finished, in MLflow and in Ray's saved state
    (`saved_statuses()`: trial id -> status), while another trial is mid-training.

    MLflow hears of a finished trial a moment before Ray saves its state (at most every
    second); a driver killed in between leaves a trial that Ray will run again.
    """
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert driver.poll() is None, (
            f"the driver ended (exit {driver.returncode}) before it could be killed:\n"
            + log.read_text()[-3000:]
        )
        in_mlflow = mlflow_trials(uri, experiment)
        saved = saved_statuses()
        finished = [
            t
            for t, (status, _) in in_mlflow.items()
            if status == "finished" and saved.get(t) == "TERMINATED"
        ]
        training = [
            t for t, (status, logged) in in_mlflow.items() if status == "running" and logged
        ]
        if finished and training:
            return
        time.sleep(0.1)
    pytest.fail("no trial finished while another was training:\n" + log.read_text()[-3000:])


def wait_for_free_cpus(cpus: float, limit_s: float = 60) -> None:
    """Ray ends the trial actors of a driver that died on its own; wait (bounded) until the
    session's Ray has `cpus` free again."""
    import ray

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and ray.available_resources().get("CPU", 0) < cpus:
        time.sleep(0.5)


def runs_by_role(uri: str, experiment: str) -> dict[str, list[Any]]:
    """selab.role ("sweep", "trial") -> the active runs of an experiment with that role."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000) if exp is not None else []
    roles: dict[str, list[Any]] = {}
    for run in runs:
        roles.setdefault(run.data.tags.get("selab.role", ""), []).append(run)
    return roles
