"""The Optuna sampler Ray can pickle: same suggestions as the sampler it wraps, and a search that
was pickled and restored mid-way suggests what an uninterrupted one would have."""

from __future__ import annotations

import pickle

import optuna
import pytest
from ray import cloudpickle

from runners.sweep.portable_sampler import PortableSampler, make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(params: dict[str, float]) -> tuple[float, float]:
    """Two conflicting objectives, cheap and deterministic."""
    x, r = params["x"], params["r"]
    return (x - 0.3) ** 2 + 0.01 * r, (x + 0.5) ** 2 - 0.02 * r


DISTRIBUTIONS = {
    "x": optuna.distributions.FloatDistribution(-1.0, 1.0),
    "r": optuna.distributions.CategoricalDistribution([2, 4, 8, 16]),
}


def _study(sampler: optuna.samplers.BaseSampler, objectives: int) -> optuna.Study:
    if objectives == 1:
        return optuna.create_study(sampler=sampler, direction="minimize")
    return optuna.create_study(sampler=sampler, directions=["minimize", "minimize"])


def _run(study: optuna.Study, trials: int, objectives: int) -> list[dict[str, float]]:
    suggested = []
    for _ in range(trials):
        trial = study.ask(fixed_distributions=DISTRIBUTIONS)
        values = _objective(trial.params)
        study.tell(trial, values[0] if objectives == 1 else list(values))
        suggested.append(dict(trial.params))
    return suggested


# NSGA-II's first generation (50 trials by default) is random sampling: 120 trials make it
# breed two generations from the ones it selected.
CASES = [("nsga2", 2, 120), ("tpe", 1, 40), ("tpe", 2, 40)]


@pytest.mark.parametrize(("kind", "objectives", "trials"), CASES)
def test_the_portable_sampler_suggests_what_the_sampler_it_wraps_suggests(
    kind: str, objectives: int, trials: int
) -> None:
    plain = _run(_study(make_sampler(kind, seed=7), objectives), trials, objectives)
    portable = _run(_study(PortableSampler(kind, seed=7), objectives), trials, objectives)
    assert portable == plain
    # It samples (NSGA-II children may inherit a parent's x, so not every x is new).
    assert len({p["x"] for p in plain}) > trials // 2


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize(("kind", "objectives", "trials"), CASES)
def test_a_study_pickled_mid_search_continues_as_if_never_stopped(
    kind: str, objectives: int, trials: int, dumps
) -> None:
    whole = _run(_study(PortableSampler(kind, seed=3), objectives), trials, objectives)

    study = _study(PortableSampler(kind, seed=3), objectives)
    first = _run(study, trials * 3 // 5, objectives)
    restored = pickle.loads(dumps(study))  # what Ray saves and `selab resume` reads back
    rest = _run(restored, trials - len(first), objectives)
    assert first + rest == whole


def test_the_sweep_searcher_saves_and_restores_through_ray(tmp_path, tiny_spec) -> None:
    """selab's NSGA-II searcher as Ray Tune uses it: pickled whole when the Tuner is made, and
    saved and restored (`selab resume`) mid-search; the restored one suggests the same points."""
    from runners.spec.load import parse_spec
    from runners.sweep.search import param_space, search_algorithm

    spec = parse_spec(
        tiny_spec(
            search={
                "kind": "nsga2",
                "grid": {},
                "num_samples": 8,
                "sampler_seed": 5,
                "space": {
                    "arch.se.reduction": {"choice": [2, 4, 8, 16]},
                    "train.lr": {"float": [0.01, 0.1], "log": True},
                },
                "objectives": [
                    {"metric": "val_acc", "mode": "max"},
                    {"metric": "params", "mode": "min"},
                ],
            }
        )
    )
    searcher = search_algorithm(spec)
    cloudpickle.dumps(searcher)  # what Tuner() does
    searcher.set_search_properties(None, None, param_space(spec))
    for i in range(3):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"val_acc": 0.5 + i / 10, "params": 1000 - i})
    searcher.save(str(tmp_path / "searcher.pkl"))
    expected = [searcher.suggest(f"t{i}") for i in range(3, 6)]

    restored = search_algorithm(spec)
    restored.set_search_properties(None, None, param_space(spec))
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert [restored.suggest(f"t{i}") for i in range(3, 6)] == expected
