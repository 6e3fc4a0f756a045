"""The sweep's progress table (runners/sweep/progress.py) as Tune prints it in a real run on the
local Ray: every varied knob has a value on every row (a switch as on/off, an SE setting of the
no-SE baseline as "—"), and a race counts its trials out of the most it may run, not out of
"infinite". The trials report a made-up accuracy (no training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ray import tune
from ray.tune.utils.log import set_verbosity

from runners.spec.load import parse_spec
from runners.sweep import search
from runners.sweep.progress import progress_reporter


def quick_trial(config: dict[str, Any]) -> None:
    r = config["point"].get("arch.se.reduction", 0)
    tune.report(
        {
            "val_acc": 0.9 + r / 1000 + config["seed"] / 10_000,
            "epoch": 1,
            "epochs_planned": 1,
            "diverged": False,
            "train_loss": 0.3,
        }
    )


def printed_table(spec_data: dict, tmp_path: Path, capsys, monkeypatch) -> str:
    """What Tune printed while running the spec's trials with selab's reporter."""
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "0")  # the table reporter, as `selab run` sets it
    # Tune's verbosity as an earlier Tuner of this process (verbose=1) leaves it: the table
    # must not depend on it.
    set_verbosity(1)
    spec = parse_spec(spec_data)
    tuner = tune.Tuner(
        quick_trial,
        param_space=search.param_space(spec),
        tune_config=tune.TuneConfig(
            search_alg=search.search_algorithm(spec),
            num_samples=-1 if spec.race else 1,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=str(tmp_path),
            progress_reporter=progress_reporter(spec, "the/sweep"),
            verbose=1,
        ),
    )
    capsys.readouterr()
    tuner.fit()
    return capsys.readouterr().out


def last_table(text: str) -> list[dict[str, str]]:
    """The rows of the last table Tune printed, as {column: cell}."""
    lines = text.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("| Trial name"))
    header = [c.strip() for c in lines[start].strip().strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        rows.append(
            dict(zip(header, [c.strip() for c in line.strip().strip("|").split("|")], strict=True))
        )
    return rows


@pytest.mark.usefixtures("ray_address")
def test_every_knob_has_a_value_on_every_row_and_a_race_its_maximum(
    tiny_spec, tmp_path, capsys, monkeypatch
):
    data = tiny_spec(
        name="raced",
        seeds={"initial": 2, "max": 2},
        search={
            "grid": {"arch.se.reduction": [8], "arch.zero_init_residual": [True, False]},
            "baseline": True,
        },
    )
    text = printed_table(data, tmp_path, capsys, monkeypatch)
    assert "Number of trials: 6 of at most 6 (seeds raced) (6 TERMINATED)" in text
    assert "infinite" not in text
    assert "Sweep folder: the/sweep" in text
    knobs = sorted(
        (row["r"], row["zero_init_residual"], row["se"], row["seed"]) for row in last_table(text)
    )
    # the baseline sets neither r nor the switch: r has no value without SE, the switch keeps
    # the spec's (off)
    assert knobs == [
        ("8", "off", "on", "0"),
        ("8", "off", "on", "1"),
        ("8", "on", "on", "0"),
        ("8", "on", "on", "1"),
        ("—", "off", "off", "0"),
        ("—", "off", "off", "1"),
    ]
