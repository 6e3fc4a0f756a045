"""A tracking server that goes away for longer than the MLflow client's retry budget.

A real `mlflow server` subprocess (SQLite backend, artifacts served by the server) is killed
as the first trial's run is made (by a proxy in front of it that kills it at that request) and
restarted later on the same port. The sweep trains on while it is away, the driver says so
once, and MLflow ends complete: every epoch once. When the outage outlives the driver,
`selab sync` completes MLflow afterwards. A server that dies in the middle of a run's creation
(or a reply that is lost) leaves one complete run per trial, not a duplicate or a run without
parameters.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from runners.tracking.journal import JOURNAL_FILE, SENT_FILE, read_events
from tests.support import reap, selab, start_selab, wait_until, without_worker_exits, write_spec
from tests.support.mlflow_proxy import FaultProxy
from tests.support.mlflow_server import MlflowServer, retry_budget_s

AWAY = "does not answer"
BACK = "MLflow is back"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def events(folder: Path, kind: str) -> list[dict]:
    return [e for e, _ in read_events(folder / JOURNAL_FILE) if e["kind"] == kind]


def start_driver(
    tmp_path: Path,
    spec: dict,
    server: MlflowServer,
    ray_address: str,
    uri: str | None = None,
    **env: str,
) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{spec['name']}.log"
    run = [
        "run",
        write_spec(tmp_path, spec),
        "--address",
        ray_address,
        "--tracking-uri",
        uri or server.uri,
        "--storage",
        str(tmp_path / "runs"),
    ]
    return start_selab(run, cwd=tmp_path, log=log, env={**os.environ, **env}), log


def assert_mlflow_complete(uri: str, name: str, trials: int, epochs: int, sweep_runs) -> None:
    client = MlflowClient(uri)
    parent, runs = sweep_runs(uri, name)
    assert parent.info.status == "FINISHED"
    assert len(runs) == trials and len({r.data.tags["selab.trial_id"] for r in runs}) == trials
    for run in runs:
        assert run.data.tags["selab.status"] == "finished" and run.info.status == "FINISHED"
        for key in ("val_acc", "train_loss"):
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, epochs + 1)), (key, steps)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "epochs_done")] == [
            epochs
        ]
        assert run.data.params["seed"] == "0"


@pytest.mark.timeout(400)
def test_the_sweep_trains_through_a_tracking_outage(
    ray_address: str, server: MlflowServer, tmp_path: Path, tiny_spec, sweep_runs
) -> None:
    """The server dies as the first trial's run is made and is restarted only once every trial
    has ended: the training happens while it is away."""
    spec = tiny_spec(name="outage", train={"epochs": 4})
    folder = tmp_path / "runs" / "outage"
    # Killed at the first trial event the writer sends, long before an epoch ends (killed at
    # the first logged epoch, a lagging writer could find every epoch already trained).
    proxy = FaultProxy(server, trial_created, "kill before").start()
    driver, log = start_driver(tmp_path, spec, server, ray_address, uri=proxy.uri)
    try:
        wait_until(proxy.fired.is_set, driver, log)
        killed_at, results_before = time.monotonic(), len(events(folder, "result"))
        wait_until(lambda: len(events(folder, "trial_end")) == 2, driver, log)
        # Longer away than one MLflow call retries, and the trials went on meanwhile.
        time.sleep(max(0.0, retry_budget_s() + 1 - (time.monotonic() - killed_at)))
        results = len(events(folder, "result"))
        assert results == 8 > results_before, (results_before, results, log.read_text()[-3000:])
        server.start()
        code = driver.wait(timeout=120)
    finally:
        reap(driver)
        proxy.stop()
    output = without_worker_exits(log.read_text())
    assert code == 0, output[-3000:]
    assert output.count(AWAY) == 1 and output.count(BACK) == 1, output[-3000:]
    assert "Traceback" not in output
    assert_mlflow_complete(server.uri, "outage", trials=2, epochs=4, sweep_runs=sweep_runs)


@pytest.mark.timeout(300)
def test_selab_sync_completes_mlflow_after_an_outage_that_outlived_the_driver(
    ray_address: str, server: MlflowServer, tmp_path: Path, tiny_spec, sweep_runs
) -> None:
    spec = tiny_spec(name="outlived")
    folder = tmp_path / "runs" / "outlived"
    # The driver waits 2 s at the end for the server, then leaves the rest to `selab sync`.
    driver, log = start_driver(tmp_path, spec, server, ray_address, SELAB_MLFLOW_FLUSH_S="2")
    try:
        wait_until(lambda: events(folder, "trial_start"), driver, log)
        server.kill()
        code = driver.wait(timeout=180)
    finally:
        reap(driver)
    output = log.read_text()
    assert code == 0, output[-3000:]  # every trial trained: the results wait in the journal
    assert "sweep outlived: 2 finished" in output
    assert "selab sync outlived" in output
    server.start()
    sync = selab(
        ["sync", "outlived", "--storage", str(tmp_path / "runs")], cwd=tmp_path, timeout=120
    )
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "MLflow is up to date" in sync.stdout
    assert_mlflow_complete(server.uri, "outlived", trials=2, epochs=2, sweep_runs=sweep_runs)
    # Sending the whole journal again changes nothing: each epoch stays logged once.
    (folder / SENT_FILE).unlink()
    again = selab(
        ["sync", "outlived", "--storage", str(tmp_path / "runs")], cwd=tmp_path, timeout=120
    )
    assert again.returncode == 0
    assert_mlflow_complete(server.uri, "outlived", trials=2, epochs=2, sweep_runs=sweep_runs)


def sweep_created(path: str, body: bytes) -> bool:
    return path.endswith("/runs/create") and b"selab.storage" in body  # a parent-run tag


def trial_created(path: str, body: bytes) -> bool:
    return path.endswith("/runs/create") and b"selab.trial_id" in body


def trial_params_logged(path: str, body: bytes) -> bool:
    # Varied keys are logged on the trial runs only, not on the parent.
    return path.endswith("/runs/log-batch") and b"arch.se.reduction" in body


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("match", "fault"),
    [
        (sweep_created, "drop reply"),  # MLflow's HTTP client sends the create again
        (trial_created, "drop reply"),
        (trial_created, "kill after"),  # the run exists; the writer never heard of it
        (trial_params_logged, "kill before"),  # the run exists without its parameters
    ],
    ids=[
        "sweep create reply lost",
        "trial create reply lost",
        "server died after create",
        "server died before parameters",
    ],
)
def test_a_run_whose_creation_a_fault_cut_short_is_completed_once(
    match, fault: str, ray_address: str, server: MlflowServer, tmp_path: Path, tiny_spec, sweep_runs
) -> None:
    proxy = FaultProxy(server, match, fault).start()
    driver, log = start_driver(tmp_path, tiny_spec(name="cut"), server, ray_address, uri=proxy.uri)
    try:
        wait_until(proxy.fired.is_set, driver, log)
        if fault != "drop reply":
            time.sleep(retry_budget_s() + 1)  # longer away than one MLflow call retries
            server.start()
        code = driver.wait(timeout=180)
    finally:
        reap(driver)
        proxy.stop()
    output = log.read_text()
    assert code == 0, output[-3000:]
    outages = 0 if fault == "drop reply" else 1
    assert output.count(AWAY) == outages and output.count(BACK) == outages, output[-3000:]
    assert_mlflow_complete(server.uri, "cut", trials=2, epochs=2, sweep_runs=sweep_runs)
    if fault == "drop reply":  # the client did create the run twice; one was deleted
        assert len(deleted_runs(server.uri, "cut")) == 1


def deleted_runs(uri: str, experiment: str) -> list:
    from mlflow.entities import ViewType

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], run_view_type=ViewType.DELETED_ONLY)
