"""The answer in MLflow, from the runner's side: trial runs carry their varied knobs as short
tags, a kept network is one of MLflow's logged models (listed in the experiment's Models view
and the runs table's Models column), and the end of `selab run` publishes the answer on the
parent run. Each piece on a real MLflow: a SQLite store in the quick lane, and an
`mlflow server` on 127.0.0.1 read back through its REST API (slow).

Trial runs are made by the driver's own MLflow writer from journal events, as a sweep makes
them; the model file is a real selab network (search_space.serialize).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from reports.publish import VIEW_TAG
from runners.cli.answer import publish_after_run
from runners.spec.load import parse_spec
from runners.spec.points import TrialRecord, grid_points
from runners.storage.models import MODEL_TYPE, fetch_model, keep_models, kept_model, log_model
from runners.tracking.journal import Journal
from runners.tracking.mlflow_writer import MlflowWriter
from runners.tracking.schema import open_parent_run
from search_space import ArchConfig
from search_space.serialize import load_model, save_model
from tests.support.mlflow_server import MlflowServer
from tests.support.specs import tiny_spec
from tests.support.stores import sqlite_store

N_VAL = 360
SEEDS = 3
# Validation hits per seed: r=4 the best, r=8 within ±2 pp of it and cheaper, no SE (the
# cheapest) about 3 pp below: shown worse.
HITS = {"r=4": [352, 353, 352], "r=8": [351, 351, 351], "no SE": [340, 342, 341]}
FLOPS = {"r=4": 1.2e6, "r=8": 1.1e6, "no SE": 1.0e6}


def network_file(folder: Path, reduction: int | None) -> Path:
    se = {"enabled": False} if reduction is None else {"reduction": reduction}
    arch = ArchConfig.parse(
        {
            "backbone": "cifar_resnet8",
            "num_classes": 10,
            "in_channels": 1,
            "input_size": 8,
            "se": se,
        }
    )
    from search_space.networks import build_model

    return save_model(folder / "model.pt", arch, build_model(arch))


def run_sweep_events(spec_data: dict, uri: str, folder: Path, models: bool) -> Any:
    """A three-seed sweep sent to MLflow by the driver's writer: trial_start, one result and
    trial_end per trial, each finished trial with its model file in `folder`."""
    spec = parse_spec(spec_data)
    parent = open_parent_run(spec, json.dumps(spec_data), uri, str(folder / "runs"))
    journal = Journal.of(folder)
    for number, (point, seed) in enumerate((p, s) for p in grid_points(spec) for s in range(SEEDS)):
        trial_id = f"t{number}"
        record = TrialRecord.resolve(spec, point.overrides, seed)
        journal.append(
            "trial_start",
            trial_id=trial_id,
            point=point.overrides,
            seed=seed,
            **record.event_fields(),
        )
        acc = HITS[point.label][seed] / N_VAL
        journal.append(
            "result",
            trial_id=trial_id,
            step=1,
            metrics={"val_acc": acc},
            cost={"flops": FLOPS[point.label], "params": 1e5},
        )
        model = (
            network_file(
                folder / trial_id,
                point.overrides.get("arch.se.reduction") if not point.baseline else None,
            )
            if models
            else None
        )
        journal.append(
            "trial_end",
            trial_id=trial_id,
            status="finished",
            mlflow_status="FINISHED",
            epochs_done=1,
            best_val_acc=acc,
            error="",
            traceback="",
            model=str(model or ""),
        )
    journal.append("sweep", status="FINISHED")
    assert MlflowWriter(spec, parent, folder, echo=False).send() == 0
    return parent


def trial_runs(client: MlflowClient, parent: Any) -> dict[str, Any]:
    runs = client.search_runs([parent.experiment_id], "tags.`selab.role` = 'trial'")
    return {r.info.run_name: r for r in runs}


RACED = tiny_spec(
    name="answer",
    seeds={"initial": SEEDS, "max": SEEDS, "margin": 2.0},
    tracking={"models": "all"},
    search={"grid": {"arch.se.reduction": [4, 8]}, "baseline": True},
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One SQLite store for the module (making one costs seconds): the sweep, as the writer
    sent it with tracking.models: all."""
    folder = tmp_path_factory.mktemp("answer")
    uri = sqlite_store(folder, tmp_path_factory)
    # artifacts (the logged models) in the test's folder, not under ./mlruns
    MlflowClient(uri).create_experiment("answer", artifact_location=str(folder / "artifacts"))
    return {
        "uri": uri,
        "folder": folder,
        "parent": run_sweep_events(RACED, uri, folder, models=True),
    }


