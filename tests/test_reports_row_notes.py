"""The note beside an ablation row that trained at chance (reports.tables, reports.notes), read
from a made-up sweep in a real MLflow SQLite store: a placement ablation of ResNet-164 on a
10-class set whose post-placement row stayed at 10% (every gate on the identity path, started
at PyTorch's default init) while the other rows trained."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric, Param

import reports
from reports.tables import row_notes
from search_space import ArchConfig
from tests.support.stores import sqlite_store

NAME = "placement-notes"
N_VAL = 359  # validation images: accuracies are hits / 359
HITS = {"no SE": [340, 342], "standard": [344, 345], "post": [36, 37]}  # post: 10.0-10.3%


def arch_params(placement: str | None) -> dict[str, str]:
    se = {"enabled": False} if placement is None else {"placement": placement}
    arch = ArchConfig.parse(
        {
            "backbone": "cifar_resnet164",
            "num_classes": 10,
            "input_size": 8,
            "in_channels": 1,
            "se": se,
        }
    )
    return arch.flat_params(prefix="arch.")


def build_sweep(root: Path, uri: str) -> str:
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment(NAME, artifact_location=(root / "artifacts").as_uri())
    parent = client.create_run(
        exp,
        run_name=NAME,
        tags={
            "selab.role": "sweep",
            "selab.sweep": NAME,
            "selab.search": "grid",
            "selab.varied": json.dumps(["arch.se.placement", "arch.se.enabled"]),
            "selab.objectives": json.dumps([{"metric": "val_acc", "mode": "max"}]),
            "selab.dataset": "digits",
        },
    ).info.run_id
    now = int(time.time() * 1000)
    for label, hits in HITS.items():
        placement = None if label == "no SE" else label
        point = (
            {"arch.se.enabled": False} if placement is None else {"arch.se.placement": placement}
        )
        for seed, h in enumerate(hits):
            run = client.create_run(
                exp,
                run_name=f"{label} seed={seed}",
                tags={
                    "mlflow.parentRunId": parent,
                    "selab.role": "trial",
                    "selab.sweep": NAME,
                    "selab.point": json.dumps(point),
                    "selab.label": label,
                    "selab.baseline": str(placement is None).lower(),
                    "selab.status": "finished",
                },
            )
            params = arch_params(placement) | {"seed": str(seed)}
            client.log_batch(
                run.info.run_id,
                params=[Param(k, v) for k, v in params.items()],
                metrics=[
                    Metric("val_acc", h / N_VAL, now, 8),
                    Metric("flops", 2.5e8, now, 0),
                    Metric("params", 1.7e6, now, 0),
                ],
            )
            client.set_terminated(run.info.run_id)
    client.set_terminated(parent)
    return uri


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> reports.Sweep:
    root = tmp_path_factory.mktemp("notes")
    return reports.load_sweep(build_sweep(root, sqlite_store(root, tmp_path_factory)), NAME)


def test_the_row_at_chance_gets_the_note_and_the_trained_rows_do_not(sweep):
    table = reports.ablation_tables(sweep)["arch.se.placement"]
    notes = dict(zip(table["setting"], table["note"], strict=True))
    assert notes["post"].startswith("trained at chance: validation accuracy 10.0% on 359 images")
    assert "Bonferroni over 3 rows" in notes["post"]  # the baseline and the two placements
    # what search_space knows about the network at init: the gated identity path, and the fix
    assert "multiplies the identity path" in notes["post"]
    assert "arch.se.gate_init" in notes["post"]
    assert notes["standard"] == "" and notes["no SE"] == ""
    assert row_notes(table) == [f"post: {notes['post']}"]


def test_the_note_is_printed_under_the_markdown_and_html_tables(sweep, tmp_path):
    report = reports.write_report(sweep, tmp_path, log_to_mlflow=False)
    markdown = (tmp_path / "table_arch_se_placement.md").read_text(encoding="utf-8")
    table_end = markdown.rindex("|")
    note_at = markdown.index("- post: trained at chance")
    assert note_at > table_end  # under the table, not a column of it
    assert "standard: trained" not in markdown
    page = report.html_path.read_text(encoding="utf-8")
    assert "<p class='note'>post: trained at chance" in page
