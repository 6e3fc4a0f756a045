"""Ray Tune's saved sweep state: the `experiment_state-<start time>.json` files in a sweep's
folder, one per driver that ran the sweep, the newest of which a resumed sweep starts from."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ray.tune.experiment import Trial

STATE_PREFIX, STATE_SUFFIX = "experiment_state-", ".json"


def newest_state(names: Iterable[str]) -> str | None:
    """The newest saved sweep state among the file names `names` (None if there is none).

    As Ray picks it when it resumes a sweep: by name, which holds the driver's start time.
    """
    return max(
        (name for name in names if name.startswith(STATE_PREFIX) and name.endswith(STATE_SUFFIX)),
        default=None,
    )


def terminated_trials(state_text: str) -> set[str]:
    """Ids of the trials that a saved sweep state (a file's text) records as finished.

    Raises ValueError if the text is not a whole state (a file being rewritten).
    """
    state = json.loads(state_text)
    return {
        trial["trial_id"]
        for trial in (json.loads(trial_json) for trial_json, _ in state.get("trial_data", []))
        if trial.get("status") == Trial.TERMINATED
    }
