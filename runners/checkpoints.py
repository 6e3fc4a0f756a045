"""Checkpoints of finished trials: only the last one stays, the one that holds the network.

While a trial trains, Ray keeps its two newest checkpoints (the one its saved sweep state points
at is never the one just deleted); once the trial has finished, nothing will resume it, and the
older one is removed from local storage (on a remote storage URI, Ray's own limit applies).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial


class PruneFinishedCheckpoints(Callback):
    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        latest = trial.checkpoint
        if latest is None or not Path(latest.path).is_dir():
            return
        kept = Path(latest.path)
        for older in kept.parent.glob("checkpoint_*"):
            if older != kept and older.is_dir():
                shutil.rmtree(older, ignore_errors=True)
