"""What a grid sweep left in MLflow, counted against what its spec implies.

Every (grid point, seed) of the spec is one expected trial with `train.epochs` epochs. From the
experiment's active trial runs (tag `selab.role = trial`, matched to a trial by `selab.point`
and the `seed` param) and each run's `val_acc` history this counts: trials that finished,
trials lost (no finished run), duplicate runs (more than one run for a trial, or more than one
parent run for the sweep), missing epoch steps (epochs of a trial that no run logged) and
duplicate epoch steps (an epoch logged more than once for a trial, within a run or across its
runs).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from runners.spec.points import grid_points, resolve_trial
from runners.spec.sweep import SweepSpec

TrialKey = tuple[str, int]  # (the point's overrides as sorted JSON, seed)
STEP_METRIC = "val_acc"  # logged once per epoch, at step = epoch


@dataclass
class Tally:
    expected: int
    finished: int
    duplicate_runs: int
    missing_steps: int
    duplicate_steps: int
    parent_status: str  # of the newest parent run; "none" without one

    @property
    def lost(self) -> int:
        return self.expected - self.finished

    @property
    def complete(self) -> bool:
        return (
            self.lost == 0
            and self.duplicate_runs == 0
            and self.missing_steps == 0
            and self.duplicate_steps == 0
            and self.parent_status == "FINISHED"
        )


def expected_epochs(spec: SweepSpec) -> dict[TrialKey, int]:
    """Each trial of a grid spec with a list of seeds, and the epochs it trains."""
    return {
        (point.as_json(), seed): resolve_trial(spec, point.overrides, seed).train.epochs
        for point in grid_points(spec)
        for seed in spec.seeds
    }


def trial_key(run: Any) -> TrialKey:
    point = json.dumps(json.loads(run.data.tags["selab.point"]), sort_keys=True)
    return point, int(run.data.params["seed"])


def tally_sweep(uri: str, spec: SweepSpec) -> Tally:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    expected = expected_epochs(spec)
    experiment = client.get_experiment_by_name(spec.name)
    runs = (
        []
        if experiment is None
        else list(client.search_runs([experiment.experiment_id], max_results=5000))
    )
    trials = [r for r in runs if r.data.tags.get("selab.role") == "trial"]
    parents = [r for r in runs if r.data.tags.get("selab.role") == "sweep"]
    by_trial: dict[TrialKey, list[Any]] = defaultdict(list)
    for run in trials:
        by_trial[trial_key(run)].append(run)

    finished = missing = duplicate_steps = 0
    for key, epochs in expected.items():
        trial_runs = by_trial.get(key, [])
        finished += any(
            r.data.tags.get("selab.status") == "finished" and r.info.status == "FINISHED"
            for r in trial_runs
        )
        steps = [
            m.step
            for r in trial_runs
            for m in client.get_metric_history(r.info.run_id, STEP_METRIC)
        ]
        missing += len(set(range(1, epochs + 1)) - set(steps))
        duplicate_steps += len(steps) - len(set(steps))
    newest = max(parents, key=lambda r: r.info.start_time, default=None)
    return Tally(
        expected=len(expected),
        finished=finished,
        # A trial's second run, or the sweep's second parent run.
        duplicate_runs=sum(len(v) - 1 for v in by_trial.values()) + max(0, len(parents) - 1),
        missing_steps=missing,
        duplicate_steps=duplicate_steps,
        parent_status=newest.info.status if newest is not None else "none",
    )
