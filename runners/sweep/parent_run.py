"""The sweep's MLflow parent run across a driver killed at any moment of its start.

`selab run` records the sweep's start in its folder (runners.storage.saved_sweep.save_start)
before it creates the parent run, and the parent as soon as it exists. A driver killed between
the two leaves a parent run that no folder names: this module finds it again, by what the start
recorded (the experiment, the moment) and by the run's own tags (a sweep's parent, of this
folder). `selab resume` takes it over (`open_or_adopt`), `selab run --overwrite` closes it
(`close_unrecorded`). No start can have two: the sweep's lock is held throughout.
"""

from __future__ import annotations

import sys
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import ViewType

from runners.spec.sweep import SweepSpec
from runners.storage.paths import SweepFolder
from runners.storage.saved_sweep import SweepStart
from runners.tracking.schema import ParentRun, open_parent_run


def unrecorded_parents(client: MlflowClient, start: SweepStart, location: str) -> list[Any]:
    """The parent runs of the sweep at `location` created since `start` (oldest first)."""
    experiment = client.get_experiment_by_name(start.experiment)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        run_view_type=ViewType.ACTIVE_ONLY,
        filter_string=f"tags.`selab.role` = 'sweep' and attributes.start_time >= {start.since_ms}",
    )
    ours = [r for r in runs if r.data.tags.get("selab.storage") == location]
    return sorted(ours, key=lambda r: (r.info.start_time, r.info.run_id))


def open_or_adopt(spec: SweepSpec, folder: SweepFolder, start: SweepStart) -> ParentRun:
    """The parent run of a sweep whose start never recorded one: the one that start created,
    when it got its parameters (a create applied twice is made one, as keep_one_run does), else
    a new one; runs the start created but could not finish are deleted."""
    client = MlflowClient(start.tracking_uri)
    found = unrecorded_parents(client, start, folder.location)
    complete = [r for r in found if r.data.params]
    for run in found:
        if not complete or run.info.run_id != complete[0].info.run_id:
            client.delete_run(run.info.run_id)
    if not complete:
        return open_parent_run(spec, start.spec_yaml, start.tracking_uri, folder.location)
    kept = complete[0]
    if not any(a.path == "spec.yaml" for a in client.list_artifacts(kept.info.run_id)):
        client.log_text(kept.info.run_id, start.spec_yaml, "spec.yaml")
    return ParentRun(start.tracking_uri, kept.info.experiment_id, kept.info.run_id)


def close_unrecorded(start: SweepStart, location: str) -> None:
    """Close (FAILED) the parent runs a start created but never recorded, so that none stays
    RUNNING with no driver. Best effort: the new sweep goes on if MLflow does not answer."""
    try:
        client = MlflowClient(start.tracking_uri)
        for run in unrecorded_parents(client, start, location):
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, status="FAILED")
    except Exception as err:  # noqa: BLE001 - best effort, as for the earlier parent run
        print(
            f"selab: could not check MLflow for a parent run left RUNNING by an unfinished "
            f"start of this sweep: {err}",
            file=sys.stderr,
            flush=True,
        )
