"""Sweeps end to end: a real local Ray (2 CPUs), a real MLflow SQLite store, tiny trials.

Each sweep trains SE-ResNet-8 on digits for a few sub-second epochs; what is checked is the
record a sweep leaves (docs/mlflow-schema.md), not the accuracy it reaches.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from mlflow import MlflowClient
from mlflow.entities import ViewType
from ray import cloudpickle, tune

from runners.cli.commands.sweep import _print_result
from runners.cli.main import main
from runners.spec.load import parse_spec
from runners.spec.points import grid_points, resolve_trial, stage_masks
from runners.storage.paths import SWEEP_META_FILE
from runners.sweep.run import resume_sweep, run_sweep
from runners.trial.trainable import train_trial
from tests.support import own_err, running_selab, write_spec
from tests.support.fakedata import write_cifar10
from tests.support.sweep_state import state_statuses, wait_for_kill_point

# The trial functions below run in Ray workers, which cannot import this test module by name:
# send them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in tmp_path: MLflow puts a new experiment's artifacts under ./mlruns."""
    monkeypatch.chdir(tmp_path)


def failing_trial(
    config: dict[str, Any], spec: Any, *, fail_reduction: int, attempts_file: str
) -> None:
    """train_trial, except that the point with arch.se.reduction == fail_reduction raises (and
    leaves a line in attempts_file per attempt)."""
    if config["point"].get("arch.se.reduction") == fail_reduction:
        with open(attempts_file, "a") as attempts:
            attempts.write("attempt\n")
        raise RuntimeError(f"injected failure for r={fail_reduction}\nthe cause, on line two")
    train_trial(config, spec)


def grid_spec(tiny_spec, name: str, grid: dict[str, list[Any]], **sections: Any) -> dict:
    """tiny_spec with its grid replaced by `grid` (tiny_spec would merge the two)."""
    data = tiny_spec(name=name, **sections)
    data["search"]["grid"] = grid
    return data


def history(client: MlflowClient, run: Any, key: str) -> list[tuple[int, float]]:
    """(step, value) of every logged value of a metric, by step."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


def steps(client: MlflowClient, run: Any, key: str) -> list[int]:
    return [step for step, _ in history(client, run, key)]


def by_label(runs: list[Any]) -> dict[str, Any]:
    labelled = {r.data.tags["selab.label"]: r for r in runs}
    assert len(labelled) == len(runs), "two trial runs with the same label"
    return labelled


def experiment_runs(uri: str, experiment: str, view: int = ViewType.ACTIVE_ONLY) -> list[Any]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    return client.search_runs([exp.experiment_id], run_view_type=view, max_results=1000)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.timeout(120)
def test_a_bad_spec_fails_before_anything_starts(
    tiny_spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shape errors and bad grid points: exit code 2, the field and its allowed values on
    stderr, and no MLflow store, Ray folder or Ray instance."""
    db, storage = tmp_path / "mlflow.db", tmp_path / "runs"
    ray_was_running = ray.is_initialized()
    cases = {
        "kind": (
            tiny_spec(name="bad_kind", search={"kind": "random"}),
            ["search.kind", "'grid', 'tpe' or 'nsga2'"],
        ),
        "point": (
            tiny_spec(name="bad_point", search={"grid": {"arch.se.gate": ["sigmoid", "softmax"]}}),
            ["grid point", "arch.se.gate", "softmax", "'sigmoid', 'hard_sigmoid'"],
        ),
    }
    for case, (data, expected) in cases.items():
        path = write_spec(tmp_path / f"{case}.yaml", data)
        code = main(["run", path, "--tracking-uri", f"sqlite:///{db}", "--storage", str(storage)])
        err = own_err(capsys)
        assert code == 2, err
        assert "selab run: invalid input" in err and "Traceback" not in err
        for text in expected:
            assert text in err, f"{case}: {text!r} not in {err!r}"
        assert not db.exists(), "a bad spec opened the MLflow store"
        assert not storage.exists(), "a bad spec created the Ray folder"
        assert ray.is_initialized() == ray_was_running, "a bad spec started Ray"
        # Nothing else either (MLflow's ./mlruns, the default ./selab_runs, ...).
        assert {p.name for p in tmp_path.iterdir()} <= {"kind.yaml", "point.yaml"}


