"""The Tune callback that writes the sweep's journal: local, fast, never waiting on MLflow.

It runs where Tune's controller runs (the driver, or the head with Ray Client) and appends one
line per trial event to the journal in the sweep's state folder (runners.journal); the
driver's MlflowWriter sends the lines to MLflow. For storage behind a URI it also copies the
journal to the sweep's folder there (runners.journal_mirror) each time Ray saves its sweep
state. Ray pickles the callback into tuner.pkl (the folders only), so `Tuner.restore` brings it
back writing to the same journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlflow.entities import RunStatus
from ray.tune import Callback
from ray.tune.experiment import Trial

from runners.journal import Journal, registered_driver
from runners.journal_mirror import JournalMirror
from runners.outcome import outcome
from runners.paths import SweepFolder, split_location


class JournalLogger(Callback):
    def __init__(self, state_dir: str, location: str | None = None) -> None:
        """`location`: the sweep's folder in storage (a path or a URI); default `state_dir`."""
        self.state_dir = state_dir
        self.location = location or state_dir
        self._journal: Journal | None = None
        self._live_sent = False
        self._cost_sent: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {"state_dir": self.state_dir, "location": self.location}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        pickled = (state["state_dir"], state.get("location") or state["state_dir"])
        state_dir, location = registered_driver(split_location(pickled[1])[1]) or pickled
        self.__init__(state_dir=state_dir, location=location)

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal.of(self.state_dir)
        return self._journal

    def get_state(self) -> dict | None:
        # Tune asks every callback for its state when it saves the sweep's state, before that
        # is uploaded to storage: the journal goes first, so that the state in storage does not
        # know of events the journal there lacks. (Nothing of this callback is saved.)
        JournalMirror.of(self.location, self.state_dir).push_quietly()
        return None

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        # The trials Ray knows when this driver starts: the runs of any other trial an earlier
        # driver logged are orphans (see MlflowWriter._on_live).
        if not self._live_sent:
            self.journal.append("live", trial_ids=sorted(t.trial_id for t in trials))
            self._live_sent = True

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.journal.append("trial_start", trial_id=trial.trial_id,
                            point=trial.config["point"], seed=int(trial.config["seed"]))

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        from runners.tracking import EPOCH_METRICS, _is_cost_metric, _is_number

        step = result.get("epoch")
        if step is None:
            return
        metrics = {k: float(result[k]) for k in EPOCH_METRICS if _is_number(result.get(k))}
        cost = {}
        if trial.trial_id not in self._cost_sent:  # the writer logs it once per run anyway
            cost = {k: float(v) for k, v in result.items()
                    if _is_cost_metric(k) and _is_number(v)}
            self._cost_sent.add(trial.trial_id)
        self.journal.append("result", trial_id=trial.trial_id, step=int(step),
                            metrics=metrics, cost=cost)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._end(trial, outcome(trial.last_result), RunStatus.to_string(RunStatus.FINISHED))

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        # Fires once the trial has used up its retries (each retry fires on_trial_recover).
        from runners.tracking import trial_error

        message, trace = trial_error(trial)
        self._end(trial, "failed", RunStatus.to_string(RunStatus.FAILED), message, trace)

    def _end(self, trial: Trial, status: str, mlflow_status: str, error: str = "",
             trace: str = "") -> None:
        result = trial.last_result or {}
        best = result.get("best_val_acc")
        self.journal.append(
            "trial_end", trial_id=trial.trial_id, status=status, mlflow_status=mlflow_status,
            epochs_done=int(result.get("epoch", 0) or 0),
            best_val_acc=float(best) if isinstance(best, (int, float)) else None,
            error=error, traceback=trace,
            model=_model_path(trial, self.location) if status == "finished" else "",
        )


def _model_path(trial: Trial, location: str) -> str:
    """Where the finished trial's network is: in its last checkpoint (runners.models), as a
    path, or as a URI when the storage is behind one (Ray gives the path in the bucket)."""
    from runners.models import MODEL_FILE

    checkpoint = trial.checkpoint
    if checkpoint is None:
        return ""
    return SweepFolder.at(location).uri_of(f"{checkpoint.path}/{MODEL_FILE}")
