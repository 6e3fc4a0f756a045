"""Every documented way to reach a Ray cluster, on a real two-node cluster of this machine.

The README's recipe, as it runs here: a head (with the dashboard that job submission needs) and
a worker started with `ray start` (1 CPU each, token authentication on), and `selab run` joined
to it with `--address host:port`, with `--address ray://...` (Ray Client), and submitted with
`ray job submit`. Then a worker node is killed in the middle of a sweep. Each sweep must leave
one MLflow run per trial with every epoch once.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from runners.compat import merge_runtime_envs
from runners.sweep.cluster import CODE_PACKAGES, code_runtime_env
from runners.tracking.journal import JOURNAL_FILE, read_events
from tests.support import free_port, running_selab, selab, wait_until, write_spec
from tests.support.mlflow_server import MlflowServer
from tests.support.ray_nodes import RAY, LocalCluster, cluster_env, make_token

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    folder = tmp_path_factory.mktemp("cluster")
    nodes = LocalCluster(folder, make_token(folder))
    try:
        nodes.start_head(dashboard=True)
        nodes.start_worker()
        yield nodes
    finally:
        nodes.stop()


def driver_env(cluster: LocalCluster, **extra: str) -> dict[str, str]:
    """A user's shell: the cluster's token file, RAY_AUTH_MODE unset (selab sets it)."""
    env = cluster_env(cluster.token_file, auth_mode=None)
    env.update(extra)
    return env


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
    spec = write_spec(tmp_path, tiny_spec(name="nowhere"))
    port = free_port()  # nothing listens there
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        start = time.monotonic()
        done = selab(
            [
                "run",
                spec,
                "--address",
                address,
                "--tracking-uri",
                tracking_uri,
                "--storage",
                str(tmp_path / "runs"),
            ],
            cwd=tmp_path,
            timeout=60,
        )
        elapsed = time.monotonic() - start
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"--address {address}: no Ray cluster answers" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "runs").exists()
        print(f"{address}: refused in {elapsed:.1f} s")


# ----------------------------------------------------------------------------- runtime env


JOB_DIR = "gcs://_ray_pkg_0123456789abcdef.zip"  # what `ray job submit` makes of --working-dir


@pytest.mark.parametrize(
    "job_env",
    [
        {},  # not a job
        {"working_dir": JOB_DIR},
        {"working_dir": JOB_DIR, "excludes": ["data/"]},
        {"working_dir": JOB_DIR, "py_modules": ["gcs://_ray_pkg_fedcba9876543210.zip"]},
    ],
)
def test_the_driver_code_merges_with_a_jobs_runtime_env(
    job_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ray.init does with a job driver's runtime_env: merge it with the job's, refusing any
    key in both. The merge must succeed, keep the job's settings, and carry the driver's
    packages unless the job ships its own."""
    if job_env:
        monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": job_env}))
    else:
        monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    merged = merge_runtime_envs(job_env, code_runtime_env())
    assert merged is not None
    assert {k: merged[k] for k in job_env} == job_env
    if "py_modules" not in job_env:
        imported = [
            str(Path(importlib.import_module(name).__file__).parent) for name in CODE_PACKAGES
        ]
        assert merged["py_modules"] == imported


# ----------------------------------------------------------------------------- launch forms


