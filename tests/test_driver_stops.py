"""No sweep is left unresumable, and no sweep has two drivers.

A driver SIGKILLed while Ray starts (before Ray saved anything of the sweep) leaves a sweep
that `selab resume` starts cleanly in the same MLflow parent run; while the driver lives, a
second driver of the same sweep is refused at once by the lock in the sweep's folder. A driver
SIGKILLed after a trial finished but before Ray saved that resumes the trial from the
checkpoint Ray's saved state points at.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
import ray
from mlflow import MlflowClient

from runners.cli.main import main
from runners.storage.paths import SWEEP_META_FILE, TUNER_FILE
from runners.tracking.journal import JOURNAL_FILE, read_events
from tests.support import running_selab, wait_until, write_spec
from tests.support.sweep_state import state_statuses


@pytest.mark.timeout(300)
def test_a_driver_killed_while_ray_starts_leaves_a_resumable_sweep(
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
    folder = storage / "startup"
    spec_file = write_spec(tmp_path, tiny_spec(name="startup"))
    run = ["run", spec_file, "--tracking-uri", tracking_uri, "--storage", str(storage)]
    log = tmp_path / "driver.log"
    # No --address: the driver starts a Ray instance of its own, which takes seconds; it is
    # SIGKILLed, while Ray starts, when the block ends.
    with running_selab(run, cwd=tmp_path, log=log) as driver:
        wait_until(
            lambda: (folder / SWEEP_META_FILE).exists(),
            driver,
            log,
            limit_s=120,
            what="the sweep's folder",
        )
        # A second driver of the same sweep is refused at once, naming the first.
        capsys.readouterr()
        assert main(["resume", "startup", "--storage", str(storage)]) == 2
        err = capsys.readouterr().err
        assert "is being run by another driver" in err and f"pid {driver.pid}" in err
    assert not (folder / TUNER_FILE).exists(), log.read_text()[-3000:]
    parent, trials = sweep_runs(tracking_uri, "startup")
    assert parent.info.status == "RUNNING" and trials == []

    # `selab run` without --overwrite points at resume; `selab sync` closes the orphaned
    # parent run (its driver is gone); `selab resume` starts the sweep in that parent run.
    assert main(run) == 2
    assert "selab resume startup" in capsys.readouterr().err
    assert main(["sync", "startup", "--storage", str(storage)]) == 0
    assert MlflowClient(tracking_uri).get_run(parent.info.run_id).info.status == "FAILED"
    assert main(["resume", "startup", "--storage", str(storage), "--address", ray_address]) == 0
    assert "sweep startup: 2 finished" in capsys.readouterr().out

    meta = json.loads((folder / SWEEP_META_FILE).read_text())
    resumed, trials = sweep_runs(tracking_uri, "startup")
    assert resumed.info.run_id == parent.info.run_id == meta["run_id"]
    assert resumed.info.status == "FINISHED"
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("startup")
    roles = Counter(
        r.data.tags.get("selab.role") for r in client.search_runs([experiment.experiment_id])
    )
    assert roles == Counter(sweep=1, trial=2)  # no second parent, no orphan trial run
    for run in trials:
        assert run.data.tags["selab.status"] == "finished"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
        assert sorted(steps) == [1, 2]


def saved_statuses(folder: Path) -> dict[str, str]:
    """Trial id -> status in the newest sweep state Ray has saved (what resume reads)."""
    newest = max(folder.glob("experiment_state-*.json"), key=lambda f: f.stat().st_mtime_ns)
    return state_statuses(newest.read_text())


@pytest.mark.timeout(300)
def test_a_trial_that_finished_after_rays_last_save_resumes_from_its_checkpoint(
    ray_address: str,
    tracking_uri: str,
    tmp_path: Path,
    tiny_spec,
    sweep_runs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A driver killed after a trial finished, but before Ray saved that, leaves a state that
    resumes the trial from its checkpoint before the last: that one must still be there.

    Ray saves its state every second (selab's setting) and after a trial's second checkpoint;
    the driver here saves only the latter, so the first trial's end stays unsaved until the
    second, slow trial has trained two epochs, one at a time."""
    storage = tmp_path / "runs"
    folder = storage / "window"
    spec_file = write_spec(
        tmp_path,
        tiny_spec(
            name="window",
            train={"epochs": 3},
            search={"grid": {"arch.se.reduction": [4], "train.batch_size": [64, 4]}},
            resources={"cpus_per_trial": 1, "max_concurrent": 1},
        ),
    )
    log = tmp_path / "driver.log"
    run = [
        "run",
        spec_file,
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--storage",
        str(storage),
    ]
    with running_selab(
        run, cwd=tmp_path, log=log, env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "100000"}
    ) as driver:
        wait_until(
            lambda: [e for e, _ in read_events(folder / JOURNAL_FILE) if e["kind"] == "trial_end"],
            driver,
            log,
            limit_s=180,
            what="a trial's end",
        )
    ended = [e for e, _ in read_events(folder / JOURNAL_FILE) if e["kind"] == "trial_end"]
    assert len(ended) == 1
    assert saved_statuses(folder)[ended[0]["trial_id"]] == "RUNNING"  # Ray did not save its end

    deadline = time.monotonic() + 60  # Ray ends the dead driver's trial actors on its own
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    capsys.readouterr()
    assert main(["resume", "window", "--storage", str(storage), "--address", ray_address]) == 0
    out = capsys.readouterr().out
    assert "sweep window: 2 finished" in out, out[-2000:]
    client = MlflowClient(tracking_uri)
    parent, trials = sweep_runs(tracking_uri, "window")
    assert parent.info.status == "FINISHED" and len(trials) == 2
    for run in trials:
        assert run.data.tags["selab.status"] == "finished"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
        assert sorted(steps) == [1, 2, 3]
