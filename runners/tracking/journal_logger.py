"""The Tune callback that writes the sweep's journal: local, fast, never waiting on MLflow.

It runs where Tune's controller runs (the driver, or the head with Ray Client) and appends one
line per trial event to the journal in the sweep's state folder (runners.tracking.journal); the
driver's MlflowWriter sends the lines to MLflow. When a trial starts, this is where the trial
is resolved, once: its trial_start event carries the trial's label, baseline flag, overrides
and MLflow params (runners.spec.points.TrialRecord), which everything after reads. For storage
behind a URI it also copies the journal to the sweep's folder there
(runners.tracking.journal_mirror) each time Ray saves its sweep state. Ray pickles the callback
into tuner.pkl (the spec and the folders), so `Tuner.restore` brings it back writing to the
same journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlflow.entities import RunStatus
from ray.tune import Callback
from ray.tune.experiment import Trial

from runners.spec.outcome import outcome
from runners.spec.points import TrialRecord
from runners.spec.sweep import SweepSpec
from runners.storage.local_state import registered_driver
from runners.storage.models import MODEL_FILE
from runners.storage.paths import SweepFolder, split_location
from runners.tracking.journal import Journal
from runners.tracking.journal_mirror import JournalMirror
from runners.tracking.schema import EPOCH_METRICS, is_cost_metric, is_number, trial_error
from search_space.errors import ConfigError


class JournalLogger(Callback):
    def __init__(self, spec: SweepSpec | None, state_dir: str, location: str | None = None) -> None:
        """`location`: the sweep's folder in storage (a path or a URI); default `state_dir`.
        `spec` None: a callback an earlier selab pickled without it; the MLflow writer then
        resolves each trial itself."""
        self.spec = spec
        self.state_dir = state_dir
        self.location = location or state_dir
        self._journal: Journal | None = None
        self._live_sent = False
        self._cost_sent: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "state_dir": self.state_dir, "location": self.location}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        pickled = (state["state_dir"], state.get("location") or state["state_dir"])
        state_dir, location = registered_driver(split_location(pickled[1])[1]) or pickled
        self.__init__(state.get("spec"), state_dir=state_dir, location=location)

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
        point, seed = trial.config["point"], int(trial.config["seed"])
        self.journal.append(
            "trial_start",
            trial_id=trial.trial_id,
            point=point,
            seed=seed,
            **self._resolved(point, seed),
        )

    def _resolved(self, point: dict[str, Any], seed: int) -> dict[str, Any]:
        """The trial's TrialRecord fields; none when there is no spec, or when the point does
        not resolve (the trial then fails with that error itself, and the MLflow writer, which
        resolves what the event lacks, reports it)."""
        if self.spec is None:
            return {}
        try:
            return TrialRecord.resolve(self.spec, point, seed).event_fields()
        except ConfigError:
            return {}

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        step = result.get("epoch")
        if step is None:
            return
        metrics = {k: float(result[k]) for k in EPOCH_METRICS if is_number(result.get(k))}
        cost = {}
        if trial.trial_id not in self._cost_sent:  # the writer logs it once per run anyway
            cost = {k: float(v) for k, v in result.items() if is_cost_metric(k) and is_number(v)}
            self._cost_sent.add(trial.trial_id)
        self.journal.append(
            "result", trial_id=trial.trial_id, step=int(step), metrics=metrics, cost=cost
        )

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._end(trial, outcome(trial.last_result), RunStatus.to_string(RunStatus.FINISHED))

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        # Fires once the trial has used up its retries (each retry fires on_trial_recover).
        message, trace = trial_error(trial)
        self._end(trial, "failed", RunStatus.to_string(RunStatus.FAILED), message, trace)

    def _end(
        self, trial: Trial, status: str, mlflow_status: str, error: str = "", trace: str = ""
    ) -> None:
        result = trial.last_result or {}
        best = result.get("best_val_acc")
        self.journal.append(
            "trial_end",
            trial_id=trial.trial_id,
            status=status,
            mlflow_status=mlflow_status,
            epochs_done=int(result.get("epoch", 0) or 0),
            best_val_acc=float(best) if isinstance(best, (int, float)) else None,
            error=error,
            traceback=trace,
            model=_model_path(trial, self.location) if status == "finished" else "",
            device=str(result.get("device", "")),
        )


def _model_path(trial: Trial, location: str) -> str:
    """Where the finished trial's network is: in its last checkpoint (runners.storage.models),
    as a path, or as a URI when the storage is behind one (Ray gives the path in the bucket)."""
    checkpoint = trial.checkpoint
    if checkpoint is None:
        return ""
    return SweepFolder.at(location).uri_of(f"{checkpoint.path}/{MODEL_FILE}")
