"""Racing seeds: spend seeds only where the decision between configurations is still open.

Every configuration of the grid starts with `initial` seeds. After each round, the seeds so far
go through the report's own rule, `reports.best.compare_with_best` (the one function
`selab report` decides with, so the race and the report cannot drift apart): each
configuration is shown equivalent to the best within ±margin, shown worse than the best, or
open. A configuration that is shown either gets no more seeds; the open ones, and the best
while any is open, get one more seed per round, up to `max`. The spread of a difference is
floored at the metric's resolution (one evaluation image), as in the report. It is a Ray Tune
searcher, so it runs on a cluster like any search and its state is saved with the experiment
(`selab resume` continues the race).

`reports.best` and `reports.metrics` need only numpy and scipy: importing them brings no
pandas, matplotlib or MLflow into the driver.
"""

from __future__ import annotations

import copy
import math
import pickle
from typing import Any

from ray.tune.search import Searcher

from reports.best import compare_with_best
from reports.metrics import accuracy_resolution
from runners.spec.outcome import outcome
from runners.spec.sweep import SeedRace

FRACTIONS = ("val_acc", "best_val_acc", "val_top5")
Results = dict[int, dict[int, float]]  # configuration index -> seed -> metric value


def still_open(results: Results, alpha: float, margin: float, sign: float = 1.0) -> set[int]:
    """The configurations that get another seed: those whose comparison with the best is
    still open by the report's rule (reports.best.compare_with_best), plus the best while any
    is. With fewer than 2 configurations holding values, those (nothing to compare yet).
    ``sign`` is -1 for a metric to minimise."""
    scored = {i: r for i, r in results.items() if r}
    if len(scored) < 2:
        return set(scored)
    floor = accuracy_resolution([v for r in scored.values() for v in r.values()]) or 0.0
    judged = compare_with_best(scored, alpha, margin, floor, sign)
    return judged.still_open() if judged is not None else set()


class SeedRaceSearcher(Searcher):
    """Suggests {"point": overrides, "seed": s} like the grid, round by round (see module)."""

    def __init__(
        self, points: list[dict[str, Any]], race: SeedRace, metric: str, mode: str = "max"
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.points = [copy.deepcopy(p) for p in points]
        self.race = race
        self.results: Results = {i: {} for i in range(len(points))}
        self.queue = [(i, s) for s in range(race.initial) for i in range(len(points))]
        self.next_seed = {i: race.initial for i in range(len(points))}
        self.live: dict[str, tuple[int, int]] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if not self.queue and not self.live:
            self._next_round()
        if self.queue:
            index, seed = self.queue.pop(0)
            self.live[trial_id] = (index, seed)
            return {"point": copy.deepcopy(self.points[index]), "seed": seed}
        return None if self.live else Searcher.FINISHED

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        index, seed = self.live.pop(trial_id, (None, None))
        if index is None or error or not result or outcome(result) != "finished":
            return  # failed, diverged or stopped: no value, and no new seed in its place
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            self.results[index][seed] = float(value)

    def _next_round(self) -> None:
        sign = 1.0 if self.mode == "max" else -1.0
        # The margin is in accuracy points; accuracies are logged as fractions.
        margin = self.race.margin / 100 if self.metric in FRACTIONS else self.race.margin
        for index in sorted(still_open(self.results, self.race.alpha, margin, sign)):
            if self.next_seed[index] < self.race.max:
                self.queue.append((index, self.next_seed[index]))
                self.next_seed[index] += 1

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.get_state(), fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.set_state(pickle.load(fh))

    def get_state(self) -> dict[str, Any]:
        return {
            k: copy.deepcopy(getattr(self, k))
            for k in ("points", "race", "results", "queue", "next_seed", "live", "_metric", "_mode")
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
