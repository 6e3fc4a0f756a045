"""What the tests read of a sweep from outside: Ray's saved sweep state, the trials in MLflow."""

from __future__ import annotations

import json

from mlflow import MlflowClient


def state_statuses(state_text: str | bytes) -> dict[str, str]:
    """Trial id -> status in one `experiment_state-*.json` that Ray saved (the file's text).

    Raises ValueError or KeyError for a file that Ray is rewriting right now.
    """
    trials = (json.loads(entry[0]) for entry in json.loads(state_text)["trial_data"])
    return {trial["trial_id"]: trial["status"] for trial in trials}


def mlflow_trials(uri: str, experiment: str) -> dict[str, tuple[str, bool]]:
    """Trial id -> (selab.status, whether it logged an epoch) of the runs in MLflow so far."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp is not None else []
    return {r.data.tags["selab.trial_id"]: (r.data.tags["selab.status"],
                                            "val_acc" in r.data.metrics)
            for r in runs if r.data.tags.get("selab.role") == "trial"}
