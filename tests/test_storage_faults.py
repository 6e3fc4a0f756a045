"""Storage that turns read-only in the middle of a sweep: honest outcomes, then a clean resume.

The driver runs in a private mount namespace (`unshare -m`, as root) where the storage folder
is bind-mounted onto itself; the test remounts it read-only there once a trial has reported an
epoch. The driver, its local Ray and every trial see a read-only file system; the rest of the
machine (and `selab resume` afterwards) sees the folder as it was.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from runners.cli.main import main
from runners.tracking.journal import JOURNAL_FILE, read_events
from tests.support import reap, selab_command, wait_until, write_spec


def journal_events(folder: Path, kind: str) -> list[dict]:
    return [e for e, _ in read_events(folder / JOURNAL_FILE) if e["kind"] == kind]


def steps(client: MlflowClient, run, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))


@pytest.mark.timeout(400)
def test_storage_turning_read_only_fails_trials_and_resume_finishes_them(
    ray_address: str,
    tracking_uri: str,
    tmp_path: Path,
    tiny_spec,
    sweep_runs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = tmp_path / "runs"
    storage.mkdir()
    folder = storage / "readonly"
    data = tiny_spec(name="readonly", train={"epochs": 3}, failure={"max_retries": 0})
    run = selab_command(
        "run", write_spec(tmp_path, data), "--storage", str(storage), "--tracking-uri", tracking_uri
    )
    # The driver starts its own Ray inside the namespace, so that the trials see it too.
    script = f"mount --bind {storage} {storage} && exec {shlex.join(run)}"
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        driver = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: journal_events(folder, "result"), driver, log, what="the first epoch's result"
        )
        assert not journal_events(folder, "trial_end")
        subprocess.run(
            [
                "nsenter",
                "-t",
                str(driver.pid),
                "-m",
                "mount",
                "-o",
                "remount,ro,bind",
                str(storage),
            ],
            check=True,
        )
        code = driver.wait(timeout=240)
    finally:
        reap(driver)
    output = log.read_text()

    # Failed, and said so: exit code, summary, parent run, every trial run.
    assert code == 1, output[-3000:]
    assert "stopped_early" not in output
    assert "sweep readonly: 2 failed" in output, output[-3000:]
    assert "Read-only file system" in output
    client = MlflowClient(tracking_uri)
    parent, trials = sweep_runs(tracking_uri, "readonly")
    assert parent.info.status == "FAILED"
    assert len(trials) == 2
    for trial in trials:
        assert trial.data.tags["selab.status"] == "failed", trial.data.tags
        assert trial.info.status == "FAILED"
        assert "Read-only file system" in trial.data.tags["selab.error"]

    # The storage is writable again (outside the namespace): resume finishes every trial.
    capsys.readouterr()
    assert main(["resume", "readonly", "--storage", str(storage)]) == 0
    assert "sweep readonly: 2 finished" in capsys.readouterr().out
    parent, trials = sweep_runs(tracking_uri, "readonly")
    assert parent.info.status == "FINISHED"
    assert len(trials) == 2 and len({t.data.tags["selab.trial_id"] for t in trials}) == 2
    for trial in trials:
        assert trial.data.tags["selab.status"] == "finished"
        assert trial.info.status == "FINISHED"
        assert "selab.error" not in trial.data.tags  # the failed attempt's error is cleared
        assert steps(client, trial, "val_acc") == [1, 2, 3]
        # End-of-run metrics once per step: the failed attempt's and the finished one's.
        done = steps(client, trial, "epochs_done")
        assert len(done) == len(set(done)) and done[-1] == 3
        assert trial.data.metrics["epochs_done"] == 3
    assert json.loads((folder / "selab_sweep.json").read_text())["run_id"] == (parent.info.run_id)
    assert Counter(e["status"] for e in journal_events(folder, "sweep"))["FINISHED"] == 1
