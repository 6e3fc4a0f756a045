"""A driver SIGKILLed at any step of its start leaves a sweep that `selab resume` (or `selab run`,
`selab run --overwrite`) finishes, with one FINISHED parent run and every epoch logged once;
two drivers of one sweep started at the same moment: one runs, the other is refused at once.

The kill points are the driver's own (SELAB_KILL_AT, runners.sweep.kill_points: it SIGKILLs
itself on reaching the step); "trial" is a kill from outside once the first trial has started.
Drivers join the session's Ray (--address), so each sweep takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient

from runners.cli.main import main
from runners.storage.paths import SWEEP_META_FILE, SWEEP_START_FILE
from runners.sweep.kill_points import ENV
from runners.tracking.journal import JOURNAL_FILE, read_events
from tests.support import reap, running_selab, start_selab, wait_until, write_spec
from tests.support.sweep_state import runs_by_role, wait_for_free_cpus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EPOCHS = 2


@pytest.fixture
def sweep(
    tmp_path: Path, tiny_spec, ray_address: str, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> dict:
    """A tiny sweep (2 trials of 2 epochs) and the `selab run` command line that starts it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV, raising=False)
    storage = tmp_path / "runs"
    spec = write_spec(tmp_path, tiny_spec(name="kill", train={"epochs": EPOCHS}))
    run = [
        "run",
        spec,
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--storage",
        str(storage),
    ]
    resume = ["resume", "kill", "--storage", str(storage), "--address", ray_address]
    return {
        "run": run,
        "resume": resume,
        "folder": storage / "kill",
        "uri": tracking_uri,
        "log": tmp_path / "driver.log",
        "cwd": tmp_path,
    }


def killed_at(sweep: dict, step: str) -> None:
    """`selab run` SIGKILLed at `step`: by itself (SELAB_KILL_AT), or, for "trial", from
    outside once the first trial has started; then Ray's trial actors are let go."""
    env = {**os.environ, **({} if step == "trial" else {ENV: step})}
    log = sweep["log"]
    with running_selab(sweep["run"], cwd=sweep["cwd"], log=log, env=env) as driver:
        if step == "trial":
            journal = sweep["folder"] / JOURNAL_FILE
            wait_until(
                lambda: any(e["kind"] == "trial_start" for e, _ in read_events(journal)),
                driver,
                log,
                limit_s=240,
                what="the first trial's start",
            )
        else:
            assert driver.wait(timeout=240) == -signal.SIGKILL, log.read_text()[-3000:]
    wait_for_free_cpus(2)


def assert_one_finished_sweep(sweep: dict, parents: int = 1) -> None:
    """One FINISHED parent run, the one the folder records (after `parents - 1` closed ones),
    and both trials in it, every epoch logged once."""
    client = MlflowClient(sweep["uri"])
    roles = runs_by_role(sweep["uri"], "kill")
    assert len(roles["sweep"]) == parents, [r.info for r in roles["sweep"]]
    recorded = json.loads((sweep["folder"] / SWEEP_META_FILE).read_text())["run_id"]
    statuses = {r.info.run_id: r.info.status for r in roles["sweep"]}
    assert statuses.pop(recorded) == "FINISHED"
    assert set(statuses.values()) <= {"FAILED"}  # an earlier start's parent, closed
    assert len(roles["trial"]) == 2
    for run in roles["trial"]:
        assert run.data.tags["mlflow.parentRunId"] == recorded
        assert run.data.tags["selab.status"] == "finished"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
        assert sorted(steps) == list(range(1, EPOCHS + 1))


@pytest.mark.parametrize("step", ["folder", "parent", "ray", "trial"])
def test_a_driver_killed_at_each_step_of_its_start_is_resumed(
    step: str, sweep: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    killed_at(sweep, step)
    folder = sweep["folder"]
    assert (folder / SWEEP_START_FILE).is_file()  # the folder is a sweep from "folder" on
    assert (folder / SWEEP_META_FILE).exists() == (step in ("ray", "trial"))
    if step != "folder":  # the parent run exists, RUNNING with no driver
        assert [r.info.status for r in runs_by_role(sweep["uri"], "kill")["sweep"]] == ["RUNNING"]
    capsys.readouterr()
    assert main(sweep["resume"]) == 0, capsys.readouterr().err
    assert "sweep kill: 2 finished" in capsys.readouterr().out
    assert_one_finished_sweep(sweep)


def test_a_driver_killed_before_its_folder_is_a_sweep_is_run_again(
    sweep: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed right after it took the lock: a folder with the lock file only, which `selab run`
    (without --overwrite) takes; `selab resume` says there is nothing to resume."""
    killed_at(sweep, "locked")
    assert [p.name for p in sweep["folder"].iterdir()] == ["selab.lock"]
    assert main(sweep["resume"]) == 2
    assert "no sweep 'kill' to resume" in capsys.readouterr().err
    assert main(sweep["run"]) == 0, capsys.readouterr().err
    assert_one_finished_sweep(sweep)


def test_overwrite_closes_the_parent_run_a_killed_start_never_recorded(
    sweep: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    killed_at(sweep, "parent")
    (orphan,) = runs_by_role(sweep["uri"], "kill")["sweep"]
    assert main(sweep["run"]) == 2  # not without --overwrite: it points at resume
    assert "selab resume kill" in capsys.readouterr().err
    assert main([*sweep["run"], "--overwrite"]) == 0, capsys.readouterr().err
    assert MlflowClient(sweep["uri"]).get_run(orphan.info.run_id).info.status == "FAILED"
    assert_one_finished_sweep(sweep, parents=2)


@pytest.mark.parametrize("store", ["existing", "fresh"])
def test_two_drivers_started_at_once_one_runs_the_other_is_refused(store: str, sweep: dict) -> None:
    """Both start at the same moment (a barrier), on one sweep and one tracking store (new, or
    already there): exactly one runs; the other exits 2 at once, naming the first, and leaves
    nothing in MLflow."""
    if store == "existing":
        MlflowClient(sweep["uri"]).search_experiments()  # makes the SQLite store
    barrier = threading.Barrier(2)
    logs = [sweep["cwd"] / f"driver{i}.log" for i in range(2)]
    drivers: list = [None, None]

    def start(i: int) -> None:
        barrier.wait()
        drivers[i] = start_selab(sweep["run"], cwd=sweep["cwd"], log=logs[i])

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        codes = [driver.wait(timeout=400) for driver in drivers]
    finally:
        for driver in drivers:
            if driver is not None:
                reap(driver)
    assert sorted(codes) == [0, 2], [log.read_text()[-2000:] for log in logs]
    loser, winner = codes.index(2), codes.index(0)
    refusal = logs[loser].read_text()
    assert "selab run: invalid input" in refusal and "Traceback" not in refusal
    assert f"is being run by another driver (pid {drivers[winner].pid} " in refusal
    assert_one_finished_sweep(sweep)
