"""Where a trained network is kept, and how a command finds it again.

A trial that finishes writes its final weights and the config that builds them as `model.pt`
(search_space.serialize) into its last checkpoint, in the sweep's storage folder; the trial's
MLflow run records that path in the tag `selab.model`. Which models are also logged to MLflow
is the spec's `tracking.models`:
- `recommended` (default): `selab report` logs the models of the recommended configuration and
  of the accuracy/FLOPs Pareto front (every seed of each); the rest stay in storage only;
- `all`: the driver logs every finished trial's model when the trial ends;
- `none`: none is logged (all stay in storage).

A model logged to MLflow is one of MLflow 3's logged models: `model.pt` is its artifact, its
source run is the trial's run (linked as the run's output, so the runs table's Models column
names it), its params are the trial's varied knobs and seed, and the trial's final accuracy
and cost are linked to it, so the experiment's Models view lists every kept network with its
numbers. Runs of an earlier selab hold the file as their artifact `model/model.pt` instead;
both are read.
"""

from __future__ import annotations

import functools
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from runners.storage.paths import check_remote_storage, is_uri, split_location
from runners.tracking.knobs import KNOB_TAG_PREFIX
from search_space.errors import ConfigError

MODEL_FILE = "model.pt"
MODEL_ARTIFACT_DIR = "model"  # the run artifact folder an earlier selab logged the file to
MODEL_TAG = "selab.model"
MODEL_TYPE = "selab"  # the logged models' model_type: selab's own file (search_space.serialize)
LINKED_METRICS = ("val_acc", "best_val_acc", "test_acc", "flops", "params")


def _legacy_artifact(client: Any, run_id: str) -> bool:
    """An earlier selab logged the file as an artifact of the trial's run."""
    return any(
        a.path == f"{MODEL_ARTIFACT_DIR}/{MODEL_FILE}"
        for a in client.list_artifacts(run_id, MODEL_ARTIFACT_DIR)
    )


def kept_model(client: Any, run: Any) -> Any | None:
    """The logged model (MLflow's LoggedModel) whose source is this trial's run, if any."""
    found = client.search_logged_models(
        [run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        max_results=10,
    )
    ready = [m for m in found if m.model_type == MODEL_TYPE and str(m.status) == "READY"]
    return ready[0] if ready else None


def logged_model(client: Any, run_id: str) -> bool:
    """The trial's model is in MLflow (a logged model, or an earlier selab's artifact)."""
    return kept_model(client, client.get_run(run_id)) is not None or _legacy_artifact(
        client, run_id
    )


def model_name(run: Any) -> str:
    """``r8_seed1``: the trial's label and seed, as `selab export` names the file, without the
    characters MLflow refuses in a model's name (``lr=0.05`` gives ``lr0-05``)."""
    label = run.data.tags.get("selab.label") or run.info.run_name or run.info.run_id
    name = f"{label.replace(' ', '_').replace('=', '')}_seed{run.data.params.get('seed', '')}"
    return re.sub(r"[^A-Za-z0-9_,+-]", "-", name)


def log_model(client: Any, run_id: str, path: str | Path) -> str:
    """Log the model file of a trial as a logged model of its run (see the module), unless
    the run has one already (a journal sent again); returns its model id."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric

    run = client.get_run(run_id)
    if (kept := kept_model(client, run)) is not None:
        return kept.model_id
    tags = run.data.tags
    knobs = {
        k.removeprefix(KNOB_TAG_PREFIX): v for k, v in tags.items() if k.startswith(KNOB_TAG_PREFIX)
    }
    model = client.create_logged_model(
        run.info.experiment_id,
        name=model_name(run),
        source_run_id=run_id,
        params={**knobs, "seed": run.data.params.get("seed", "")},
        tags={k: tags[k] for k in ("selab.sweep", "selab.label", "selab.trial_id") if k in tags},
        model_type=MODEL_TYPE,
    )
    client.log_model_artifact(model.model_id, str(path))
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    # The numbers the Models view shows beside it: the run's final values, linked to the model.
    now = int(time.time() * 1000)
    linked = [
        Metric(key, value, now, _last_step(client, run_id, key), model_id=model.model_id)
        for key, value in run.data.metrics.items()
        if key in LINKED_METRICS
    ]
    if linked:
        client.log_batch(run_id, metrics=linked)
    return model.model_id


def _last_step(client: Any, run_id: str, key: str) -> int:
    return max((m.step for m in client.get_metric_history(run_id, key)), default=0)


def stored_model(run: Any) -> Path | None:
    """The model file a finished trial left in storage, if it is still there (a local copy
    when the storage is behind a URI; ConfigError naming that storage if it does not answer,
    or has no such bucket)."""
    location = run.data.tags.get(MODEL_TAG)
    if location and is_uri(location):
        _probe_readable(model_storage(location), run.data.tags.get("selab.sweep", "?"))
    return stored_model_at(location)


@functools.cache  # one probe per storage and sweep in a process; a failed probe raises
def _probe_readable(storage: str, sweep: str) -> None:
    check_remote_storage(
        storage, f"storage (or --storage) of sweep {sweep!r}: {storage}", write=False
    )


def model_storage(location: str) -> str:
    """The storage (the --storage of `selab run`) that holds the model at `location`:
    <storage>/<sweep>/<trial>/<checkpoint>/model.pt."""
    for _ in range(4):
        location = split_location(location)[0]
    return location


def stored_model_at(location: str | None) -> Path | None:
    if location and "://" in location:
        return _downloaded(location)
    return Path(location) if location and Path(location).is_file() else None


def _downloaded(uri: str) -> Path | None:
    """A local copy of a model file in storage behind a URI (s3://...), None if it is gone."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    local = Path(tempfile.mkdtemp(prefix="selab-model-")) / MODEL_FILE
    pyarrow.fs.copy_files(
        path, str(local), source_filesystem=fs, destination_filesystem=pyarrow.fs.LocalFileSystem()
    )
    return local


def keep_models(client: Any, runs: list[Any]) -> list[str]:
    """Log the stored model of each run that has none in MLflow yet; returns their run ids."""
    logged = []
    for run in runs:
        if kept_model(client, run) is not None or _legacy_artifact(client, run.info.run_id):
            continue
        path = stored_model(run)
        if path is not None:
            log_model(client, run.info.run_id, path)
            logged.append(run.info.run_id)
    return logged


def fetch_model(client: Any, run: Any, folder: str | Path | None = None) -> Path:
    """A local copy of the trial's model: from MLflow (its logged model, or an earlier
    selab's run artifact), else the file in storage."""
    model = kept_model(client, run)
    if model is not None or _legacy_artifact(client, run.info.run_id):
        folder = folder or tempfile.mkdtemp(prefix="selab-model-")
        if model is None:
            return Path(
                client.download_artifacts(
                    run.info.run_id, f"{MODEL_ARTIFACT_DIR}/{MODEL_FILE}", str(folder)
                )
            )
        from mlflow.artifacts import download_artifacts

        return Path(
            download_artifacts(
                artifact_uri=f"{model.artifact_location}/{MODEL_FILE}",
                dst_path=str(folder),
                tracking_uri=client.tracking_uri,
            )
        )
    path = stored_model(run)
    if path is None:
        label = run.data.tags.get("selab.label", run.info.run_id)
        raise ConfigError(
            f"--trial: trial {label} ({run.info.run_id}) has no kept model: it did not finish, "
            "or its storage folder is gone and tracking.models did not log it to MLflow"
        )
    return path
