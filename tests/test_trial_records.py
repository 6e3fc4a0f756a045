"""Each trial resolved once: the driver's journal callback writes the trial's record (label,
baseline flag, overrides, MLflow params) into its trial_start event, and the MLflow writer and
the sweep's summary read it from there; a journal an earlier selab wrote (no record in its
events) is resolved by the writer instead. Also: the spec room imports no torch, Ray or MLflow.

The quick lane's end-to-end sweep is here too: `selab run` and `selab report` on a tiny digits
spec, through the command line's entry point, on the session's Ray.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

import runners.spec
from runners.cli.main import main
from runners.spec.load import parse_spec
from runners.spec.points import TrialRecord, grid_points, resolve_trial
from runners.tracking.journal import JOURNAL_FILE, Journal, read_events
from runners.tracking.mlflow_writer import MlflowWriter
from runners.tracking.schema import open_parent_run
from tests.support import write_spec


def test_the_spec_room_imports_no_torch_ray_or_mlflow() -> None:
    """Every module of runners/spec/, imported in a fresh interpreter."""
    modules = [f"runners.spec.{m.name}" for m in pkgutil.iter_modules(runners.spec.__path__)]
    assert {"runners.spec.sweep", "runners.spec.points", "runners.spec.load"} <= set(modules)
    code = (
        f"import json, sys\nimport {', '.join(modules)}\n"
        "print(json.dumps(sorted(m for m in ('torch', 'ray', 'mlflow') if m in "
        "sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == [], f"imported by {modules}"


def test_a_record_is_the_trials_resolved_settings_and_survives_the_journal(
    tiny_spec, tmp_path: Path
) -> None:
    spec = parse_spec(tiny_spec(search={"grid": {"arch.se.reduction": [8]}, "baseline": True}))
    records = {p.label: TrialRecord.resolve(spec, p.overrides, 3) for p in grid_points(spec)}
    assert set(records) == {"r=8", "no SE"}
    assert records["no SE"].baseline and not records["r=8"].baseline
    assert records["r=8"].run_name == "r=8 seed=3"
    assert records["r=8"].params == resolve_trial(spec, {"arch.se.reduction": 8}, 3).flat_params()
    assert records["r=8"].params["arch.se.reduction"] == "8"
    assert records["no SE"].params["arch.se.enabled"] == "false"

    journal = Journal.of(tmp_path)
    for trial_id, record in enumerate(records.values()):
        journal.append(
            "trial_start",
            trial_id=str(trial_id),
            point=record.overrides,
            seed=3,
            **record.event_fields(),
        )
        journal.append(
            "trial_start", trial_id=f"old{trial_id}", point=record.overrides, seed=3
        )  # as an earlier selab wrote it: resolved again when read
    events = [e for e, _ in read_events(tmp_path / JOURNAL_FILE)]
    assert [TrialRecord.from_event(spec, e) for e in events] == [
        r for r in records.values() for _ in range(2)
    ]


def test_the_writer_names_and_fills_a_run_from_its_start_event(tiny_spec, tmp_path: Path) -> None:
    """What the event says is what MLflow gets, even where resolving the point again would say
    otherwise: the writer does not resolve a trial whose event carries its record."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = tiny_spec(name="records")
    spec = parse_spec(data)
    parent = open_parent_run(spec, json.dumps(data), uri, str(tmp_path / "runs"))
    journal = Journal.of(tmp_path)
    written = TrialRecord(
        "as the driver said",
        True,
        {"arch.se.reduction": 4},
        0,
        {"arch.se.reduction": "4", "seed": "0", "only.in.the.event": "yes"},
    )
    journal.append(
        "trial_start",
        trial_id="new",
        point={"arch.se.reduction": 4},
        seed=0,
        **written.event_fields(),
    )
    journal.append("trial_start", trial_id="old", point={"arch.se.reduction": 8}, seed=0)
    assert MlflowWriter(spec, parent, tmp_path, echo=False).send() == 0

    client = MlflowClient(uri)
    runs = {
        r.data.tags["selab.trial_id"]: r
        for r in client.search_runs([parent.experiment_id], "tags.`selab.role` = 'trial'")
    }
    new, old = runs["new"], runs["old"]
    assert new.data.tags["selab.label"] == "as the driver said"
    assert new.data.tags["mlflow.runName"] == "as the driver said seed=0"
    assert new.data.tags["selab.baseline"] == "true"
    assert json.loads(new.data.tags["selab.point"]) == {"arch.se.reduction": 4}
    assert new.data.params == written.params
    # An old event: the writer resolves it, as the driver would have.
    assert old.data.tags["selab.label"] == "r=8" and old.data.tags["selab.baseline"] == "false"
    assert old.data.params == resolve_trial(spec, {"arch.se.reduction": 8}, 0).flat_params()


def test_selab_run_then_report_on_a_tiny_digits_sweep(
    ray_address: str, tracking_uri: str, tiny_spec, tmp_path: Path, capsys
) -> None:
    """The quick lane's sweep end to end: 2 points x 1 seed, 1 epoch each; every trial's
    start event carries its record, and MLflow holds exactly that; the report is written."""
    spec_file = write_spec(
        tmp_path,
        tiny_spec(
            name="quick",
            train={"epochs": 1},
            search={"grid": {"arch.se.reduction": [8]}, "baseline": True},
        ),
    )
    storage = tmp_path / "runs"
    assert (
        main(
            [
                "run",
                spec_file,
                "--address",
                ray_address,
                "--tracking-uri",
                tracking_uri,
                "--storage",
                str(storage),
            ]
        )
        == 0
    )
    assert "sweep quick: 2 finished" in capsys.readouterr().out
    out = tmp_path / "report"
    assert main(["report", "quick", "--tracking-uri", tracking_uri, "--out", str(out)]) == 0
    assert str(out / "report.html") in capsys.readouterr().out
    assert (out / "report.html").is_file()
    assert "no SE" in (out / "report.html").read_text()

    starts = {
        e["trial_id"]: e
        for e, _ in read_events(storage / "quick" / JOURNAL_FILE)
        if e["kind"] == "trial_start"
    }
    assert len(starts) == 2 and all("params" in e and "label" in e for e in starts.values())
    assert sorted(e["label"] for e in starts.values()) == ["no SE", "r=8"]
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("quick")
    for run in client.search_runs([experiment.experiment_id], "tags.`selab.role` = 'trial'"):
        start = starts[run.data.tags["selab.trial_id"]]
        assert run.data.tags["selab.label"] == start["label"]
        assert run.data.tags["selab.baseline"] == str(start["baseline"]).lower()
        assert run.data.params == start["params"]
        assert run.data.tags["selab.status"] == "finished"
