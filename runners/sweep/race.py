"""Racing seeds: spend seeds only where the decision between configurations is still open.

Every configuration of the grid starts with `initial` seeds. After each round, the configuration
with the highest mean is the reference, and every other one is tested against it as the report
does: shown worse (one-sided t-test, H1: reference > it) or shown equivalent within ±margin
(TOST), each family Holm-corrected over the comparisons. A configuration that is either gets no
more seeds; the others, and the reference while any of them is open, get one more seed per
round, up to `max`. It is a Ray Tune searcher, so it runs on a cluster like any search and its
state is saved with the experiment (`selab resume` continues the race).

The tests mirror reports/decide.py (runners do not import reports); both floor the spread of a
difference at the metric's resolution, one evaluation image.
"""

from __future__ import annotations

import copy
import math
import pickle
from fractions import Fraction
from math import lcm
from typing import Any

import numpy as np
from ray.tune.search import Searcher
from scipy import stats as sps

from runners.spec.outcome import outcome
from runners.spec.sweep import SeedRace

FRACTIONS = ("val_acc", "best_val_acc", "val_top5")
Results = dict[int, dict[int, float]]  # configuration index -> seed -> metric value


def resolution(values: list[float], most: int = 1_000_000, least: int = 50) -> float:
    """1/n for values that are all hits/n of the same n evaluation images, else 0."""
    denominator = 1
    for value in values:
        frac = Fraction(value).limit_denominator(most)
        if abs(float(frac) - value) > 1e-9:
            return 0.0
        denominator = lcm(denominator, frac.denominator)
        if denominator > most:
            return 0.0
    return 1.0 / denominator if denominator >= least else 0.0


def _paired(ref: dict[int, float], other: dict[int, float], floor: float
            ) -> tuple[float, float, int] | None:
    """(mean difference ref - other, its standard error, dof) over the seeds both finished."""
    seeds = sorted(set(ref) & set(other))
    if len(seeds) < 2:
        return None
    d = np.array([ref[s] - other[s] for s in seeds])
    sd = max(float(d.std(ddof=1)), floor)
    if sd == 0:
        return None
    return float(d.mean()), sd / math.sqrt(d.size), d.size - 1


def _holm(p: list[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels' multipletests gives the same, but collects
    garbage on every call)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, p[i] * (len(p) - rank)))
        out[i] = running
    return out


def still_open(results: Results, alpha: float, margin: float, sign: float = 1.0) -> set[int]:
    """Configurations whose comparison with the reference is open (plus the reference, while
    any is). ``sign`` is -1 for a metric to minimise."""
    scored = {i: {s: sign * v for s, v in r.items()} for i, r in results.items() if r}
    if len(scored) < 2:
        return set(scored)
    floor = resolution([v for r in results.values() for v in r.values()])
    best = max(scored, key=lambda i: float(np.mean(list(scored[i].values()))))
    others = [i for i in scored if i != best]
    diffs = {i: _paired(scored[best], scored[i], floor) for i in others}
    tested = [i for i in others if diffs[i] is not None]
    p_worse = _holm([float(sps.t.sf(d / se, dof)) for d, se, dof in map(diffs.get, tested)])
    p_same = _holm([max(float(sps.t.sf((margin - d) / se, dof)),
                        float(sps.t.sf((margin + d) / se, dof)))
                    for d, se, dof in map(diffs.get, tested)])
    decided = {i for i, pw, ps in zip(tested, p_worse, p_same, strict=True)
               if pw < alpha or ps < alpha}
    open_ones = set(others) - decided
    return open_ones | {best} if open_ones else set()


class SeedRaceSearcher(Searcher):
    """Suggests {"point": overrides, "seed": s} like the grid, round by round (see module)."""

    def __init__(self, points: list[dict[str, Any]], race: SeedRace, metric: str,
                 mode: str = "max") -> None:
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

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
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
        return {k: copy.deepcopy(getattr(self, k)) for k in
                ("points", "race", "results", "queue", "next_seed", "live", "_metric", "_mode")}

    def set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
