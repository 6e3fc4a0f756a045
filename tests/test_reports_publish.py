"""The answer in MLflow (reports/publish.py), checked against a real `mlflow server` on
127.0.0.1 through its REST API: what a user browsing the UI (or a script calling the API) gets
from the sweep's parent run after `selab report`.

The sweep is logged with MLflow's client as docs/mlflow-schema.md says: a parent run, trial
runs nested under it with selab.* tags, params and per-epoch val_acc.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

import reports
from reports.publish import VIEW_TAG, clip, view_url
from tests.support.mlflow_server import MlflowServer

NAME = "publish-sweep"
# r=16 is one image (1/1000) below r=4 on every seed: within ±1 pp; no SE and r=2 clearly worse
ACCS = {
    None: [0.85, 0.86, 0.87],
    2: [0.90, 0.91, 0.905],
    4: [0.93, 0.94, 0.935],
    16: [0.929, 0.939, 0.934],
}
COST = {None: (2.0e6, 2.0e5), 2: (2.4e6, 2.6e5), 4: (2.2e6, 2.3e5), 16: (2.1e6, 2.1e5)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    srv.start()
    yield srv
    srv.kill()


def log_sweep(client: MlflowClient) -> str:
    exp = client.create_experiment(NAME)
    parent = client.create_run(
        exp,
        run_name=NAME,
        tags={
            "selab.role": "sweep",
            "selab.sweep": NAME,
            "selab.search": "grid",
            "selab.varied": json.dumps(["arch.se.reduction", "arch.se.enabled"]),
            "selab.objectives": json.dumps([{"metric": "val_acc", "mode": "max"}]),
            "selab.dataset": "digits",
        },
    ).info.run_id
    now = int(time.time() * 1000)
    for r, values in ACCS.items():
        point = {"arch.se.enabled": False} if r is None else {"arch.se.reduction": r}
        for seed, acc in enumerate(values):
            label = "no SE" if r is None else f"r={r}"
            run = client.create_run(
                exp,
                run_name=f"{label} seed={seed}",
                tags={
                    "mlflow.parentRunId": parent,
                    "selab.role": "trial",
                    "selab.sweep": NAME,
                    "selab.point": json.dumps(point),
                    "selab.label": label,
                    "selab.baseline": str(r is None).lower(),
                    "selab.status": "finished",
                },
            )
            history = [Metric("val_acc", acc - 0.1 * (3 - e), now, e) for e in (1, 2, 3)]
            client.log_batch(
                run.info.run_id,
                params=[
                    Param("seed", str(seed)),
                    Param("arch.se.reduction", str(r or 16)),
                    Param("arch.se.enabled", str(r is not None).lower()),
                ],
                metrics=[
                    *history,
                    Metric("flops", COST[r][0], now, 0),
                    Metric("params", COST[r][1], now, 0),
                ],
            )
            client.set_terminated(run.info.run_id)
    client.set_terminated(parent)
    return parent


def rest(server: MlflowServer, endpoint: str, **query: str) -> Any:
    url = f"{server.uri}{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return json.loads(body)


def test_the_parent_run_carries_the_answer(server, tmp_path):
    client = MlflowClient(server.uri)
    parent = log_sweep(client)
    sweep = reports.load_sweep(server.uri, NAME)
    report = reports.write_report(sweep, tmp_path / "report")
    rec = report.recommendation
    assert rec.pick.label == "r=16" and rec.best.label == "r=4"

    run = rest(server, "/api/2.0/mlflow/runs/get", run_id=parent)["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["selab.pick"] == "r=16" and tags["selab.best"] == "r=4"
    assert tags["selab.decided"] == "true"
    assert tags["selab.verdict"] == rec.text
    assert rec.text.startswith("Pick r=16: within ±1.00 pp of the best (r=4) by TOST")
    # the description: the verdict first, plain (the runs table's Description column shows
    # that line as it is), then its table
    note = tags["mlflow.note.content"]
    assert note.startswith(f"{rec.text}\n") and "**" not in note.splitlines()[0]
    assert "| r=16 | 3 |" in note and "within ±1.00 pp <- pick" in note

    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics["sweep.best_acc"] == pytest.approx(0.935)
    assert metrics["sweep.pick_acc"] == pytest.approx(0.934)
    assert metrics["sweep.pick_acc_ci_low"] < 0.934 < metrics["sweep.pick_acc_ci_high"]
    assert metrics["sweep.pick_seeds"] == 3 and metrics["sweep.trials_finished"] == 12
    assert metrics["sweep.trials_failed"] == 0 and metrics["sweep.decided"] == 1

    listed = rest(server, "/api/2.0/mlflow/artifacts/list", run_id=parent, path="report")
    names = {f["path"].split("/")[-1] for f in listed["files"]}
    assert {"report.html", "recommendation.md", "configurations.json"} <= names
    with urllib.request.urlopen(
        f"{server.uri}/get-artifact?"
        + urllib.parse.urlencode({"path": "report/configurations.json", "run_uuid": parent}),
        timeout=30,
    ) as resp:
        table = json.loads(resp.read())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    picked = [row for row in rows if row["picked"]]
    assert len(rows) == 4 and [row["configuration"] for row in picked] == ["r=16"]
    assert picked[0]["acc_mean_pct"] == pytest.approx(93.4)
    logged = json.loads(tags["mlflow.loggedArtifacts"])
    assert {"path": "report/configurations.json", "type": "table"} in logged

    # a second report replaces the table and the tags; it does not add rows
    reports.write_report(reports.load_sweep(server.uri, NAME), tmp_path / "again")
    with urllib.request.urlopen(
        f"{server.uri}/get-artifact?"
        + urllib.parse.urlencode({"path": "report/configurations.json", "run_uuid": parent}),
        timeout=30,
    ) as resp:
        assert len(json.loads(resp.read())["data"]) == 4

    exp = rest(server, "/api/2.0/mlflow/experiments/get", experiment_id=sweep.experiment_id)[
        "experiment"
    ]
    view = json.loads({t["key"]: t["value"] for t in exp["tags"]}[VIEW_TAG])
    # trial runs without selab.knob.* tags (an earlier selab's): the varied params instead
    assert "params.`arch.se.reduction`" in view["selectedColumns"]
    assert view["orderByKey"] == "metrics.`val_acc`" and not view["orderByAsc"]
    assert "metrics.`val_acc`" in view["selectedColumns"]
    assert view["runsExpanded"] == {parent: True}
    assert view_url("http://127.0.0.1:5000/", sweep.experiment_id).endswith(
        f"#/experiments/{sweep.experiment_id}/runs?workflowType=machine_learning"
        "&viewStateShareKey=selab"
    )


def test_a_long_description_is_cut_at_a_line_and_says_where_the_rest_is():
    text = "\n".join(f"line {i}" for i in range(2000))
    cut = clip(text, 8000)
    assert len(cut) <= 8000 and cut.endswith("report/recommendation.md has all of it)")
    kept = cut.split("\n\n(cut")[0]
    assert text.startswith(kept + "\n") and len(kept) > 7800  # whole lines, nearly all room
    assert clip("short", 8000) == "short"