# ----------------------------------------------------------------------------- grid


@pytest.mark.timeout(300)
def test_grid_sweep_records_every_trial(
    ray_address: str,
    tracking_uri: str,
    tmp_path: Path,
    tiny_spec,
    sweep_runs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage = tmp_path / "runs"
    data = tiny_spec(name="grid", search={"baseline": True})  # r=4, r=8 and no SE
    spec = parse_spec(data)
    result = run_sweep(
        spec,
        yaml.safe_dump(data),
        address=ray_address,
        tracking_uri=tracking_uri,
        storage=str(storage),
    )
    assert result.complete
    assert result.statuses == Counter(finished=3)

    client = MlflowClient(tracking_uri)
    parent, trials = sweep_runs(tracking_uri, "grid")
    assert parent.info.run_id == result.parent_run_id
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "grid"
    tags = parent.data.tags
    assert tags["selab.role"] == "sweep" and tags["selab.sweep"] == "grid"
    assert tags["selab.search"] == "grid" and tags["selab.dataset"] == "digits"
    assert json.loads(tags["selab.varied"]) == ["arch.se.reduction", "arch.se.enabled"]
    assert json.loads(tags["selab.objectives"]) == [{"metric": "val_acc", "mode": "max"}]
    assert Path(tags["selab.storage"]) == storage.resolve() / "grid"
    # The fixed part only: varied keys and the seed are per trial.
    assert parent.data.params["train.lr"] == "0.05"
    assert parent.data.params["data.name"] == "digits"
    assert "arch.se.reduction" not in parent.data.params and "seed" not in parent.data.params
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert "spec.yaml" in artifacts
    logged = client.download_artifacts(parent.info.run_id, "spec.yaml", str(tmp_path))
    assert yaml.safe_load(Path(logged).read_text()) == data

    assert len(trials) == 3
    assert len({t.data.tags["selab.trial_id"] for t in trials}) == 3
    runs = by_label(trials)
    assert set(runs) == {"r=4", "r=8", "no SE"}
    points = {
        "r=4": {"arch.se.reduction": 4},
        "r=8": {"arch.se.reduction": 8},
        "no SE": {"arch.se.enabled": False},
    }
    for label, run in runs.items():
        tags = run.data.tags
        assert tags["selab.role"] == "trial" and tags["selab.sweep"] == "grid"
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["selab.status"] == "finished" and run.info.status == "FINISHED"
        assert tags["selab.device"] == "cpu"  # where it trained
        assert json.loads(tags["selab.point"]) == points[label]
        assert tags["selab.baseline"] == ("true" if label == "no SE" else "false")
        assert "selab.error" not in tags
        # The trial's full config, exactly as the spec resolves it.
        expected = resolve_trial(spec, points[label], 0).flat_params()
        assert run.data.params == expected
        assert run.data.params["data.name"] == "digits" and run.data.params["seed"] == "0"
        assert run.data.params["train.epochs"] == "2"
        # Per-epoch metrics at steps 1..epochs, once each; accuracies are fractions.
        for key in (
            "val_acc",
            "val_loss",
            "train_loss",
            "val_top5",
            "images_per_s",
            "epoch_time_s",
        ):
            assert steps(client, run, key) == [1, 2], key
        val_acc = [v for _, v in history(client, run, "val_acc")]
        assert all(0.0 <= v <= 1.0 for v in val_acc)
        assert run.data.metrics["best_val_acc"] == pytest.approx(max(val_acc))
        assert run.data.metrics["epochs_done"] == 2
        # Cost once, at step 0, per stage too.
        for key in ("flops", "params", "se_flops", "se_params", "stage3.se_flops"):
            assert steps(client, run, key) == [0], key
        metrics = run.data.metrics
        for key in ("se_flops", "se_params"):
            assert metrics[key] == sum(metrics[f"stage{i}.{key}"] for i in (1, 2, 3))
    assert runs["r=8"].data.params["arch.se.reduction"] == "8"
    assert runs["no SE"].data.params["arch.se.enabled"] == "false"
    cost = {label: run.data.metrics for label, run in runs.items()}
    assert cost["no SE"]["se_params"] == 0 and cost["no SE"]["se_flops"] == 0
    # A smaller reduction ratio is a wider SE bottleneck: more parameters and FLOPs.
    assert cost["r=4"]["se_params"] > cost["r=8"]["se_params"] > 0
    for key in ("flops", "params"):
        assert cost["r=4"][key] > cost["r=8"][key] > cost["no SE"][key]
        assert cost["r=4"][key] - cost["no SE"][key] == cost["r=4"][f"se_{key}"]

    # `selab resume` of a name this storage does not hold lists the sweeps it does.
    capsys.readouterr()
    assert main(["resume", "unknown", "--storage", str(storage)]) == 2
    err = own_err(capsys)
    assert "no sweep 'unknown' to resume" in err
    assert "Sweeps there: grid;" in err


@pytest.mark.timeout(300)
def test_cifar_under_a_relative_root_trains_through_the_cli(
    ray_address: str,
    tracking_uri: str,
    tmp_path: Path,
    tiny_spec,
    sweep_runs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CIFAR-format files under ./data and storage ./runs, both relative, as the README says:
    Ray runs each trial in a folder of its own, so the driver must make them absolute. The
    trials finish, select on a validation split carved from the training batches, and log the
    official test split's accuracy beside it."""
    write_cifar10(tmp_path / "data", per_batch=200, test=200)
    data = tiny_spec(
        name="cifar",
        data={"name": "cifar10", "root": "./data", "val_size": 200},
        train={"epochs": 1, "batch_size": 100},
        storage="./runs",
    )
    spec_file = write_spec(tmp_path, data)
    code = main(["run", spec_file, "--address", ray_address, "--tracking-uri", tracking_uri])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "sweep cifar: 2 finished" in out

    client = MlflowClient(tracking_uri)
    parent, trials = sweep_runs(tracking_uri, "cifar")
    assert parent.info.status == "FINISHED"
    assert Path(parent.data.tags["selab.storage"]) == tmp_path / "runs" / "cifar"
    assert len(trials) == 2
    for run in trials:
        assert run.data.tags["selab.status"] == "finished"
        assert run.data.params["data.root"] == str(tmp_path / "data")
        assert run.data.params["arch.input_size"] == "32"
        assert steps(client, run, "val_acc") == [1]
        assert steps(client, run, "test_acc") == [1]  # once, at the last epoch
        assert 0.0 <= run.data.metrics["test_acc"] <= 1.0
        assert run.data.metrics["epochs_done"] == 1


# ----------------------------------------------------------------------------- search


@pytest.mark.timeout(300)
def test_nsga2_search_samples_points_from_the_space(
    ray_address: str, tracking_uri: str, tmp_path: Path, tiny_spec, sweep_runs
) -> None:
    reductions = [2, 4, 8, 16]
    spec = parse_spec(
        tiny_spec(
            name="nsga",
            train={"epochs": 1},
            search={
                "kind": "nsga2",
                "grid": {},
                "num_samples": 4,
                "sampler_seed": 3,
                "space": {
                    "arch.se.reduction": {"choice": reductions},
                    "arch.se.stages": {"mask": True},
                },
                "objectives": [
                    {"metric": "val_acc", "mode": "max"},
                    {"metric": "flops", "mode": "min"},
                ],
            },
        )
    )
    result = run_sweep(
        spec, address=ray_address, tracking_uri=tracking_uri, storage=str(tmp_path / "runs")
    )
    assert result.complete
    assert result.statuses == Counter(finished=4)

    client = MlflowClient(tracking_uri)
    parent, trials = sweep_runs(tracking_uri, "nsga")
    assert parent.data.tags["selab.search"] == "nsga2"
    assert json.loads(parent.data.tags["selab.objectives"]) == [
        {"metric": "val_acc", "mode": "max"},
        {"metric": "flops", "mode": "min"},
    ]
    assert json.loads(parent.data.tags["selab.varied"]) == ["arch.se.reduction", "arch.se.stages"]
    assert len(trials) == 4
    assert len({t.data.tags["selab.trial_id"] for t in trials}) == 4
    masks = stage_masks(3)
    for run in trials:
        assert run.data.tags["selab.status"] == "finished" and run.info.status == "FINISHED"
        point = json.loads(run.data.tags["selab.point"])
        assert set(point) == {"arch.se.reduction", "arch.se.stages"}
        assert point["arch.se.reduction"] in reductions
        assert point["arch.se.stages"] in masks
        assert run.data.params == resolve_trial(spec, point, 0).flat_params()
        assert run.data.params["arch.se.stages"] == point["arch.se.stages"]
        assert steps(client, run, "val_acc") == [1]
        # The trial built what it was given: SE costs exactly in the stages the mask enables.
        metrics = run.data.metrics
        for i, bit in enumerate(point["arch.se.stages"].split(","), start=1):
            assert (metrics[f"stage{i}.se_params"] > 0) == (bit == "1"), (point, i)
        assert metrics["se_params"] == sum(metrics[f"stage{i}.se_params"] for i in (1, 2, 3))


@pytest.mark.timeout(300)
def test_asha_stops_hopeless_trials_early(
    ray_address: str, tracking_uri: str, tmp_path: Path, tiny_spec, sweep_runs
) -> None:
    """Two trials that learn, then two whose lr is too small to learn anything: ASHA (grace
    period 1) must stop the latter after their first epoch, below the rung's median."""
    epochs = 4
    spec = parse_spec(
        grid_spec(
            tiny_spec,
            "asha",
            {"train.lr": [0.05, 0.1, 1e-6, 1e-7]},
            train={"epochs": epochs},
            scheduler={"kind": "asha", "grace_period": 1, "reduction_factor": 2},
        )
    )
    result = run_sweep(
        spec, address=ray_address, tracking_uri=tracking_uri, storage=str(tmp_path / "runs")
    )
    assert result.complete
    assert result.statuses["stopped_early"] >= 2
    assert result.statuses["finished"] >= 1  # the first trial at every rung goes on

    client = MlflowClient(tracking_uri)
    _, trials = sweep_runs(tracking_uri, "asha")
    runs = by_label(trials)
    assert set(runs) == {"lr=0.05", "lr=0.1", "lr=1e-06", "lr=1e-07"}
    for label in ("lr=1e-06", "lr=1e-07"):
        run = runs[label]
        assert run.data.tags["selab.status"] == "stopped_early", label
        assert run.info.status == "FINISHED"
        assert run.data.metrics["epochs_done"] == 1
        assert steps(client, run, "val_acc") == [1]
    statuses = Counter(run.data.tags["selab.status"] for run in trials)
    assert statuses == result.statuses
    for run in trials:
        done = int(run.data.metrics["epochs_done"])
        assert steps(client, run, "val_acc") == list(range(1, done + 1))
        finished = run.data.tags["selab.status"] == "finished"
        assert finished == (done == epochs), run.data.tags["selab.label"]


# ----------------------------------------------------------------------------- faults


@pytest.mark.timeout(300)
def test_a_failing_trial_is_retried_then_recorded_as_failed(
    ray_address: str,
    tracking_uri: str,
    tmp_path: Path,
    tiny_spec,
    sweep_runs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    attempts = tmp_path / "attempts.txt"
    spec = parse_spec(
        tiny_spec(
            name="faulty",
            train={"epochs": 1},
            failure={"max_retries": 1},
            search={"grid": {"arch.se.reduction": [4, 8, 16]}},
        )
    )
    trial = functools.partial(failing_trial, fail_reduction=8, attempts_file=str(attempts))
    result = run_sweep(
        spec,
        address=ray_address,
        tracking_uri=tracking_uri,
        storage=str(tmp_path / "runs"),
        trial_function=trial,
    )
    assert result.complete
    assert result.statuses == Counter(finished=2, failed=1)
    assert attempts.read_text().count("attempt") == 2  # the first try and one retry
    # A failed trial fails the sweep: exit code 1, the trial named in the summary.
    assert result.failed == ["r=8 seed=0: RuntimeError: injected failure for r=8"]
    assert result.exit_code == 1
    capsys.readouterr()
    assert _print_result(result) == 1
    out = capsys.readouterr().out
    assert "1 trial(s) failed" in out and "r=8 seed=0: RuntimeError" in out

    client = MlflowClient(tracking_uri)
    parent, trials = sweep_runs(tracking_uri, "faulty")
    assert parent.info.status == "FAILED"
    assert len(trials) == 3  # the retry continued the failed trial's run
    runs = by_label(trials)
    failed = runs["r=8"]
    assert failed.data.tags["selab.status"] == "failed"
    assert failed.info.status == "FAILED"
    # The whole message, not its last line; the traceback as an artifact.
    assert failed.data.tags["selab.error"] == (
        "RuntimeError: injected failure for r=8\nthe cause, on line two"
    )
    trace = Path(client.download_artifacts(failed.info.run_id, "error.txt", str(tmp_path)))
    text = trace.read_text()
    assert "in failing_trial" in text and "test_sweep.py" in text  # the stack, every frame
    assert text.count("Failure #") == 2  # both attempts
    assert failed.data.metrics["epochs_done"] == 0
    assert steps(client, failed, "val_acc") == []
    for label in ("r=4", "r=16"):
        assert runs[label].data.tags["selab.status"] == "finished"
        assert runs[label].info.status == "FINISHED"
        assert "selab.error" not in runs[label].data.tags
        assert steps(client, runs[label], "val_acc") == [1]


@pytest.mark.timeout(300)
def test_a_diverging_trial_is_recorded_as_diverged(
    ray_address: str, tracking_uri: str, tmp_path: Path, tiny_spec, sweep_runs
) -> None:
    spec = parse_spec(grid_spec(tiny_spec, "diverge", {"train.lr": [0.05, 1e6]}))
    result = run_sweep(
        spec, address=ray_address, tracking_uri=tracking_uri, storage=str(tmp_path / "runs")
    )
    assert result.complete and result.exit_code == 0  # diverging is an allowed ending
    assert result.statuses == Counter(finished=1, diverged=1)

    client = MlflowClient(tracking_uri)
    parent, trials = sweep_runs(tracking_uri, "diverge")
    assert parent.info.status == "FINISHED"
    runs = by_label(trials)
    diverged, healthy = runs["lr=1e+06"], runs["lr=0.05"]
    assert diverged.data.tags["selab.status"] == "diverged"
    assert diverged.info.status == "FINISHED"
    assert diverged.data.metrics["epochs_done"] == 1  # of 2: it ended at the first NaN
    ((step, loss),) = history(client, diverged, "train_loss")
    assert step == 1 and not math.isfinite(loss)
    assert healthy.data.tags["selab.status"] == "finished"
    assert healthy.data.metrics["epochs_done"] == 2
    assert all(math.isfinite(v) for _, v in history(client, healthy, "train_loss"))


# ----------------------------------------------------------------------------- resume


def saved_trial_statuses(folder: Path) -> dict[str, str]:
    """Trial id -> status in the experiment state Ray has saved to the sweep's folder (what a
    driver that dies leaves for `selab resume`)."""
    statuses: dict[str, str] = {}
    for state_file in sorted(folder.glob("experiment_state-*.json")):
        try:
            statuses.update(state_statuses(state_file.read_text()))
        except (OSError, ValueError, KeyError):  # being rewritten right now
            continue
    return statuses


def wait_for_free_cpus(cpus: float, limit_s: float = 60) -> None:
    """Ray ends a dead driver's trial actors on its own; wait (bounded) until it has."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and ray.available_resources().get("CPU", 0) < cpus:
        time.sleep(0.5)


@pytest.mark.timeout(600)
def test_resume_after_the_driver_is_killed(
    ray_address: str, tracking_uri: str, tmp_path: Path, tiny_spec, sweep_runs
) -> None:
    """`selab run` in a subprocess, SIGKILLed once a 1-epoch trial has finished while a
    6-epoch one trains; `resume_sweep` then ends every trial, each in exactly one MLflow run,
    without running the finished ones again."""
    storage = tmp_path / "runs"
    folder = storage / "resume"
    data = grid_spec(tiny_spec, "resume", {"train.epochs": [1, 6], "arch.se.reduction": [4, 8, 16]})
    spec = parse_spec(data)
    log = tmp_path / "driver.log"
    # The driver joins the test session's Ray rather than starting another one; it is
    # SIGKILLed when the block ends: no handler runs, nothing is closed.
    run = [
        "run",
        write_spec(tmp_path, data),
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--storage",
        str(storage),
    ]
    with running_selab(run, cwd=tmp_path, log=log) as driver:
        wait_for_kill_point(
            lambda: saved_trial_statuses(folder), tracking_uri, "resume", driver, log
        )

    parent, before = sweep_runs(tracking_uri, "resume")
    assert parent.info.status == "RUNNING"  # the driver died without closing it
    saved = saved_trial_statuses(folder)
    done_before = {
        r.data.tags["selab.trial_id"]: r
        for r in before
        if r.data.tags["selab.status"] == "finished"
        and saved.get(r.data.tags["selab.trial_id"]) == "TERMINATED"
    }
    assert 1 <= len(done_before) < 6
    assert any(r.data.tags["selab.status"] == "running" for r in before)

    client = MlflowClient(tracking_uri)
    histories_before = {
        trial_id: client.get_metric_history(r.info.run_id, "val_acc")
        for trial_id, r in done_before.items()
    }

    wait_for_free_cpus(2)
    result = resume_sweep("resume", storage=str(storage), address=ray_address)
    assert result.complete
    assert result.statuses == Counter(finished=6)
    meta = json.loads((folder / SWEEP_META_FILE).read_text())
    assert result.parent_run_id == meta["run_id"] == parent.info.run_id

    parent, trials = sweep_runs(tracking_uri, "resume")
    assert parent.info.status == "FINISHED"
    # Exactly one run per trial, one trial per grid point.
    trial_ids = [r.data.tags["selab.trial_id"] for r in trials]
    assert len(trials) == 6 and len(set(trial_ids)) == 6
    points = sorted(
        json.dumps(json.loads(r.data.tags["selab.point"]), sort_keys=True) for r in trials
    )
    assert points == sorted(p.as_json() for p in grid_points(spec))
    # No orphan: every active run of the experiment is the parent or a trial Ray knows.
    analysis = tune.ExperimentAnalysis(str(folder))
    assert set(trial_ids) == {t.trial_id for t in analysis.trials}
    active = experiment_runs(tracking_uri, "resume")
    assert sorted(r.info.run_id for r in active) == sorted(
        [parent.info.run_id] + [r.info.run_id for r in trials]
    )
    for run in experiment_runs(tracking_uri, "resume", ViewType.DELETED_ONLY):
        assert run.data.tags.get("selab.trial_id") not in trial_ids

    for run in trials:
        epochs = int(run.data.params["train.epochs"])
        assert run.data.tags["selab.status"] == "finished" and run.info.status == "FINISHED"
        assert run.data.metrics["epochs_done"] == epochs
        # Resumed trials went on in their run: one value per epoch, none logged twice.
        assert steps(client, run, "val_acc") == list(range(1, epochs + 1))
        assert steps(client, run, "flops") == [0]
        # Trials that had finished before the kill were not run again: running one again
        # reopens its run and closes it at a later time.
        trial_id = run.data.tags["selab.trial_id"]
        if trial_id in done_before:
            assert run.info.end_time == done_before[trial_id].info.end_time
            assert (
                client.get_metric_history(run.info.run_id, "val_acc")
                == (histories_before[trial_id])
            )
