"""Naming trials on the command line: by MLflow run id, by label (every seed of a
configuration, e.g. "r=8" or "no SE"), or by label and seed ("r=8 seed=1")."""

from __future__ import annotations

import re
from typing import Any

from search_space.errors import ConfigError

_SEED = re.compile(r"^(?P<label>.*?)\s+seed\s*=\s*(?P<seed>-?\d+)\s*$")


def load_sweep_or_fail(uri: str, name: str) -> Any:
    import reports

    try:
        return reports.load_sweep(uri, name)
    except reports.SweepNotFound as err:
        listing = ", ".join(err.available) or "none"
        raise ConfigError(f"sweep: no sweep {name!r} in {uri}; sweeps there: {listing}") from None


def select_trials(trials: Any, selectors: list[str] | None, finished_only: bool = True) -> Any:
    """Rows of the sweep's trials frame that `selectors` name (all finished ones when None)."""
    pool = trials[trials["status"] == "finished"] if finished_only else trials
    if not selectors:
        return pool
    chosen = []
    for text in selectors:
        rows = pool[pool["run_id"] == text]
        if rows.empty:
            match = _SEED.match(text)
            label, seed = (match["label"], int(match["seed"])) if match else (text, None)
            rows = pool[pool["label"] == label.strip()]
            if seed is not None:
                rows = rows[rows["seed"].astype(str) == str(seed)]
        if rows.empty:
            labels = ", ".join(sorted(set(pool["label"].astype(str)))) or "none"
            raise ConfigError(
                f"--trial: no finished trial {text!r}; give a run id, a label "
                f"(optionally with seed=N); labels: {labels}"
            )
        chosen.append(rows)
    import pandas as pd

    return pd.concat(chosen).drop_duplicates("run_id")
