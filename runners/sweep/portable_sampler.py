"""An Optuna sampler that Ray can pickle, whatever the sampler holds.

Ray Tune pickles its searcher when the `Tuner` is made and every time it saves the sweep's
state; the searcher holds the Optuna study, and the study its sampler. Optuna 5 gave
`NSGAIISampler` a thread lock, which cannot be pickled, so a multi-objective search failed
before its first trial. `PortableSampler` wraps the sampler selab chose: it delegates every
call to it (as Optuna's own `PartialFixedSampler` does), and when pickled it keeps the
sampler's kind and seed and every attribute that pickles (its random state, its NSGA-II
generation caches); unpickled, it builds the sampler afresh from kind and seed and puts those
attributes back, so a lock or any other unpicklable member is simply new. A restored search
continues exactly where it stopped: tests/test_portable_sampler.py compares the suggestions of
a pickled-and-restored search with those of one that never stopped.
"""

from __future__ import annotations

import pickle
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

SamplerKind = Literal["tpe", "nsga2"]


def make_sampler(kind: SamplerKind, seed: int | None) -> BaseSampler:
    """The Optuna sampler of a search kind of the spec (`search.kind`)."""
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise ValueError(f"no Optuna sampler for search kind {kind!r}")


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 - any failure means "rebuild it instead"
        return False
    return True


class PortableSampler(BaseSampler):
    """The sampler of `kind` seeded with `seed`, which pickles (see the module docstring)."""

    def __init__(self, kind: SamplerKind, seed: int | None) -> None:
        self.kind = kind
        self.seed = seed
        self.inner = make_sampler(kind, seed)

    def __getstate__(self) -> dict[str, Any]:
        kept = {k: v for k, v in vars(self.inner).items() if _picklable(v)}
        return {"kind": self.kind, "seed": self.seed, "inner_state": kept}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.kind, self.seed = state["kind"], state["seed"]
        self.inner = make_sampler(self.kind, self.seed)
        vars(self.inner).update(state["inner_state"])

    # --- BaseSampler, delegated

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: list[float] | None
    ) -> None:
        self.inner.after_trial(study, trial, state, values)
