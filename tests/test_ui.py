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


def make_store(tmp_path: Path) -> tuple[str, str]:
    """A SQLite store with one sweep's parent run; returns (uri, experiment id)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
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
    proc = start_selab(["ui", "--tracking-uri", uri, "--port", str(port)], cwd=tmp_path,
                       log=log, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        page = wait_for_page(f"http://127.0.0.1:{port}/", proc)
        assert "mlflow" in page.lower()
        runs_view = (f"http://127.0.0.1:{port}/#/experiments/{experiment_id}"
                     "/runs?workflowType=machine_learning")
        assert f"sweep demo: {runs_view}" in log.read_text()
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
        result = selab(["ui", "--port", str(port), "--tracking-uri",
                        f"sqlite:///{tmp_path / 'x.db'}"], cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "--port" in result.stderr and "Traceback" not in result.stderr
    result = selab(["ui", "--tracking-uri", "http://127.0.0.1:1"], cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "--tracking-uri" in result.stderr


@pytest.mark.parametrize("flag", ["--port", "--sweep", "--tracking-uri"])
def test_ui_help_lists_its_flags(flag, tmp_path):
    result = selab(["ui", "--help"], cwd=tmp_path, timeout=60)
    assert flag in result.stdout