def test_trial_runs_carry_their_knobs_as_short_tags(store):
    runs = trial_runs(MlflowClient(store["uri"]), store["parent"])
    knobs = {
        name: {k: v for k, v in run.data.tags.items() if k.startswith("selab.knob.")}
        for name, run in runs.items()
    }
    assert knobs["r=4 seed=0"] == {"selab.knob.r": "4", "selab.knob.se": "on"}
    assert knobs["no SE seed=1"] == {"selab.knob.r": "—", "selab.knob.se": "off"}
    assert len(runs) == 9


def test_tracking_models_all_logs_each_network_as_a_logged_model_of_its_run(store, tmp_path):
    client, parent = MlflowClient(store["uri"]), store["parent"]
    runs = trial_runs(client, parent)
    run = runs["r=8 seed=1"]
    model = kept_model(client, run)
    assert model is not None and model.model_type == MODEL_TYPE
    assert model.name == "r8_seed1" and model.source_run_id == run.info.run_id
    assert model.params == {"r": "8", "se": "on", "seed": "1"}
    # linked as the run's output: what the runs table's Models column reads
    outputs = client.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [model.model_id]
    # the run's final accuracy and cost, linked to the model (the Models view's columns)
    linked = {m.key: m.value for m in client.get_logged_model(model.model_id).metrics}
    assert linked == {"val_acc": pytest.approx(351 / N_VAL), "flops": 1.1e6, "params": 1e5}
    # the file comes back as the network it is, from MLflow
    arch, _ = load_model(fetch_model(client, run, tmp_path / "fetched"))
    assert arch.se.reduction == 8
    # sent again (a journal resent by `selab sync`): still one model per run
    again = log_model(client, run.info.run_id, store["folder"] / "t0" / "model.pt")
    assert again == model.model_id
    assert keep_models(client, list(runs.values())) == []
    assert len(client.search_logged_models([parent.experiment_id])) == 9


def test_the_end_of_a_run_publishes_the_answer_on_the_parent_run(store):
    uri, parent = store["uri"], store["parent"]
    lines = publish_after_run(uri, "answer", parent.experiment_id, parent.run_id)
    client = MlflowClient(uri)
    tags = client.get_run(parent.run_id).data.tags
    assert lines[0] == tags["selab.verdict"]
    # the raced sweep's own margin (2 points), as `selab report` would use it
    assert lines[0].startswith("Pick r=8: within ±2.00 pp of the best (r=4) by TOST")
    assert lines[0].endswith("the cheaper no SE is shown worse.")
    assert "selab ui --tracking-uri" in lines[1] and "selab report answer" in lines[1]
    assert tags["mlflow.note.content"].startswith(lines[0])
    view = json.loads(client.get_experiment(parent.experiment_id).tags[VIEW_TAG])
    assert view["selectedColumns"] == [
        "metrics.`val_acc`",
        "metrics.`flops`",
        "tags.`selab.knob.r`",
        "tags.`selab.knob.se`",
        "tags.`selab.status`",
    ]
    assert view["columnOrder"] == view["selectedColumns"]  # accuracy, then the knobs
    # a parent run that is not the newest of its name is not this driver's: nothing published
    assert publish_after_run(uri, "answer", parent.experiment_id, "another-run") == []


