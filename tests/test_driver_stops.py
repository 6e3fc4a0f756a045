"""No sweep is left unresumable, and no sweep has two drivers.

A driver SIGKILLed while Ray starts (before Ray saved anything of the sweep) leaves a sweep
that `selab resume` starts cleanly in the same MLflow parent run; while the driver lives, a
second driver of the same sweep is refused at once by the lock in the sweep's folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from runners.cli import main
from runners.paths import SWEEP_META_FILE, TUNER_FILE


@pytest.mark.timeout(300)
def test_a_driver_killed_while_ray_starts_leaves_a_resumable_sweep(
    ray_address: str, tracking_uri: str, tmp_path: Path, tiny_spec, sweep_runs,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = tmp_path / "runs"
    folder = storage / "startup"
    spec_file = tmp_path / "startup.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(name="startup")))
    run = ["run", str(spec_file), "--tracking-uri", tracking_uri, "--storage", str(storage)]
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        # No --address: the driver starts a Ray instance of its own, which takes seconds.
        driver = subprocess.Popen([sys.executable, "-m", "runners.cli", *run], cwd=tmp_path,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (folder / SWEEP_META_FILE).exists():
            assert driver.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        # A second driver of the same sweep is refused at once, naming the first.
        capsys.readouterr()
        assert main(["resume", "startup", "--storage", str(storage)]) == 2
        err = capsys.readouterr().err
        assert "is being run by another driver" in err and f"pid {driver.pid}" in err
    finally:
        driver.kill()  # SIGKILL, while Ray starts
        driver.wait()
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
    roles = Counter(r.data.tags.get("selab.role")
                    for r in client.search_runs([experiment.experiment_id]))
    assert roles == Counter(sweep=1, trial=2)  # no second parent, no orphan trial run
    for run in trials:
        assert run.data.tags["selab.status"] == "finished"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
        assert sorted(steps) == [1, 2]
