"""Everything a sweep writes to MLflow, exactly as docs/mlflow-schema.md says.

The driver opens one parent run per sweep (`open_parent_run`); trial results reach MLflow
through the sweep's journal and the background writer (runners.tracking.journal_logger,
runners.tracking.mlflow_writer), which keep one nested run per trial, found by its
`selab.trial_id` tag. Only the MLflow client API is used: a SQLite file and an HTTP tracking
server behave the same.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities import Param

from runners.spec.points import TrialSettings, fixed_settings
from runners.spec.sweep import SweepSpec

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

PARENT_RUN_TAG = "mlflow.parentRunId"
CREATION_TAG = "selab.creation"  # one id per create call, to find a create applied twice

# Logged every epoch at step = epoch (val_top5 only when the trial reports it; test_acc once,
# at the last epoch, on datasets with a test split apart from validation).
EPOCH_METRICS = (
    "val_acc",
    "val_loss",
    "train_loss",
    "val_top5",
    "images_per_s",
    "epoch_time_s",
    "test_acc",
)
ERROR_ARTIFACT = "error.txt"


def experiment_name(spec: SweepSpec) -> str:
    return spec.tracking.experiment or spec.name


# ----------------------------------------------------------------------------- parent run


@dataclass
class ParentRun:
    tracking_uri: str
    experiment_id: str
    run_id: str


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return client.create_experiment(name)


def open_parent_run(
    spec: SweepSpec, spec_yaml: str, tracking_uri: str, storage_dir: str
) -> ParentRun:
    """Create the sweep's parent run (RUNNING) with its tags, params and spec.yaml."""
    client = MlflowClient(tracking_uri)
    experiment_id = get_or_create_experiment(client, experiment_name(spec))
    tags = {
        "selab.role": "sweep",
        "selab.sweep": spec.name,
        "selab.search": spec.search.kind,
        "selab.varied": json.dumps(spec.search.varied_keys),
        "selab.objectives": json.dumps([o.model_dump() for o in spec.search.objectives]),
        "selab.dataset": spec.data.name,
        "selab.storage": storage_dir,
    }
    if spec.description:
        tags["mlflow.note.content"] = spec.description
    tags[CREATION_TAG] = uuid.uuid4().hex
    run = client.create_run(experiment_id, tags=tags, run_name=spec.name)
    run_id = keep_one_run(
        client, experiment_id, f"tags.`{CREATION_TAG}` = '{tags[CREATION_TAG]}'", run.info.run_id
    )
    params = _fixed_params(fixed_settings(spec), spec.search.varied_keys)
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    client.log_text(run_id, spec_yaml, "spec.yaml")
    return ParentRun(tracking_uri, experiment_id, run_id)


def keep_one_run(client: MlflowClient, experiment_id: str, filter_string: str, created: str) -> str:
    """MLflow's HTTP client sends a create again when the reply was lost, and the server may
    have applied both: of `created` and the runs `filter_string` finds (the same run made
    again), one stays and the others are deleted. Returns the one kept."""
    runs = client.search_runs([experiment_id], filter_string=filter_string)
    run_ids = sorted({run.info.run_id for run in runs} | {created})
    for extra in run_ids[1:]:
        client.delete_run(extra)
    return run_ids[0]


def _fixed_params(settings: TrialSettings, varied: Iterable[str]) -> dict[str, str]:
    """The spec's fixed part: every trial param except the varied keys and the seed."""
    varied = tuple(varied)
    return {
        key: value
        for key, value in settings.flat_params().items()
        if key != "seed" and not any(key == v or key.startswith(v + ".") for v in varied)
    }


# ----------------------------------------------------------------------------- trial runs


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_cost_metric(key: str) -> bool:
    """What a network costs, logged once at step 0: FLOPs and params (search_space.cost) and
    measured time, whose names hold `latency` or `throughput` (search_space.timing)."""
    base = key.rsplit(".", 1)[-1]
    measured = "latency" in base or "throughput" in base
    return (measured or base in ("flops", "params", "se_flops", "se_params")) and (
        "." not in key or key.startswith("stage")
    )


def trial_error(trial: Trial) -> tuple[str, str]:
    """(the exception's type and full message, the full traceback text) of a failed trial.

    The message comes from the pickled exception Ray keeps (the cause inside Ray's wrapper), so
    a multi-line message stays whole; the traceback is Ray's error file, every attempt.
    """
    trace = ""
    if trial.error_file and os.path.exists(trial.error_file):
        trace = Path(trial.error_file).read_text()
    try:
        error = trial.get_pickled_error()
    except Exception:  # noqa: BLE001 - an exception that does not unpickle here
        error = None
    cause = getattr(error, "cause", None) or error
    if cause is not None:
        return f"{type(cause).__name__}: {cause}".strip(), trace
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    return (lines[-1] if lines else "unknown error"), trace
