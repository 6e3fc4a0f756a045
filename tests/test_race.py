"""Racing seeds (runners/sweep/race.py): by simulation against running every seed everywhere, and
as a real sweep on the local Ray with trials whose accuracy distribution is known (no
training). The race decides with the report's own rule (reports.best.compare_with_best), so
where a race stops, the report on its seeds has nothing open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray import cloudpickle, tune
from ray.tune.search import Searcher

import reports
from reports.decide import Arm, choose
from runners.cli.main import main
from runners.spec.load import parse_spec
from runners.spec.sweep import SeedRace
from runners.sweep.race import SeedRaceSearcher
from runners.sweep.run import run_sweep
from search_space.errors import ConfigError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

N_VAL = 360  # accuracies in whole images of digits' validation split
RES = 1 / N_VAL


def finished(value: float) -> dict[str, Any]:
    return {"val_acc": value, "epoch": 1, "epochs_planned": 1, "diverged": False}


def run_race(searcher: SeedRaceSearcher, values: np.ndarray) -> int:
    """Drive the searcher as Tune does, one trial at a time; returns the trials it ran."""
    trials = 0
    while True:
        config = searcher.suggest(f"t{trials}")
        if config == Searcher.FINISHED:
            return trials
        index = next(i for i, p in enumerate(searcher.points) if p == config["point"])
        searcher.on_trial_complete(f"t{trials}", finished(values[index, config["seed"]]))
        trials += 1


def pick(results: dict[int, dict[int, float]]) -> str:
    """The report's decision (reports.decide) on whatever seeds ran; cost rises with index."""
    arms = [
        Arm(f"c{i}", f"c{i}", tuple(r[s] for s in sorted(r)), tuple(sorted(r)), cost=(float(i),))
        for i, r in results.items()
    ]
    choice = choose(arms, 0.05, 0.01, RES)
    return choice.pick.key if choice.decided else "undecided"


def test_racing_reaches_the_full_decision_with_far_fewer_trials():
    rng = np.random.default_rng(0)
    race = SeedRace(initial=3, max=10, margin=1.0)
    # no SE (cheapest) clearly worse; four SE configurations equal
    means = np.array([0.95, 0.97, 0.97, 0.97, 0.97])[:, None]
    points = [{"c": i} for i in range(len(means))]
    same, trials, worse_seeds, sims = 0, 0, 0, 200
    for _ in range(sims):
        values = np.round(rng.normal(means, 0.003, (len(means), race.max)) * N_VAL) / N_VAL
        searcher = SeedRaceSearcher(points, race, "val_acc")
        trials += run_race(searcher, values)
        full = {i: dict(enumerate(values[i])) for i in range(len(means))}
        same += pick(searcher.results) == pick(full)
        worse_seeds += len(searcher.results[0])
    assert same / sims >= 0.95
    assert worse_seeds / sims < race.initial + 1  # the clearly worse one stops (almost) at once
    assert trials / (sims * len(means) * race.max) <= 0.6  # at least 40% fewer trials


def test_where_a_race_stops_the_report_on_its_seeds_has_nothing_open():
    """Same rule, same seeds: a race that ends before its maximum has every configuration
    shown equivalent to the best or shown worse by the report's decision on what it ran, and
    the report's pick on those seeds is then decided."""
    rng = np.random.default_rng(1)
    race = SeedRace(initial=3, max=10, margin=1.0)
    means = np.array([0.95, 0.965, 0.97, 0.97, 0.972])[:, None]  # some close calls
    points = [{"c": i} for i in range(len(means))]
    stopped_early = 0
    for _ in range(100):
        values = np.round(rng.normal(means, 0.004, (len(means), race.max)) * N_VAL) / N_VAL
        searcher = SeedRaceSearcher(points, race, "val_acc")
        run_race(searcher, values)
        if max(len(r) for r in searcher.results.values()) == race.max:
            continue  # ran out of seeds: the race may leave configurations open
        stopped_early += 1
        arms = [
            Arm(
                f"c{i}", f"c{i}", tuple(r[s] for s in sorted(r)), tuple(sorted(r)), cost=(float(i),)
            )
            for i, r in searcher.results.items()
        ]
        choice = choose(arms, race.alpha, race.margin / 100, RES)
        assert {c.verdict for c in choice.contenders} <= {"equivalent", "worse"}
        assert choice.decided
    assert stopped_early >= 50  # the claim is about races that stopped: most of them here


