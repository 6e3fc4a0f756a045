"""Checkpoints in storage behind a URI (s3://...): kept until Ray's state there is past them.

Ray deletes a trial's older checkpoints as soon as it has `num_to_keep` newer ones, while its
sweep state in the bucket, uploaded every STATE_SYNC_S, may still point at one of them: a driver
killed then leaves a trial that cannot be resumed. So on such storage Ray keeps every checkpoint
of a running trial (`num_to_keep=None`; at most train.epochs / train.checkpoint_every of them),
and this callback removes the older ones of a finished trial once Ray's state in storage
records it finished; only the last, which holds the trained network, stays.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from runners.storage.local_state import registered_driver
from runners.storage.paths import STATE_SYNC_S, SweepFolder, split_location
from runners.storage.ray_state import newest_state, terminated_trials


class PruneStoredCheckpoints(Callback):
    def __init__(self, location: str) -> None:
        self.location = location
        self._finished: dict[str, Any] = {}  # trial id -> its last checkpoint (kept)
        self._checked = 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        # A resumed sweep may reach the bucket through another URI (another endpoint form).
        driver = registered_driver(split_location(state["location"])[1])
        self.__init__(driver[1] if driver else state["location"])

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        if trial.checkpoint is not None:
            self._finished[trial.trial_id] = trial.checkpoint

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._finished and time.monotonic() - self._checked >= STATE_SYNC_S:
            self._checked = time.monotonic()
            self._prune()

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        # Ray has just saved its final state (an upload it waits for); trials that an earlier
        # driver finished are pruned here too.
        for trial in trials:
            if trial.status == Trial.TERMINATED and trial.checkpoint is not None:
                self._finished.setdefault(trial.trial_id, trial.checkpoint)
        self._prune()

    def _prune(self) -> None:
        try:
            for trial_id in self._saved_terminated() & self._finished.keys():
                _remove_older(self._finished.pop(trial_id))
        except Exception:  # noqa: BLE001, S110 - storage away: they are pruned at a later step
            pass

    def _saved_terminated(self) -> set[str]:
        """Trials that the newest sweep state in storage records as finished."""
        folder = SweepFolder.at(self.location)
        name = newest_state(folder.files(""))
        return set() if name is None else terminated_trials(folder.read_text(name))


def _remove_older(kept: Any) -> None:
    """Remove the checkpoints of `kept`'s trial other than `kept` (a ray.tune.Checkpoint)."""
    import pyarrow.fs

    fs, trial_path = kept.filesystem, kept.path.rsplit("/", 1)[0]
    for entry in fs.get_file_info(pyarrow.fs.FileSelector(trial_path)):
        if (
            entry.type == pyarrow.fs.FileType.Directory
            and entry.path != kept.path
            and entry.base_name.startswith("checkpoint_")
        ):
            fs.delete_dir(entry.path)