@pytest.mark.timeout(300)
def test_ray_client_address(
    cluster: LocalCluster, tmp_path: Path, tiny_spec, tracking_uri: str, sweep_runs
) -> None:
    """`selab run SPEC --address ray://head:10001`: the driver is here, Tune's controller and
    the trials run on the cluster, the code travels as runtime_env py_modules."""
    spec = write_spec(tmp_path, tiny_spec(name="client"))
    done = selab(
        [
            "run",
            spec,
            "--address",
            cluster.client_address,
            "--tracking-uri",
            tracking_uri,
            "--storage",
            str(tmp_path / "runs"),
        ],
        cwd=tmp_path,
        env=driver_env(cluster),
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "sweep client: 2 finished" in done.stdout
    assert_complete(tracking_uri, "client", trials=2, epochs=2, sweep_runs=sweep_runs)


def ray_job_submit(
    cluster: LocalCluster, project: Path, *entrypoint: str
) -> tuple[subprocess.CompletedProcess, str]:
    """`RAY_AUTH_MODE=token ray job submit --address http://head:8265 --working-dir . -- ...`
    in the project folder, as the README writes it; (the finished command, the job's id)."""
    done = subprocess.run(
        [
            RAY,
            "job",
            "submit",
            "--address",
            cluster.dashboard_address,
            "--working-dir",
            ".",
            "--",
            *entrypoint,
        ],
        env=driver_env(cluster, RAY_AUTH_MODE="token"),
        cwd=project,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    submitted = re.search(r"Job '(\S+)' submitted successfully", output)
    assert submitted, output[-4000:]
    return done, submitted.group(1)


def project_folder(tmp_path: Path, tiny_spec, name: str, **sections) -> Path:
    """What `--working-dir .` carries from a user's checkout: selab's packages (Ray puts the
    working dir first on the driver's path, so the job runs this code) and experiments/."""
    project = tmp_path / "project"
    for package in CODE_PACKAGES:
        shutil.copytree(
            ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    (project / "experiments").mkdir()
    write_spec(project / "experiments", tiny_spec(name=name, **sections))
    return project


@pytest.mark.timeout(300)
def test_ray_job_submit(cluster: LocalCluster, tmp_path: Path, tiny_spec, sweep_runs) -> None:
    """The driver itself on the head as a Ray job: Ray's $RAY_ADDRESS joins it to the cluster,
    the trials on both nodes get the driver's code, and the MLflow server keeps the artifacts
    (the job's working dir is a temporary copy)."""
    server = MlflowServer(tmp_path)
    server.start()
    try:
        project = project_folder(tmp_path, tiny_spec, "job")
        done, job_id = ray_job_submit(
            cluster,
            project,
            "selab",
            "run",
            "experiments/job.yaml",
            "--tracking-uri",
            server.uri,
            "--storage",
            str(tmp_path / "runs"),
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        assert "sweep job: 2 finished" in output
        assert f"Job '{job_id}' succeeded" in output  # the job's status, SUCCEEDED
        assert_complete(server.uri, "job", trials=2, epochs=2, sweep_runs=sweep_runs)
        parent, _ = sweep_runs(server.uri, "job")
        artifacts = MlflowClient(server.uri).list_artifacts(parent.info.run_id)
        assert "spec.yaml" in [a.path for a in artifacts]
        assert (tmp_path / "runs" / "job" / JOURNAL_FILE).is_file()
    finally:
        server.kill()


@pytest.mark.timeout(200)
def test_ray_job_submit_fails_with_the_driver(
    cluster: LocalCluster, tmp_path: Path, tiny_spec, tracking_uri: str
) -> None:
    """A sweep the cluster cannot run (2 CPUs per trial, 1-CPU nodes) is refused by the driver's
    pre-flight on the head: the job fails with the driver's exit code 2, `ray job submit` exits
    non-zero and shows selab's message, and nothing of the sweep exists."""
    project = project_folder(tmp_path, tiny_spec, "greedy", resources={"cpus_per_trial": 2})
    done, job_id = ray_job_submit(
        cluster,
        project,
        "selab",
        "run",
        "experiments/greedy.yaml",
        "--tracking-uri",
        tracking_uri,
        "--storage",
        str(tmp_path / "runs"),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-4000:]
    assert "resources.cpus_per_trial" in output
    assert "Traceback" not in output
    assert f"Job '{job_id}' failed" in output  # the job's status, FAILED
    assert "Job entrypoint command failed with exit code 2" in output
    assert not (tmp_path / "runs").exists()
    assert MlflowClient(tracking_uri).get_experiment_by_name("greedy") is None


@pytest.mark.timeout(400)
def test_host_port_address_on_two_nodes_survives_losing_one(
    cluster: LocalCluster, tmp_path: Path, tiny_spec, tracking_uri: str, sweep_runs
) -> None:
    """`selab run SPEC --address head:6379` with RAY_AUTH_MODE unset: selab finds the token.
    Two trials run at once, one per 1-CPU node; the worker node is then killed (every one of
    its processes, SIGKILL): its trial is retried on the head, and nothing is lost or logged
    twice."""
    assert len(cluster.nodes) == 2
    spec = write_spec(
        tmp_path,
        tiny_spec(
            name="nodes",
            train={"epochs": 3},
            search={"grid": {"arch.se.reduction": [2, 4, 8, 16]}},
            failure={"max_retries": 1},
        ),
    )
    folder = tmp_path / "runs" / "nodes"
    log = tmp_path / "driver.log"
    run = [
        "run",
        spec,
        "--address",
        cluster.address,
        "--tracking-uri",
        tracking_uri,
        "--storage",
        str(tmp_path / "runs"),
    ]
    with running_selab(run, cwd=tmp_path, log=log, env=driver_env(cluster)) as driver:
        wait_until(
            lambda: two_training(folder),
            driver,
            log,
            limit_s=200,
            what="two trials training at once",
        )
        cluster.nodes[1].kill()  # the worker node: raylet, workers, trial actors
        code = driver.wait(timeout=300)
    output = log.read_text()
    assert code == 0, output[-4000:]
    assert "sweep nodes: 4 finished" in output
    assert_complete(tracking_uri, "nodes", trials=4, epochs=3, sweep_runs=sweep_runs)


def two_training(folder: Path) -> bool:
    """Two trials have each reported an epoch and neither has ended: with 1-CPU nodes and 1
    CPU per trial, they run on different nodes."""
    events = [e for e, _ in read_events(folder / JOURNAL_FILE)]
    reporting = {e["trial_id"] for e in events if e["kind"] == "result"}
    ended = {e["trial_id"] for e in events if e["kind"] == "trial_end"}
    return len(reporting - ended) >= 2
