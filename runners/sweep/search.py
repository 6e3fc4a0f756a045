"""Ray Tune's search side of a sweep: the param space, Optuna, and ASHA.

The trial config is always {"point": {dotted key: value}, "seed": int}: a grid enumerates the
points, a search lets Optuna sample them, a race (runners.sweep.race) hands out seeds where the
decision is open.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from runners.spec.outcome import outcome
from runners.spec.points import encoded_choices, fixed_settings, grid_points, stage_masks
from runners.spec.sweep import ChoiceDim, FloatDim, IntDim, MaskDim, SweepSpec
from runners.sweep.race import SeedRaceSearcher


def param_space(spec: SweepSpec) -> dict[str, Any]:
    if spec.race is not None:
        return {}  # the race suggests every trial's point and seed
    if spec.is_grid:
        return {
            "point": tune.grid_search([p.overrides for p in grid_points(spec)]),
            "seed": tune.grid_search(list(spec.seeds)),
        }
    return {
        "point": {key: _domain(spec, dim) for key, dim in spec.search.space.items()},
        "seed": spec.seeds[0],
    }


def _domain(spec: SweepSpec, dim: Any) -> tune.search.sample.Domain:
    if isinstance(dim, ChoiceDim):
        return tune.choice(encoded_choices(dim))
    if isinstance(dim, IntDim):  # Tune's upper bound is exclusive, the spec's inclusive
        lo, hi = dim.bounds
        return tune.lograndint(lo, hi + 1) if dim.log else tune.randint(lo, hi + 1)
    if isinstance(dim, FloatDim):
        lo, hi = dim.bounds
        return tune.loguniform(lo, hi) if dim.log else tune.uniform(lo, hi)
    if isinstance(dim, MaskDim):
        return tune.choice(stage_masks(fixed_settings(spec).arch.num_stages))
    raise AssertionError(dim)


class EarlyStopAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna an early-stopped trial was pruned, not complete.

    Ray's OptunaSearch reports the last result of every trial that ends as COMPLETE, so a
    trial ASHA stopped after one epoch would count as a finished point (and, with several
    objectives, could enter the Pareto front). A diverged trial is told FAILED: its NaN told
    as a COMPLETE value is refused by Optuna, which OptunaSearch prints as a warning and which
    would leave the trial RUNNING in the study.
    """

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        ended = outcome(result) if result and not error else None
        if ended == "stopped_early":
            result = None  # no values: OptunaSearch tells PRUNED
        elif ended == "diverged":
            result, error = None, True  # no values, an error: OptunaSearch tells FAIL
        super().on_trial_complete(trial_id, result=result, error=error)


def search_algorithm(spec: SweepSpec) -> Searcher | None:
    if spec.race is not None:
        objective = spec.search.objectives[0]
        points = [p.overrides for p in grid_points(spec)]
        return SeedRaceSearcher(points, spec.race, objective.metric, objective.mode)
    if spec.is_grid:
        return None
    from runners.sweep.portable_sampler import PortableSampler

    # Ray pickles the searcher, and with it the sampler (runners/sweep/portable_sampler.py).
    sampler = PortableSampler(spec.search.kind, spec.search.sampler_seed)
    objectives = spec.search.objectives
    if len(objectives) == 1:
        metric: str | list[str] = objectives[0].metric
        mode: str | list[str] = objectives[0].mode
    else:
        metric = [o.metric for o in objectives]
        mode = [o.mode for o in objectives]
    return EarlyStopAwareOptunaSearch(metric=metric, mode=mode, sampler=sampler)


def scheduler(spec: SweepSpec) -> TrialScheduler | None:
    if spec.scheduler.kind != "asha":
        return None
    objective = spec.search.objectives[0]  # the spec allows ASHA with one objective only
    return ASHAScheduler(
        time_attr="epoch",
        metric=objective.metric,
        mode=objective.mode,
        max_t=spec.train.epochs,
        grace_period=spec.scheduler.grace_period,
        reduction_factor=spec.scheduler.reduction_factor,
    )