def test_importing_the_race_brings_no_pandas_matplotlib_or_mlflow_from_reports():
    """The driver imports the race (and through it reports.best); reports stays lazy."""
    code = (
        "import sys; import reports, reports.best, reports.metrics; "
        "print(sorted(m for m in ('pandas', 'matplotlib', 'mlflow', 'statsmodels') "
        "if m in sys.modules)); import runners.sweep.race; "
        "print(sorted(m for m in ('matplotlib', 'mlflow', 'statsmodels') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    ).stdout.split("\n")
    assert out[0] == "[]"  # reports' rule: numpy and scipy only
    assert out[1] == "[]"  # the race adds Ray (which brings pandas itself), nothing of reports'


def test_the_race_state_survives_save_and_restore(tmp_path):
    race = SeedRace(initial=2, max=4)
    searcher = SeedRaceSearcher([{"c": 0}, {"c": 1}], race, "val_acc")
    first = searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", finished(0.9))
    searcher.save(str(tmp_path / "race.pkl"))
    restored = SeedRaceSearcher([{"c": 0}, {"c": 1}], race, "val_acc")
    restored.restore(str(tmp_path / "race.pkl"))
    assert restored.results == {0: {first["seed"]: 0.9}, 1: {}}
    assert restored.live == {"b": (1, 0)} and restored.queue == searcher.queue


def test_racing_and_asha_on_several_seeds_are_refused(tiny_spec):
    with pytest.raises(ConfigError, match="ASHA on a grid with several seeds"):
        parse_spec(tiny_spec(seeds=[0, 1], scheduler={"kind": "asha"}))
    with pytest.raises(ConfigError, match="ASHA on a grid with several seeds"):
        parse_spec(tiny_spec(seeds={"initial": 2, "max": 4}, scheduler={"kind": "asha"}))
    with pytest.raises(ConfigError, match=r"seeds: initial \(5\) must be at most max \(4\)"):
        parse_spec(tiny_spec(seeds={"initial": 5, "max": 4}))
    spec = parse_spec(tiny_spec(seeds={"initial": 2, "max": 4}))
    assert spec.seeds == [0, 1, 2, 3] and spec.race == SeedRace(initial=2, max=4)


# ----------------------------------------------------------------------------- real Ray

TRUE_ACC = {None: 0.94, 4: 0.97, 8: 0.97, 16: 0.97}  # None: the no-SE baseline


def known_trial(config: dict[str, Any], spec: Any) -> None:
    """No training: an accuracy drawn around the configuration's true mean, seeded by it."""
    r = config["point"].get("arch.se.reduction")
    rng = np.random.default_rng([r or 0, int(config["seed"])])
    acc = round(rng.normal(TRUE_ACC[r], 0.002) * N_VAL) / N_VAL
    cost = 1e6 + (0 if r is None else 4e5 / r)  # SE costs more at a smaller r
    tune.report(
        {
            **finished(acc),
            "best_val_acc": acc,
            "train_loss": 0.1,
            "flops": cost,
            "params": cost / 10,
        }
    )


@pytest.mark.timeout(300)
def test_a_raced_sweep_on_ray_decides_and_stops_early_where_the_gap_is_large(
    ray_address: str, tracking_uri: str, tmp_path: Path, tiny_spec, sweep_runs, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tiny_spec(
        name="race",
        seeds={"initial": 3, "max": 8},
        search={"grid": {"arch.se.reduction": [4, 8, 16]}, "baseline": True},
    )
    result = run_sweep(
        parse_spec(data),
        address=ray_address,
        tracking_uri=tracking_uri,
        storage=str(tmp_path / "runs"),
        trial_function=known_trial,
    )
    assert result.complete
    _, trials = sweep_runs(tracking_uri, "race")
    per_label: dict[str, list[int]] = {}
    for run in trials:
        per_label.setdefault(run.data.tags["selab.label"], []).append(int(run.data.params["seed"]))
    assert sorted(per_label["no SE"]) == [0, 1, 2]  # 3 points below the rest: stopped at once
    assert all(sorted(s) == list(range(len(s))) and len(s) <= 8 for s in per_label.values())
    assert len(trials) < 4 * 8

    rc = main(["report", "race", "--tracking-uri", tracking_uri, "--no-log"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "\nPick r=16: " in out, out[-3000:]  # the cheapest of three equal ones
    assert f"{len(trials)} trials instead of 32 for every seed everywhere" in out
    rec = reports.recommend(reports.load_sweep(tracking_uri, "race"))
    assert rec.decided and rec.pick.label == "r=16"
