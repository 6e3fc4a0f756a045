"""The report's two decisions checked by simulation: sweeps whose truth is known.

Accuracies are drawn per seed around each configuration's true mean and rounded to whole
validation images (1/360, digits' validation split), as a real sweep logs them. The decision
functions run on in-memory values for the 500-sweep error rates; a few sweeps also go through
real MLflow stores built with MLflow's API, to show the store path gives the same answers.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from statsmodels.stats.power import TTestPower

import reports
from reports.decide import Arm, choose, se_helps

N_VAL = 360
RES = 1 / N_VAL
SIMS = 500
ALPHA = 0.05
# Two standard errors of a rate estimated from SIMS sweeps whose true rate is alpha.
TOLERANCE = 2 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS)


def draw(rng: np.random.Generator, means: list[float], sd: float, seeds: int) -> np.ndarray:
    """(configurations, seeds) accuracies, whole images only."""
    raw = rng.normal(np.asarray(means)[:, None], sd, size=(len(means), seeds))
    return np.clip(np.round(raw * N_VAL), 0, N_VAL) / N_VAL


def arms_of(values: np.ndarray, baseline: bool = True) -> list[Arm]:
    """Configuration 0 is the no-SE baseline (when `baseline`) and every configuration is
    dearer than the one before it."""
    return [
        Arm(
            key=f"c{i}",
            label="no SE" if baseline and i == 0 else f"c{i}",
            values=tuple(row),
            seeds=tuple(range(len(row))),
            baseline=baseline and i == 0,
            cost=(float(i), float(i)),
        )
        for i, row in enumerate(values)
    ]


def test_se_helps_is_claimed_at_most_alpha_of_the_time_when_se_changes_nothing():
    rng = np.random.default_rng(0)
    claims = naive = 0
    for _ in range(SIMS):
        values = draw(rng, [0.97] * 5, 0.005, 3)  # no SE and 4 SE configurations, all equal
        verdict = se_helps(arms_of(values), ALPHA, 0.01, RES)
        claims += bool(verdict.helped)
        # the rule this replaces: best SE configuration by mean against the baseline,
        # uncorrected, one-sided
        best = 1 + int(np.argmax(values[1:].mean(axis=1)))
        naive += (
            reports.compare(values[best], values[0], range(3), range(3), "greater", RES).p_value
            < ALPHA
        )
    assert claims / SIMS <= ALPHA + TOLERANCE
    assert naive / SIMS > ALPHA + TOLERANCE  # the simulation can tell the difference


def test_a_one_point_gain_is_found_at_the_power_the_report_states():
    rng = np.random.default_rng(1)
    sd, seeds, gain, k = 0.006, 5, 0.01, 4
    found, stated = 0, []
    for _ in range(SIMS):
        values = draw(rng, [0.97, 0.97 + gain, 0.97, 0.97, 0.97], sd, seeds)
        verdict = se_helps(arms_of(values), ALPHA, gain, RES)
        found += any(v.arm.key == "c1" for v in verdict.helped)
        stated.append(verdict.power_at_margin)
    # the power at the true spread of a difference (independent seeds: sd * sqrt 2)
    truth = TTestPower().power(gain / (sd * math.sqrt(2)), seeds, ALPHA / k, alternative="larger")
    assert 0.3 < truth < 0.8  # a power that the check below can miss on either side
    rate = found / SIMS
    assert abs(rate - truth) < 0.07
    assert abs(float(np.median(stated)) - truth) < 0.1  # what the report prints, from data


@pytest.mark.parametrize(
    ("gap", "lowest", "highest"),
    [
        (0.0, 0.8, 1.0),  # truly equal: declared equivalent most of the time
        (0.01, 0.0, ALPHA + TOLERANCE),  # at the margin: at most alpha
        (0.02, 0.0, 0.0),  # twice the margin: never
    ],
)
def test_equivalence_is_declared_when_and_only_when_the_truth_allows_it(gap, lowest, highest):
    rng = np.random.default_rng(2)
    sd, seeds, margin = 0.002, 5, 0.01
    declared = compared = 0
    for _ in range(SIMS):
        # the cheaper configuration c0 is `gap` below the dearer one
        values = draw(rng, [0.97 - gap, 0.97], sd, seeds)
        choice = choose(arms_of(values, baseline=False), ALPHA, margin, RES)
        if choice.best.key == "c1":  # else c0 is picked as the best, not as equivalent
            compared += 1
            declared += choice.pick.key == "c0"
    assert compared >= SIMS / 3
    assert lowest <= declared / compared <= highest


def test_undecided_until_the_seeds_the_report_names():
    # Equal truth, a spread that 3 seeds cannot resolve within ±1 pp: undecided, and the
    # number of seeds the report asks for decides it in most sweeps.
    rng = np.random.default_rng(3)
    choices = (
        choose(arms_of(draw(rng, [0.97, 0.97], 0.006, 3), baseline=False), ALPHA, 0.01, RES)
        for _ in range(50)
    )
    choice = next(c for c in choices if not c.decided)  # the cheaper one is not the best
    assert choice.seeds_to_decide is not None
    n = choice.seeds_to_decide
    decided = sum(
        choose(arms_of(draw(rng, [0.97, 0.97], 0.006, n), baseline=False), ALPHA, 0.01, RES).decided
        for _ in range(200)
    )
    assert decided / 200 >= 0.6


# ----------------------------------------------------------------------------- MLflow store


def log_sweep(client: MlflowClient, name: str, values: np.ndarray) -> None:
    """A grid sweep as runners log it: r in {2, 4, 8, 16} plus the no-SE baseline (first)."""
    exp = client.create_experiment(name)
    varied = ["arch.se.reduction", "arch.se.enabled"]
    parent = client.create_run(
        exp,
        run_name=name,
        tags={
            "selab.role": "sweep",
            "selab.sweep": name,
            "selab.search": "grid",
            "selab.varied": json.dumps(varied),
            "selab.objectives": json.dumps([{"metric": "val_acc", "mode": "max"}]),
            "selab.dataset": "digits",
        },
    ).info.run_id
    now = int(time.time() * 1000)
    for i, r in enumerate([None, 16, 8, 4, 2]):
        point = {"arch.se.enabled": False} if r is None else {"arch.se.reduction": r}
        for seed, acc in enumerate(values[i]):
            run = client.create_run(
                exp,
                run_name=f"{i}-{seed}",
                tags={
                    "mlflow.parentRunId": parent,
                    "selab.role": "trial",
                    "selab.sweep": name,
                    "selab.trial_id": f"{name}-{i}-{seed}",
                    "selab.point": json.dumps(point),
                    "selab.label": "no SE" if r is None else f"r={r}",
                    "selab.baseline": str(r is None).lower(),
                    "selab.status": "finished",
                },
            )
            client.log_batch(
                run.info.run_id,
                params=[
                    Param("seed", str(seed)),
                    Param("arch.se.reduction", str(r or 16)),
                    Param("arch.se.enabled", str(r is not None).lower()),
                ],
                metrics=[
                    Metric("val_acc", float(acc), now, 1),
                    Metric("epochs_done", 1.0, now, 1),
                    Metric("flops", 1e6 + i * 1e4, now, 0),
                    Metric("params", 1e5 + i * 1e3, now, 0),
                ],
            )


def test_the_store_path_gives_the_same_answers(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    rng = np.random.default_rng(4)
    truths = {
        "equal": [0.97] * 5,
        "se-helps": [0.95, 0.97, 0.97, 0.97, 0.97],
        "one-worse": [0.97, 0.97, 0.97, 0.97, 0.94],
    }
    drawn = {name: draw(rng, means, 0.004, 4) for name, means in truths.items()}
    for name, values in drawn.items():
        log_sweep(client, name, values)
    for name, values in drawn.items():
        rec = reports.recommend(reports.load_sweep(uri, name), margin=0.01)
        arms = arms_of(values)
        choice, verdict = choose(arms, ALPHA, 0.01, RES), se_helps(arms, ALPHA, 0.01, RES)
        labels = {a.key: a.label for a in arms}
        assert rec.resolution == pytest.approx(RES), name
        assert rec.pick.label.replace("r=16", "c1").replace("r=8", "c2").replace(
            "r=4", "c3"
        ).replace("r=2", "c4") == labels[choice.pick.key].replace("no SE", "no SE")
        assert rec.decided == choice.decided, name
        assert len(rec.se.helped) == len(verdict.helped), name
        assert rec.choice.seeds_to_decide == choice.seeds_to_decide, name
    assert reports.recommend(reports.load_sweep(uri, "se-helps")).se.helped
