"""Where a trained network is kept, and how a command finds it again.

A trial that finishes writes its final weights and the config that builds them as `model.pt`
(search_space.serialize) into its last checkpoint, in the sweep's storage folder; the trial's
MLflow run records that path in the tag `selab.model`. Which models are also logged to MLflow,
as the artifact `model/model.pt` of their trial run, is the spec's `tracking.models`:
- `recommended` (default): `selab report` logs the models of the recommended configuration and
  of the accuracy/FLOPs Pareto front (every seed of each); the rest stay in storage only;
- `all`: the driver logs every finished trial's model when the trial ends;
- `none`: none is logged (all stay in storage).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from runners.storage.paths import check_remote_storage, is_uri, split_location
from search_space.errors import ConfigError

MODEL_FILE = "model.pt"
MODEL_ARTIFACT_DIR = "model"
MODEL_TAG = "selab.model"


def logged_model(client: Any, run_id: str) -> bool:
    return any(a.path == f"{MODEL_ARTIFACT_DIR}/{MODEL_FILE}"
               for a in client.list_artifacts(run_id, MODEL_ARTIFACT_DIR))


def log_model(client: Any, run_id: str, path: str | Path) -> None:
    client.log_artifact(run_id, str(path), MODEL_ARTIFACT_DIR)


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
    check_remote_storage(storage, f"storage (or --storage) of sweep {sweep!r}: {storage}",
                         write=False)


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
    pyarrow.fs.copy_files(path, str(local), source_filesystem=fs,
                          destination_filesystem=pyarrow.fs.LocalFileSystem())
    return local


def keep_models(client: Any, runs: list[Any]) -> list[str]:
    """Log the stored model of each run that has none in MLflow yet; returns their run ids."""
    logged = []
    for run in runs:
        if logged_model(client, run.info.run_id):
            continue
        path = stored_model(run)
        if path is not None:
            log_model(client, run.info.run_id, path)
            logged.append(run.info.run_id)
    return logged


def fetch_model(client: Any, run: Any, folder: str | Path | None = None) -> Path:
    """A local copy of the trial's model: the MLflow artifact, else the file in storage."""
    if logged_model(client, run.info.run_id):
        folder = folder or tempfile.mkdtemp(prefix="selab-model-")
        return Path(client.download_artifacts(
            run.info.run_id, f"{MODEL_ARTIFACT_DIR}/{MODEL_FILE}", str(folder)))
    path = stored_model(run)
    if path is None:
        label = run.data.tags.get("selab.label", run.info.run_id)
        raise ConfigError(
            f"--trial: trial {label} ({run.info.run_id}) has no kept model: it did not finish, "
            "or its storage folder is gone and tracking.models did not log it to MLflow"
        )
    return path
