"""Sweeps stored in an S3 bucket: a real S3-compatible server (moto's, on 127.0.0.1), a real
`selab` driver process with a Ray instance of its own, a real MLflow SQLite store.

The bucket is reached as a MinIO user reaches one: the endpoint in `AWS_ENDPOINT_URL_S3`, or in
the storage URI (`?endpoint_override=host:port&scheme=http`), credentials in the AWS variables.
"Another machine" is a process with another cache folder ($XDG_CACHE_HOME): it has nothing of
the sweep but the bucket and MLflow. Each driver starts its own Ray (no --address), as on a
laptop: its trials then inherit the credentials, as the nodes of a cluster must have them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from runners.cli.main import main
from runners.storage.models import MODEL_TAG, logged_model
from runners.storage.sweep_lock import LEASE_S, LEASES_FOLDER, SweepLock, SweepLocked
from runners.tracking import journal_mirror
from runners.tracking.journal import JOURNAL_FILE, SENT_FILE, Journal
from runners.tracking.journal_mirror import JournalMirror
from search_space.serialize import load_model
from tests.support import own_err, running_selab, selab, write_spec
from tests.support.sweep_state import state_statuses, wait_for_kill_point

BUCKET = "sweeps"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3:
    client: Any  # boto3's, to look into the bucket
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def uri(self, prefix: str) -> str:
        """The storage URI with the endpoint in it, for stores other than AWS's."""
        return f"s3://{BUCKET}/{prefix}?endpoint_override={self.host}:{self.port}&scheme=http"

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        yield S3(client, host, port)
    finally:
        server.stop()


def machine_env(cache: Path, **extra: str) -> dict[str, str]:
    """A user's shell on one machine: the bucket's credentials, a cache folder of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "RAY_ADDRESS"}
    # Ray's state goes to the bucket every second (default 10 s), so that a short sweep can be
    # killed between two copies.
    env.update(CREDENTIALS, XDG_CACHE_HOME=str(cache), SELAB_STORAGE_SYNC_S="1", **extra)
    return env


def on_machine(monkeypatch: pytest.MonkeyPatch, cache: Path, **extra: str) -> None:
    """This test process becomes `machine_env(cache, **extra)` (for in-process commands)."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in machine_env(cache, **extra).items():
        if key.startswith("AWS_") or key == "XDG_CACHE_HOME":
            monkeypatch.setenv(key, value)


def journal_events(s3: S3, folder: str) -> list[dict[str, Any]]:
    """The sweep's journal as the bucket holds it (its parts, in order)."""
    data = b"".join(s3.read(k) for k in s3.keys(f"{folder}/selab_journal/"))
    return [json.loads(line) for line in data.splitlines()]


def model_key(run: Any) -> str:
    """The bucket key of the model a trial's MLflow run points at (an s3:// URI)."""
    location = run.data.tags[MODEL_TAG]
    assert location.startswith(f"s3://{BUCKET}/"), location
    return location.split("?", 1)[0].removeprefix(f"s3://{BUCKET}/")


def val_acc_steps(client: MlflowClient, run: Any) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_acc"))


# ----------------------------------------------------------------------------- a killed driver


def bucket_trial_statuses(s3: S3, folder: str) -> dict[str, str]:
    """Trial id -> status in the experiment state Ray has saved to the bucket."""
    statuses: dict[str, str] = {}
    for key in s3.keys(f"{folder}/experiment_state-"):
        with contextlib.suppress(ValueError, KeyError):  # being rewritten right now
            statuses.update(state_statuses(s3.read(key)))
    return statuses


