"""What `selab run` prints, run as a user runs it (its own local Ray, a new MLflow database):
Tune's progress table naming the sweep's folder, one summary line, and no warnings a user
cannot act on (Ray's token-authentication notice, fvcore's deprecation warning, MLflow's
database set-up lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import selab, write_spec

UNACTIONABLE = (
    "Token authentication",
    "FutureWarning",
    "Creating initial MLflow database",
    "Result logdir",
    "Traceback",
)


@pytest.mark.timeout(300)
def test_run_prints_the_sweep_folder_one_summary_and_no_noise(tmp_path: Path, tiny_spec) -> None:
    spec_file = write_spec(tmp_path, tiny_spec(name="quiet", train={"epochs": 1}))
    done = selab(["run", spec_file], cwd=tmp_path, timeout=280)
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-3000:]
    assert f"Sweep folder: {tmp_path / 'selab_runs' / 'quiet'}" in printed
    assert printed.count("sweep quiet: 2 finished") == 1
    assert [noise for noise in UNACTIONABLE if noise in printed] == [], printed[-3000:]
