"""Trained networks through the CLI, as a user gets them: a real sweep on the local Ray, then
`selab report` (keeps the recommended and Pareto models), `selab export`, `selab analyze` and
`selab resume` of the finished sweep, all on a real MLflow SQLite store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient

from runners.cli.main import main
from runners.spec.data import DataConfig
from runners.spec.load import parse_spec
from runners.storage.models import MODEL_TAG, logged_model
from runners.sweep.run import run_sweep
from runners.trial.data.load import load_splits
from search_space.serialize import load_model
from tests.support import tiny_spec

NAME = "kept"


@pytest.fixture(scope="module")
def swept(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """r=4 and r=8 and the no-SE baseline, 3 epochs, a checkpoint every 2 epochs."""
    root = tmp_path_factory.mktemp("kept")
    uri, storage = f"sqlite:///{root / 'mlflow.db'}", root / "runs"
    data = tiny_spec(
        name=NAME, search={"baseline": True}, train={"epochs": 3, "checkpoint_every": 2}
    )
    result = run_sweep(
        parse_spec(data),
        yaml.safe_dump(data),
        address=ray_address,
        tracking_uri=uri,
        storage=str(storage),
    )
    assert result.complete and result.statuses["finished"] == 3
    return {"uri": uri, "storage": storage, "root": root}


def trial_runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(NAME)
    return [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("selab.role") == "trial"
    ]


def test_a_finished_trial_keeps_only_its_last_checkpoint_which_holds_its_network(swept):
    runs = trial_runs(swept["uri"])
    assert len(runs) == 3
    for run in runs:
        model_file = Path(run.data.tags[MODEL_TAG])
        assert model_file.is_file(), "the tagged model is not where MLflow says"
        checkpoints = sorted(model_file.parent.parent.glob("checkpoint_*"))
        assert checkpoints == [model_file.parent], "older checkpoints of a finished trial kept"
        assert not (model_file.parent / "trainer.pt").exists()  # no optimizer state kept
        arch, model = load_model(model_file)
        assert arch.flat_params()["arch.se.enabled"] == run.data.params["arch.se.enabled"]


def test_report_logs_the_models_of_the_recommended_configuration_and_the_front(
    swept, monkeypatch, capsys
):
    monkeypatch.chdir(swept["root"])
    assert main(["report", NAME, "--tracking-uri", swept["uri"]]) == 0
    out = capsys.readouterr().out
    assert "logged to MLflow" in out
    client = MlflowClient(swept["uri"])
    kept = [r for r in trial_runs(swept["uri"]) if logged_model(client, r.info.run_id)]
    assert kept, "no model logged"
    points = pd.read_csv(swept["root"] / "selab_reports" / NAME / "pareto_flops.csv")
    front_labels = set(points["label"])
    assert {r.data.tags["selab.label"] for r in kept} >= front_labels


def test_an_exported_network_reproduces_the_trials_validation_accuracy(swept, tmp_path):
    run = next(r for r in trial_runs(swept["uri"]) if r.data.tags["selab.label"] == "r=8")
    out = tmp_path / "r8.pt"
    code = main(
        ["export", NAME, "--trial", "r=8 seed=0", "--out", str(out), "--tracking-uri", swept["uri"]]
    )
    assert code == 0
    payload = torch.load(out, weights_only=True)
    assert payload["arch"]["se"]["reduction"] == 8
    _, model = load_model(out)
    splits = load_splits(DataConfig.model_validate({"name": "digits"}), "cpu")
    hits = total = 0
    with torch.no_grad():
        for x, y in splits.eval_batches("val", 512):
            hits += int((model(x).argmax(1) == y).sum())
            total += len(y)
    assert hits / total == pytest.approx(run.data.metrics["val_acc"], abs=1e-9)


def test_analyze_writes_the_excitation_tables_and_figures_and_logs_them(swept, tmp_path):
    out = tmp_path / "exc"
    code = main(
        ["analyze", NAME, "--trials", "r=4", "--out", str(out), "--tracking-uri", swept["uri"]]
    )
    assert code == 0
    folder = out / "r4_seed0"
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["block"]) == ["stage1.unit1", "stage2.unit1", "stage3.unit1"]
    per_class = pd.read_csv(folder / "per_class.csv")
    assert set(per_class["class"].astype(str)) == {str(d) for d in range(10)} | {"all"}
    assert (folder / "per_class.png").stat().st_size > 0
    run = next(r for r in trial_runs(swept["uri"]) if r.data.tags["selab.label"] == "r=4")
    logged = {
        a.path for a in MlflowClient(swept["uri"]).list_artifacts(run.info.run_id, "excitation")
    }
    assert logged == {
        f"excitation/{n}" for n in ("per_class.csv", "summary.csv", "per_class.png", "summary.png")
    }
    # The baseline has no gate: asked for alone, it is refused with the reason.
    assert main(["analyze", NAME, "--trials", "no SE", "--tracking-uri", swept["uri"]]) == 2


def test_resume_of_a_finished_sweep_says_so_and_changes_nothing(swept, capsys):
    client = MlflowClient(swept["uri"])
    exp = client.get_experiment_by_name(NAME)
    parent = next(
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("selab.role") == "sweep"
    )
    folder = swept["storage"] / NAME
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert main(["resume", NAME, "--storage", str(swept["storage"])]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert after == before, "resume of a finished sweep touched its folder"
    again = client.get_run(parent.info.run_id).info
    assert (again.status, again.end_time) == ("FINISHED", parent.info.end_time)


def test_the_report_shows_the_excitation_figures_analyze_logged(swept, monkeypatch):
    monkeypatch.chdir(swept["root"])
    assert (
        main(
            [
                "analyze",
                NAME,
                "--trials",
                "r=8 seed=0",
                "--out",
                str(swept["root"] / "exc"),
                "--tracking-uri",
                swept["uri"],
            ]
        )
        == 0
    )
    assert main(["report", NAME, "--tracking-uri", swept["uri"], "--no-log"]) == 0
    page = (swept["root"] / "selab_reports" / NAME / "report.html").read_text()
    assert "<h2>Excitation analysis</h2>" in page
    assert "<h3>r=8 seed 0: per-class mean excitations</h3>" in page