def test_a_failure_to_publish_is_one_line_not_an_error(store):
    lines = publish_after_run(store["uri"], "gone", "999", "x")  # no such experiment
    assert len(lines) == 1 and lines[0].startswith(
        "The answer was not published to MLflow (MlflowException: "
    )
    assert "selab report gone" in lines[0]


def test_a_searched_trial_is_named_as_mlflow_allows(store, tmp_path):
    """A search's label holds floats and masks (lr=0.0741 stages=0,1,0): MLflow refuses '.'
    in a model's name."""
    client = MlflowClient(store["uri"])
    experiment = client.create_experiment("searched", artifact_location=str(tmp_path / "art"))
    run = client.create_run(
        experiment,
        tags={"selab.label": "r=2 stages=0,1,0 lr=0.0740665", "selab.knob.lr": "0.0740665"},
    )
    client.log_batch(run.info.run_id, params=[Param("seed", "3")])
    model_id = log_model(client, run.info.run_id, network_file(tmp_path, 2))
    model = client.get_logged_model(model_id)
    assert model.name == "r2_stages0,1,0_lr0-0740665_seed3"
    assert model.params == {"lr": "0.0740665", "seed": "3"}


def test_models_of_an_earlier_selab_are_still_found(store, tmp_path):
    """A run whose model is its artifact model/model.pt (how selab kept models before logged
    models) is read as kept, and is not logged a second time."""
    client = MlflowClient(store["uri"])
    experiment = client.create_experiment("old", artifact_location=str(tmp_path / "art"))
    run = client.create_run(experiment, tags={"selab.label": "r=4"})
    client.log_batch(run.info.run_id, metrics=[Metric("val_acc", 0.9, int(time.time()), 1)])
    client.log_artifact(run.info.run_id, str(network_file(tmp_path, 4)), "model")
    run = client.get_run(run.info.run_id)
    assert kept_model(client, run) is None
    assert keep_models(client, [run]) == []  # already in MLflow
    arch, _ = load_model(fetch_model(client, run, tmp_path / "fetched"))
    assert arch.se.reduction == 4


# ----------------------------------------------------------------------------- a real server


def rest(server: MlflowServer, endpoint: str, body: dict | None = None, **query: str) -> Any:
    url = f"{server.uri}{endpoint}?{urllib.parse.urlencode(query)}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if data else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_the_answer_knobs_and_models_through_the_rest_api(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    try:
        parent = run_sweep_events(RACED, server.uri, tmp_path, models=True)
        publish_after_run(server.uri, "answer", parent.experiment_id, parent.run_id)
        run = rest(server, "/api/2.0/mlflow/runs/get", run_id=parent.run_id)["run"]
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["selab.pick"] == "r=8" and tags["selab.decided"] == "true"
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics["sweep.trials_finished"] == 9
        assert metrics["sweep.pick_acc"] == pytest.approx(351 / N_VAL)

        found = rest(
            server,
            "/api/2.0/mlflow/runs/search",
            {"experiment_ids": [parent.experiment_id], "filter": "tags.`selab.knob.se` = 'off'"},
        )["runs"]
        assert sorted(r["info"]["run_name"] for r in found) == [
            f"no SE seed={seed}" for seed in range(SEEDS)
        ]
        models = rest(
            server,
            "/api/2.0/mlflow/logged-models/search",
            {"experiment_ids": [parent.experiment_id]},
        )["models"]
        names = sorted(m["info"]["name"] for m in models)
        assert names == sorted(
            f"{label}_seed{seed}" for label in ("no_SE", "r4", "r8") for seed in range(SEEDS)
        )
        assert {m["info"]["status"] for m in models} == {"LOGGED_MODEL_READY"}
        # each model's file is served by the server, and rebuilds the network
        client = MlflowClient(server.uri)
        r4 = next(
            r for r in client.search_runs([parent.experiment_id], "tags.`selab.label` = 'r=4'")
        )
        arch, _ = load_model(fetch_model(client, r4, tmp_path / "from-server"))
        assert arch.se.reduction == 4
    finally:
        server.kill()
