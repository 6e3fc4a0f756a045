"""Checkpoints of finished trials: only the last one stays, the one that holds the network.

While a trial trains, Ray keeps its two newest checkpoints (the one its saved sweep state points
at is never the one just deleted). Once a trial has finished and Ray's saved sweep state says
so, nothing will resume it from an older checkpoint, and the older one is removed from local
storage (on a remote storage URI, Ray's own limit applies). Not before: Ray saves its state
about once a second, and a driver killed in between leaves a state that resumes the trial from
the older checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from runners.storage.ray_state import newest_state, terminated_trials


class PruneFinishedCheckpoints(Callback):
    def __init__(self) -> None:
        self._finished: dict[str, Path] = {}  # trial id -> its last checkpoint (kept)
        self._saved: tuple[Path, int, set[str]] | None = None  # (file, mtime, terminated)

    def __getstate__(self) -> dict[str, Any]:
        return {}  # Ray pickles callbacks with the sweep; nothing of this driver carries over

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        latest = trial.checkpoint
        if latest is not None and Path(latest.path).is_dir():
            self._finished[trial.trial_id] = Path(latest.path)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        self._prune_saved()

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._prune_saved()  # Ray saved its final state just before, unless the sweep crashed

    def _prune_saved(self) -> None:
        if not self._finished:
            return
        sweep_folder = next(iter(self._finished.values())).parent.parent
        for trial_id in self._saved_terminated(sweep_folder) & self._finished.keys():
            kept = self._finished.pop(trial_id)
            for older in kept.parent.glob("checkpoint_*"):
                if older != kept and older.is_dir():
                    shutil.rmtree(older, ignore_errors=True)

    def _saved_terminated(self, sweep_folder: Path) -> set[str]:
        """Trials that the newest saved sweep state records as finished (read again only when
        the file changed)."""
        try:
            name = newest_state(entry.name for entry in sweep_folder.iterdir())
            if name is None:  # none yet
                return set()
            newest = sweep_folder / name
            mtime = newest.stat().st_mtime_ns
        except OSError:  # one being replaced
            return set()
        if self._saved is None or self._saved[:2] != (newest, mtime):
            try:
                terminated = terminated_trials(newest.read_text())
            except (OSError, ValueError):  # being rewritten: try at the next step
                return set()
            self._saved = (newest, mtime, terminated)
        return self._saved[2]
