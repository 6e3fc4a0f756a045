"""The paper's tables as specs (experiments/paper/): every one validates as a user runs it, and a
CPU-sized one runs end to end through the CLI and its report shows the paper's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakedata import write_cifar10
from mlflow import MlflowClient

from runners.cli import main

PAPER = Path(__file__).parents[1] / "experiments" / "paper"
TABLES = ("reduction", "squeeze", "excitation", "stages", "integration", "backbones", "mobile")


def test_there_is_a_spec_and_a_cpu_version_of_every_table() -> None:
    assert {p.stem for p in PAPER.glob("table_*.yaml")} == {f"table_{t}" for t in TABLES}
    assert {p.stem for p in (PAPER / "cpu").glob("table_*.yaml")} == {
        f"table_{t}" for t in TABLES}


def test_every_paper_spec_validates(tmp_path: Path, monkeypatch, capsys) -> None:
    """The CIFAR versions with CIFAR-format files under ./data and no GPU; the CPU versions
    as shipped."""
    monkeypatch.chdir(tmp_path)
    write_cifar10(tmp_path / "data", per_batch=40, test=40)
    cifar = sorted(map(str, PAPER.glob("table_*.yaml")))
    fixes = ["--set", "resources.gpus_per_trial=0", "--set", "data.val_size=100"]
    assert main(["validate", *cifar, *fixes]) == 0, capsys.readouterr().err
    cpu = sorted(map(str, (PAPER / "cpu").glob("table_*.yaml")))
    assert main(["validate", *cpu]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for table in TABLES:
        assert f"paper-{table}:" in out and f"paper-{table}-cpu:" in out


@pytest.mark.timeout(400)
def test_a_cpu_table_runs_and_its_report_shows_the_papers_numbers(
    ray_address: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The excitation table on digits, one epoch, one seed: every trial finishes, and the
    report's table carries the paper's ImageNet SE-ResNet-50 column, marked as the paper's."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = str(PAPER / "cpu" / "table_excitation.yaml")
    code = main(["run", spec, "--address", ray_address, "--tracking-uri", uri,
                 "--storage", str(tmp_path / "runs"), "--set", "train.epochs=1",
                 "--set", "seeds=[0]"])
    assert code == 0, capsys.readouterr()
    assert "5 finished" in capsys.readouterr().out
    assert main(["report", "paper-excitation-cpu", "--tracking-uri", uri]) == 0
    table = (tmp_path / "selab_reports" / "paper-excitation-cpu"
             / "table_arch_se_gate.md").read_text()
    assert "paper" in table.lower() and "ImageNet" in table
    assert "23.47" in table  # the paper's ReLU row (top-1 error, SE-ResNet-50)
    parent = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("paper-excitation-cpu").experiment_id],
        "tags.`selab.role` = 'sweep'")[0]
    assert parent.info.status == "FINISHED"
