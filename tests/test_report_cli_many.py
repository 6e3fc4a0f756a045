"""`selab report A B` and `selab report A --by KEY`: configurations compared across tasks
(reports.multi) from the command line, on sweeps logged to a real MLflow SQLite store."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from runners.cli.main import main
from tests.support import own_err
from tests.support.stores import sqlite_store
from tests.test_reports_multi import log_sweep


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = sqlite_store(tmp_path_factory.mktemp("many"), tmp_path_factory)
    client = MlflowClient(uri)
    log_sweep(client, "digits", {"no SE": [0.95, 0.96], "r=4": [0.97, 0.97], "r=16": [0.96, 0.97]})
    log_sweep(client, "cifar", {"no SE": [0.80, 0.82], "r=4": [0.83, 0.84], "r=16": [0.84, 0.84]})
    log_sweep(
        client,
        "backbones",
        {
            "no SE@resnet20": [0.9, 0.91],
            "r=4@resnet20": [0.92, 0.93],
            "no SE@resnet56": [0.93, 0.94],
            "r=4@resnet56": [0.95, 0.95],
        },
        backbone_key=True,
    )
    return uri


def test_several_sweep_names_print_the_comparison_and_its_files(uri, tmp_path, capsys):
    out = tmp_path / "across"
    assert main(["report", "digits", "cifar", "--tracking-uri", uri, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Across 2 tasks (digits, cifar), average rank (1 = most accurate):")
    assert "Friedman's test over 3 configurations" in text
    assert "Does SE help across these tasks: not testable with 2 tasks" in text
    assert f"files in {out}: comparison.md, means.csv" in text
    assert (out / "critical_difference.png").is_file()
    assert not (out / "report.html").exists()  # no single-sweep report was written


def test_by_a_varied_key_splits_one_sweep_into_tasks(uri, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "backbones", "--by", "arch.backbone", "--tracking-uri", uri]) == 0
    text = capsys.readouterr().out
    assert "Across 2 tasks (backbone=resnet20, backbone=resnet56)" in text
    assert (tmp_path / "selab_reports" / "backbones-by-arch.backbone" / "means.csv").is_file()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["digits", "cifar", "--by", "arch.backbone"], "--by: splits one sweep into tasks"),
        (["backbones", "--by", "arch.nope"], "--by: 'arch.nope' is not a varied key"),
        (["digits", "nope"], "no sweep 'nope'"),
        (["digits", "digits"], "a sweep is named twice"),
        (
            ["digits", "cifar", "--budget-flops", "40M"],
            "--budget-flops: applies to the report of one sweep",
        ),
    ],
)
def test_bad_comparisons_are_refused_with_the_flag_named(uri, tmp_path, capsys, argv, says):
    rc = main(["report", *argv, "--tracking-uri", uri, "--out", str(tmp_path)])
    err = own_err(capsys)
    assert rc == 2 and says in err and "Traceback" not in err