@pytest.mark.timeout(400)
def test_a_sweep_on_s3_killed_mid_way_is_resumed_and_reported_from_another_machine(
    s3: S3,
    tmp_path: Path,
    tiny_spec,
    sweep_runs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`selab run --storage s3://...` is SIGKILLed while a trial trains. From a machine that
    never ran it: the lease in the bucket refuses a second driver while the first lives;
    `selab sync` closes the dead driver's parent run (the journal in the bucket says it was
    running); `selab resume` finishes every trial in its own MLflow run, every epoch once, the
    finished ones not rerun, leaving Ray's state, the networks, selab's files and the whole
    journal in the bucket; `export` and `report` then read the networks from the bucket."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = tiny_spec(name="killed")
    data["search"]["grid"] = {"train.epochs": [1, 4], "arch.se.reduction": [4, 8]}
    spec_file = write_spec(tmp_path, data)
    storage = s3.uri("runs")  # the endpoint in the URI, as for MinIO
    log = tmp_path / "driver.log"
    run = ["run", spec_file, "--storage", storage, "--tracking-uri", uri]
    # In a session of its own: the driver alone is killed (its Ray goes down with it), then
    # whatever of its session is left.
    with running_selab(
        run, cwd=tmp_path, log=log, env=machine_env(tmp_path / "machine1"), session=True
    ) as driver:
        wait_for_kill_point(
            lambda: bucket_trial_statuses(s3, "runs/killed"),
            uri,
            "killed",
            driver,
            log,
            limit_s=200,
        )
        on_machine(monkeypatch, tmp_path / "machine2")
        capsys.readouterr()
        assert main(["sync", "killed", "--storage", storage]) == 2
        err = own_err(capsys)
        assert "is being run by another driver" in err and f"pid {driver.pid}" in err
    assert not (tmp_path / "selab_runs").exists()  # nothing stored beside the spec

    parent, before = sweep_runs(uri, "killed")
    assert parent.info.status == "RUNNING"
    client = MlflowClient(uri)
    saved = bucket_trial_statuses(s3, "runs/killed")
    done_before = {
        r.data.tags["selab.trial_id"]: r
        for r in before
        if r.data.tags["selab.status"] == "finished"
        and saved.get(r.data.tags["selab.trial_id"]) == "TERMINATED"
    }
    assert 1 <= len(done_before) < 4

    assert main(["sync", "killed", "--storage", storage]) == 0
    assert client.get_run(parent.info.run_id).info.status == "FAILED"
    resumed = selab(
        ["resume", "killed", "--storage", storage],
        cwd=tmp_path,
        env=machine_env(tmp_path / "machine2"),
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "sweep killed: 4 finished" in resumed.stdout

    parent_after, trials = sweep_runs(uri, "killed")
    assert parent_after.info.run_id == parent.info.run_id
    assert parent_after.info.status == "FINISHED"
    assert len(trials) == 4 and len({r.data.tags["selab.trial_id"] for r in trials}) == 4
    keys = s3.keys("runs/killed/")
    for name in ("selab_sweep.json", "selab_spec.yaml", "selab_done.json", "tuner.pkl"):
        assert f"runs/killed/{name}" in keys
    for run in trials:
        epochs = int(run.data.params["train.epochs"])
        assert run.data.tags["selab.status"] == "finished" and run.info.status == "FINISHED"
        assert val_acc_steps(client, run) == list(range(1, epochs + 1))
        # The trained network, in the trial's last checkpoint, the only one left.
        model = model_key(run)
        assert model in keys
        trial_folder, last = model.rsplit("/", 2)[:2]
        assert {k.split("/")[3] for k in keys if k.startswith(f"{trial_folder}/checkpoint_")} == {
            last
        }
        earlier = done_before.get(run.data.tags["selab.trial_id"])
        if earlier is not None:  # finished before the kill: not trained again
            assert run.info.end_time == earlier.info.end_time
    # The journal in the bucket holds both drivers' events, to the sweep's end.
    events = journal_events(s3, "runs/killed")
    ended = {e["trial_id"] for e in events if e["kind"] == "trial_end"}
    assert ended == {r.data.tags["selab.trial_id"] for r in trials}
    assert [e["status"] for e in events if e["kind"] == "sweep"] == [
        "RUNNING",
        "FAILED",
        "RUNNING",
        "FINISHED",
    ]

    capsys.readouterr()
    assert main(["sync", "killed", "--storage", storage]) == 0
    assert "MLflow is up to date" in capsys.readouterr().out
    assert main(["resume", "killed", "--storage", storage]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    r4 = next(r for r in trials if r.data.tags["selab.label"] == "epochs=4 r=4")
    assert not logged_model(client, r4.info.run_id)  # so export reads it from the bucket
    exported = tmp_path / "r4.pt"
    assert (
        main(
            [
                "export",
                "killed",
                "--trial",
                r4.info.run_id,
                "--tracking-uri",
                uri,
                "--out",
                str(exported),
            ]
        )
        == 0
    )
    assert exported.read_bytes() == s3.read(model_key(r4))
    arch, _ = load_model(exported)
    assert arch.se.reduction == 4
    # The report logs the recommended configuration's models to MLflow, read from the bucket.
    assert main(["report", "killed", "--tracking-uri", uri, "--out", str(tmp_path / "report")]) == 0
    assert any(logged_model(client, r.info.run_id) for r in trials)


# ----------------------------------------------------------------------------- bad storage


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(120)
def test_an_unreachable_endpoint_or_a_missing_bucket_is_refused_before_anything_starts(
    s3: S3,
    tmp_path: Path,
    tiny_spec,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 2 naming --storage, in seconds, before any MLflow run or sweep folder exists: an
    endpoint (from AWS_ENDPOINT_URL_S3) where nothing answers, and a bucket the store (its
    endpoint in the URI) does not have."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec_file = write_spec(tmp_path, tiny_spec(name="refused"))
    cases = [
        (
            f"s3://{BUCKET}/runs",
            {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{closed_port()}"},
            "could not connect",
        ),
        (
            s3.uri("runs").replace(f"s3://{BUCKET}/", "s3://no-such-bucket/"),
            {},
            "bucket does not exist",
        ),
    ]
    for storage, endpoint, reason in cases:
        on_machine(monkeypatch, tmp_path / "machine1", **endpoint)
        capsys.readouterr()
        assert main(["run", str(spec_file), "--storage", storage, "--tracking-uri", uri]) == 2
        err = own_err(capsys)
        assert f"storage (or --storage): {storage}: cannot be written" in err, err
        assert reason in err.lower() and "Traceback" not in err
    assert MlflowClient(uri).get_experiment_by_name("refused") is None
    assert s3.keys("runs/refused") == []


def sweep_with_a_network_in(storage: str, uri: str, data: dict[str, Any], state_dir: Path) -> str:
    """A sweep in MLflow as its driver's journal leaves it: one finished trial whose network is
    kept only in `storage` (not logged to MLflow). Returns the trial's run id."""
    from runners.spec.load import parse_spec
    from runners.storage.paths import join_location
    from runners.tracking.mlflow_writer import MlflowWriter
    from runners.tracking.schema import open_parent_run

    spec = parse_spec(data)
    parent = open_parent_run(spec, yaml.safe_dump(data), uri, storage)
    model = join_location(storage, spec.name, "t0", "checkpoint_000001", "model.pt")
    state_dir.mkdir(parents=True)
    journal = Journal.of(state_dir)
    journal.append("trial_start", trial_id="t0", point={"arch.se.reduction": 4}, seed=0)
    journal.append("result", trial_id="t0", step=1, metrics={"val_acc": 0.5}, cost={})
    journal.append(
        "trial_end",
        trial_id="t0",
        status="finished",
        mlflow_status="FINISHED",
        epochs_done=1,
        best_val_acc=0.5,
        error="",
        traceback="",
        model=model,
    )
    writer = MlflowWriter(spec, parent, state_dir, echo=False)
    assert writer.send() == 0
    return writer.trials["t0"].run_id


@pytest.mark.timeout(240)
def test_commands_reading_an_unreachable_storage_or_a_missing_bucket_name_it_and_exit_2(
    s3: S3,
    tmp_path: Path,
    tiny_spec,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`export`, `analyze` and `report` read a network kept in the sweep's storage, `sync` and
    `resume` the sweep's files there: an endpoint where nothing answers, or a bucket the store
    does not have, ends each in exit 2 and a message naming --storage, with no traceback."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    on_machine(monkeypatch, tmp_path / "machine1")
    cases = [
        (
            f"s3://{BUCKET}/runs?endpoint_override=127.0.0.1:{closed_port()}&scheme=http",
            "cannot be read",
            "could not connect",
        ),
        (
            s3.uri("runs").replace(f"s3://{BUCKET}/", "s3://no-such-bucket/"),
            "not found",
            "no such bucket",
        ),
    ]
    run_ids = []
    for n, (storage, verdict, reason) in enumerate(cases):
        name = f"away{n}"
        run_ids.append(sweep_with_a_network_in(storage, uri, tiny_spec(name=name), tmp_path / name))
        out = tmp_path / f"out{n}"
        for args in (
            ["export", name, "--trial", run_ids[n], "--out", str(out / "net.pt")],
            ["analyze", name, "--out", str(out)],
            ["report", name, "--out", str(out)],
        ):
            capsys.readouterr()
            assert main([*args, "--tracking-uri", uri]) == 2, args
            err = own_err(capsys)
            assert f"storage (or --storage) of sweep {name!r}: {storage}: {verdict}" in err, err
            assert reason in err.lower() and "Traceback" not in err
        assert not (out / "net.pt").exists()
        for command in ("sync", "resume"):
            capsys.readouterr()
            assert main([command, name, "--storage", storage]) == 2, command
            err = own_err(capsys)
            assert storage in err and "--storage" in err and "Traceback" not in err, err
    # The same, from a shell: one message, no traceback.
    done = selab(
        ["export", "away0", "--trial", run_ids[0], "--tracking-uri", uri],
        cwd=tmp_path,
        env=machine_env(tmp_path / "machine1"),
        timeout=240,
    )
    assert done.returncode == 2
    assert f"storage (or --storage) of sweep 'away0': {cases[0][0]}" in done.stderr
    assert "Traceback" not in done.stderr


# ----------------------------------------------------------------------------- journal, lease


def test_the_journal_in_the_bucket_follows_the_driver_and_wins_over_a_stale_copy(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `selab resume` and `selab sync` find on a machine: the journal a driver appended
    and copied (in few parts however long it grows), this machine's own longer copy when its
    driver was killed before copying, and the bucket's when this machine's copy is stale."""
    on_machine(monkeypatch, tmp_path / "unused")
    monkeypatch.setattr(journal_mirror, "COMPACT_EVERY", 4)  # a long sweep's journal, in short
    location = s3.uri("units/journal")
    s3.client.put_object(Bucket=BUCKET, Key="units/journal/selab_sweep.json", Body=b"{}")
    first, second = tmp_path / "machine1", tmp_path / "machine2"
    driver = JournalMirror(location, first)
    driver.pull()
    for epoch in range(10):
        Journal(first / JOURNAL_FILE).append("result", trial_id="t0", step=epoch)
        driver.push()
    (first / SENT_FILE).write_text(json.dumps({"offset": 10**9}))  # MLflow has it all
    driver.push()
    parts = [k for k in s3.keys("units/journal/selab_journal/") if k.endswith(".jsonl")]
    assert 1 < len(parts) <= 4

    elsewhere = JournalMirror(location, second)
    elsewhere.pull()
    assert (second / JOURNAL_FILE).read_bytes() == (first / JOURNAL_FILE).read_bytes()
    sent = json.loads((second / SENT_FILE).read_text())["offset"]
    assert sent == (first / JOURNAL_FILE).stat().st_size

    # Machine 1's driver appends and is killed before its copy: its next driver keeps (and
    # copies) the longer local journal.
    Journal(first / JOURNAL_FILE).append("trial_end", trial_id="t0", status="finished")
    JournalMirror(location, first).push()
    # Machine 2's copy is now stale and has an event of its own: the bucket's wins.
    Journal(second / JOURNAL_FILE).append("sweep", status="RUNNING")
    JournalMirror(location, second).pull()
    assert (second / JOURNAL_FILE).read_bytes() == (first / JOURNAL_FILE).read_bytes()
    assert b"RUNNING" in (second / f"{JOURNAL_FILE}.local").read_bytes()


def test_the_lease_in_the_bucket_admits_one_driver_of_a_sweep_across_machines(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_machine(monkeypatch, tmp_path / "unused")
    location = s3.uri("units/leased")
    lease_key = f"units/{LEASES_FOLDER}/leased.json"
    first = SweepLock(tmp_path / "machine1", "leased", location).acquire()
    try:
        with pytest.raises(SweepLocked, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            SweepLock(tmp_path / "machine2", "leased", location).acquire()
    finally:
        first.release()
    assert lease_key not in s3.keys("units/")  # released: removed
    # A holder on another machine, renewed just now, holds it; one silent for longer than
    # LEASE_S (a driver that died there) is taken over.
    holder = {"pid": 1, "host": "elsewhere", "since": "earlier", "token": "theirs"}
    s3.client.put_object(
        Bucket=BUCKET, Key=lease_key, Body=json.dumps({**holder, "heartbeat": time.time()}).encode()
    )
    with pytest.raises(SweepLocked, match="pid 1 on elsewhere, since earlier, last heard"):
        SweepLock(tmp_path / "machine2", "leased", location).acquire()
    s3.client.put_object(
        Bucket=BUCKET,
        Key=lease_key,
        Body=json.dumps({**holder, "heartbeat": time.time() - LEASE_S - 1}).encode(),
    )
    taken = SweepLock(tmp_path / "machine2", "leased", location).acquire()
    assert json.loads(s3.read(lease_key))["pid"] == os.getpid()
    taken.release()
