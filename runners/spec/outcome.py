"""How a trial that ended without an error ended, read from its last result.

Shared by the MLflow callback (the `selab.status` tag) and the Optuna searcher (which must not
count an early-stopped trial as a finished one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Outcome = Literal["finished", "stopped_early", "diverged"]


def outcome(last_result: Mapping[str, Any] | None) -> Outcome:
    """finished: ran its configured epochs; diverged: NaN/inf loss; stopped_early: neither
    (ASHA stopped it, or the sweep ended before it could finish)."""
    result = last_result or {}
    if result.get("diverged"):
        return "diverged"
    epoch, planned = result.get("epoch"), result.get("epochs_planned")
    if epoch is None or planned is None or epoch < planned:
        return "stopped_early"
    return "finished"
