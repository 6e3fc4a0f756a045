"""Every documented way to reach a Ray cluster, on a real two-node cluster of this machine.

The README's recipe, as it runs here: a head and a worker started with `ray start` (1 CPU each,
token authentication on), and `selab run` joined to it with `--address host:port`, with
`--address ray://...` (Ray Client). Then a worker node is killed in the middle of a sweep.
(`ray job submit` is not tested here: the README says why.) Each sweep must leave one MLflow
run per trial with every epoch once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from ray_nodes import LocalCluster, cluster_env, free_port, make_token

from runners.journal import JOURNAL_FILE, read_events

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    folder = tmp_path_factory.mktemp("cluster")
    nodes = LocalCluster(folder, make_token(folder))
    try:
        nodes.start_head()
        nodes.start_worker()
        yield nodes
    finally:
        nodes.stop()


def write_spec(tmp_path: Path, tiny_spec, name: str, **sections) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(name=name, **sections)))
    return path


def driver_env(cluster: LocalCluster, **extra: str) -> dict[str, str]:
    """A user's shell: the cluster's token file, RAY_AUTH_MODE unset (selab sets it)."""
    env = cluster_env(cluster.token_file, auth_mode=None)
    env.update(extra)
    return env


def selab(args: list[str], env: dict[str, str], cwd: Path,
          timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runners.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def assert_complete(uri: str, name: str, trials: int, epochs: int, sweep_runs) -> None:
    """Parent FINISHED; one run per trial, each finished with every epoch exactly once."""
    client = MlflowClient(uri)
    parent, runs = sweep_runs(uri, name)
    assert parent.info.status == "FINISHED"
    assert len(runs) == trials
    assert len({r.data.tags["selab.trial_id"] for r in runs}) == trials
    for run in runs:
        assert run.data.tags["selab.status"] == "finished", run.data.tags
        history = client.get_metric_history(run.info.run_id, "val_acc")
        assert sorted(m.step for m in history) == list(range(1, epochs + 1))
        assert [m.step for m in client.get_metric_history(run.info.run_id, "flops")] == [0]


# ----------------------------------------------------------------------------- addresses


@pytest.mark.timeout(60)
def test_an_address_that_does_not_answer_fails_at_once(
    tmp_path: Path, tiny_spec, tracking_uri: str
) -> None:
    spec = write_spec(tmp_path, tiny_spec, "nowhere")
    port = free_port()  # nothing listens there
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        start = time.monotonic()
        done = selab(["run", str(spec), "--address", address, "--tracking-uri", tracking_uri,
                      "--storage", str(tmp_path / "runs")], dict(os.environ), tmp_path,
                     timeout=60)
        elapsed = time.monotonic() - start
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"--address {address}: no Ray cluster answers" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "runs").exists()
        print(f"{address}: refused in {elapsed:.1f} s")


# ----------------------------------------------------------------------------- launch forms


@pytest.mark.timeout(300)
def test_ray_client_address(cluster: LocalCluster, tmp_path: Path, tiny_spec,
                            tracking_uri: str, sweep_runs) -> None:
    """`selab run SPEC --address ray://head:10001`: the driver is here, Tune's controller and
    the trials run on the cluster, the code travels as runtime_env py_modules."""
    spec = write_spec(tmp_path, tiny_spec, "client")
    done = selab(["run", str(spec), "--address", cluster.client_address, "--tracking-uri",
                  tracking_uri, "--storage", str(tmp_path / "runs")],
                 driver_env(cluster), tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "sweep client: 2 finished" in done.stdout
    assert_complete(tracking_uri, "client", trials=2, epochs=2, sweep_runs=sweep_runs)


@pytest.mark.timeout(400)
def test_host_port_address_on_two_nodes_survives_losing_one(
    cluster: LocalCluster, tmp_path: Path, tiny_spec, tracking_uri: str, sweep_runs
) -> None:
    """`selab run SPEC --address head:6379` with RAY_AUTH_MODE unset: selab finds the token.
    Two trials run at once, one per 1-CPU node; the worker node is then killed (every one of
    its processes, SIGKILL): its trial is retried on the head, and nothing is lost or logged
    twice."""
    assert len(cluster.nodes) == 2
    spec = write_spec(tmp_path, tiny_spec, "nodes", train={"epochs": 3},
                      search={"grid": {"arch.se.reduction": [2, 4, 8, 16]}},
                      failure={"max_retries": 1})
    folder = tmp_path / "runs" / "nodes"
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        driver = subprocess.Popen(
            [sys.executable, "-m", "runners.cli", "run", str(spec), "--address",
             cluster.address, "--tracking-uri", tracking_uri, "--storage",
             str(tmp_path / "runs")],
            env=driver_env(cluster), cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_two_training(folder, driver, log)
        cluster.nodes[1].kill()  # the worker node: raylet, workers, trial actors
        code = driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    output = log.read_text()
    assert code == 0, output[-4000:]
    assert "sweep nodes: 4 finished" in output
    assert_complete(tracking_uri, "nodes", trials=4, epochs=3, sweep_runs=sweep_runs)


def wait_for_two_training(folder: Path, driver: subprocess.Popen, log: Path) -> None:
    """Until two trials have each reported an epoch and neither has ended: with 1-CPU nodes
    and 1 CPU per trial, they run on different nodes."""
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline:
        assert driver.poll() is None, log.read_text()[-3000:]
        events = [e for e, _ in read_events(folder / JOURNAL_FILE)]
        reporting = {e["trial_id"] for e in events if e["kind"] == "result"}
        ended = {e["trial_id"] for e in events if e["kind"] == "trial_end"}
        if len(reporting - ended) >= 2:
            return
        time.sleep(0.1)
    pytest.fail("two trials never trained at once:\n" + log.read_text()[-3000:])
