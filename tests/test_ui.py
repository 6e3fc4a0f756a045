"""`selab ui` as a user runs it: a real MLflow server on 127.0.0.1, stopped by killing its id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from runners.cli.commands.ui import port_in_use
from tests.support import free_port, selab, start_selab
from tests.support.stores import sqlite_store


def make_store(tmp_path: Path, uri: str | None = None) -> tuple[str, str]:
    """A SQLite store (``uri``, else a new one in tmp_path) with one sweep's parent run;
    returns (uri, experiment id)."""
    uri = uri or f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("demo", artifact_location=str(tmp_path / "art"))
    run = client.create_run(experiment_id, tags={"selab.role": "sweep", "selab.sweep": "demo"})
    client.set_terminated(run.info.run_id)
    return uri, experiment_id


def wait_for_page(url: str, proc: subprocess.Popen, seconds: float = 90) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"selab ui exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode("utf-8", "replace")
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def test_ui_serves_the_store_prints_the_runs_page_and_dies_with_its_process(tmp_path):
    uri, experiment_id = make_store(tmp_path)
    port = free_port()
    log = tmp_path / "ui.log"
    proc = start_selab(
        ["ui", "--tracking-uri", uri, "--port", str(port)],
        cwd=tmp_path,
        log=log,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        page = wait_for_page(f"http://127.0.0.1:{port}/", proc)
        assert "mlflow" in page.lower()
        runs_view = (
            f"http://127.0.0.1:{port}/#/experiments/{experiment_id}"
            "/runs?workflowType=machine_learning"
        )
        # no answer published on this sweep yet: its runs page, and how to publish it
        assert (
            f"sweep demo: no answer published yet (run `selab report demo`); its runs: {runs_view}"
        ) in log.read_text()
        # The experiment the page points at is served by this server.
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id="
        assert '"demo"' in wait_for_page(api + experiment_id, proc)
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # the id selab ui was started with
        proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while port_in_use(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not port_in_use(port), "the MLflow server outlived selab ui's process"


def test_ui_refuses_a_port_in_use_and_a_server_uri(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = selab(
            ["ui", "--port", str(port), "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}"],
            cwd=tmp_path,
            timeout=60,
        )
    assert result.returncode == 2
    assert "--port" in result.stderr and "Traceback" not in result.stderr
    result = selab(["ui", "--tracking-uri", "http://127.0.0.1:1"], cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "--tracking-uri" in result.stderr


@pytest.mark.parametrize("flag", ["--port", "--sweep", "--tracking-uri"])
def test_ui_help_lists_its_flags(flag, tmp_path):
    result = selab(["ui", "--help"], cwd=tmp_path, timeout=60)
    assert flag in result.stdout


def test_ui_says_which_page_holds_the_answer_and_which_the_trials(tmp_path, tmp_path_factory):
    """A sweep whose answer is published: its parent run's page first, then the saved runs
    view; a sweep without: its runs page and the command that publishes the answer."""
    import reports
    from reports.publish import publish_summary
    from runners.cli.commands.ui import sweep_pages
    from runners.storage.models import log_model
    from tests.test_reports_publish import NAME, log_sweep

    uri, demo_experiment = make_store(tmp_path, sqlite_store(tmp_path, tmp_path_factory))
    client = MlflowClient(uri)
    parent = log_sweep(client)
    sweep = reports.load_sweep(uri, NAME)
    publish_summary(client, sweep, reports.recommend(sweep))
    address = "http://127.0.0.1:5000/"
    pages = {p.name: p for p in sweep_pages(uri, address, None)}
    assert set(pages) == {"demo", NAME}
    answer = (
        f"{address}#/experiments/{sweep.experiment_id}/runs/{parent}?workflowType=machine_learning"
    )
    view = (
        f"{address}#/experiments/{sweep.experiment_id}/runs?workflowType=machine_learning"
        "&viewStateShareKey=selab"
    )
    assert pages[NAME].lines() == [
        f"  sweep {NAME}:",
        f"    open the answer (verdict, decision table, sweep.* numbers): {answer}",
        f"    then its trials ranked by accuracy, with the varied knobs: {view}",
    ]
    # once a network is kept as a logged model, the Models view that lists it
    run = client.search_runs([sweep.experiment_id], "tags.`selab.label` = 'r=16'")[0]
    network = tmp_path / "model.pt"
    network.write_bytes(b"a kept network")
    log_model(client, run.info.run_id, network)
    page = sweep_pages(uri, address, NAME)[0]
    assert page.lines()[-1] == (
        f"    its kept networks (MLflow's Models view): {address}"
        f"#/experiments/{sweep.experiment_id}/models"
        "?workflowType=machine_learning"
    )
    assert pages["demo"].answer is None and not pages["demo"].saved_view
    assert pages["demo"].trials.endswith(
        f"#/experiments/{demo_experiment}/runs?workflowType=machine_learning"
    )
    assert [p.name for p in sweep_pages(uri, address, "demo")] == ["demo"]
