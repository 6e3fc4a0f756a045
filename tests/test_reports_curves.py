"""Early epochs against the final one (reports/curves.py): rank correlations with their
intervals on learning curves whose truth is known, the ASHA check, and the histories read back
from a real MLflow store (SQLite) built with MLflow's API as docs/mlflow-schema.md says."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from scipy import stats as sps

from reports.curves import early_vs_final, epoch_histories, rank_interval, stopped_check

EPOCHS = 6


def trials_and_curves(
    finals: list[float], early: list[float], seeds: int = 2, noise: float = 0.002, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Configurations whose accuracy moves linearly from `early` (epoch 1) to `final` (last
    epoch), plus per-seed noise."""
    rng = np.random.default_rng(seed)
    trials, curves = [], []
    for c, (start, end) in enumerate(zip(early, finals, strict=True)):
        for s in range(seeds):
            run = f"c{c}-s{s}"
            trials.append(
                {
                    "run_id": run,
                    "label": f"c{c}",
                    "point_key": f"c{c}",
                    "seed": s,
                    "status": "finished",
                }
            )
            for e in range(1, EPOCHS + 1):
                value = start + (end - start) * (e - 1) / (EPOCHS - 1) + rng.normal(0, noise)
                curves.append({"run_id": run, "epoch": e, "value": value})
    return pd.DataFrame(trials), pd.DataFrame(curves)


def test_an_ordering_kept_from_the_start_is_found_early():
    finals = list(np.linspace(0.90, 0.98, 8))
    trials, curves = trials_and_curves(finals, [f - 0.3 for f in finals])
    result = early_vs_final(curves, trials)
    assert result.available and result.configurations == 8 and result.final_epoch == EPOCHS
    assert list(result.table["epoch"]) == [1, 2, 3, 4, 5]  # the last against itself is left out
    assert (result.table["spearman"] > 0.9).all()
    assert "the ranking after epoch 1 of 6 agrees with the final one" in result.summary()


def test_curves_that_cross_are_not_called_predictive():
    # the best at the end starts worst: early rankings reverse the final one
    finals = list(np.linspace(0.90, 0.98, 8))
    trials, curves = trials_and_curves(finals, list(np.linspace(0.80, 0.60, 8)), noise=0.0005)
    result = early_vs_final(curves, trials)
    first = result.table.iloc[0]
    assert first["spearman"] == pytest.approx(-1.0) and first["kendall"] == pytest.approx(-1.0)
    assert first["spearman_high"] < 0  # the interval excludes agreement
    # the lines cross between epochs 4 and 5 (weights 0.6 and 0.8 of the final slope)
    assert (result.table.set_index("epoch").loc[[1, 2, 3, 4], "spearman"] < 0).all()
    assert "the ranking after epoch 5 of 6 agrees with the final one" in result.summary()


def test_correlations_and_intervals_match_scipy_and_the_formulas():
    finals = [0.90, 0.93, 0.91, 0.97, 0.95, 0.92]
    trials, curves = trials_and_curves(
        finals, [0.5, 0.52, 0.6, 0.55, 0.58, 0.51], seeds=1, noise=0.0
    )
    row = early_vs_final(curves, trials).table.iloc[0]
    rho = sps.spearmanr([0.5, 0.52, 0.6, 0.55, 0.58, 0.51], finals).statistic
    assert row["spearman"] == pytest.approx(rho)
    # Fisher's z with Bonett-Wright's standard error, written out
    se = math.sqrt((1 + rho**2 / 2) / (6 - 3))
    assert row["spearman_low"] == pytest.approx(
        math.tanh(math.atanh(rho) - 1.959964 * se), abs=1e-5
    )
    low, high = rank_interval(0.5, 20, "kendall")
    se_tau = math.sqrt(0.437 / 16)
    assert (low, high) == pytest.approx(
        (
            math.tanh(math.atanh(0.5) - 1.959964 * se_tau),
            math.tanh(math.atanh(0.5) + 1.959964 * se_tau),
        ),
        abs=1e-5,
    )
    assert all(math.isnan(v) for v in rank_interval(0.5, 4, "kendall"))


def test_intervals_cover_the_truth_at_about_their_level():
    # 40 configurations drawn with a known correlation between early and final accuracy
    rng = np.random.default_rng(5)
    truth = 0.7  # Pearson of the normals; Spearman's of a bivariate normal is this:
    rho_true = 6 / math.pi * math.asin(truth / 2)
    covered = 0
    for _ in range(300):
        x = rng.multivariate_normal([0, 0], [[1, truth], [truth, 1]], size=40)
        rho = sps.spearmanr(x[:, 0], x[:, 1]).statistic
        low, high = rank_interval(rho, 40, "spearman")
        covered += low <= rho_true <= high
    assert 0.90 <= covered / 300 <= 0.99


def test_too_few_configurations_say_why():
    trials, curves = trials_and_curves([0.9, 0.95, 0.93], [0.5, 0.6, 0.55])
    result = early_vs_final(curves, trials)
    assert not result.available and "3 configurations" in result.reason
    assert result.summary().startswith("Early vs final epoch: not computed")


def test_stopped_trials_against_the_eventual_top_k():
    finals = list(np.linspace(0.90, 0.98, 6))
    trials, curves = trials_and_curves(finals, [f - 0.2 for f in finals], seeds=1, noise=0.0)
    # ASHA stopped two trials after epoch 2: one ahead of the top-3 trials there, one behind
    at2 = curves[curves["epoch"] == 2].set_index("run_id")["value"]
    top3_at2 = at2[["c3-s0", "c4-s0", "c5-s0"]]
    stopped = pd.DataFrame(
        [
            {
                "run_id": "ahead",
                "label": "ahead",
                "point_key": "ahead",
                "seed": 0,
                "status": "stopped_early",
            },
            {
                "run_id": "behind",
                "label": "behind",
                "point_key": "behind",
                "seed": 0,
                "status": "stopped_early",
            },
        ]
    )
    extra = pd.DataFrame(
        [{"run_id": "ahead", "epoch": e, "value": top3_at2.min() + 0.01} for e in (1, 2)]
        + [{"run_id": "behind", "epoch": e, "value": top3_at2.min() - 0.01} for e in (1, 2)]
    )
    check = stopped_check(pd.concat([curves, extra]), pd.concat([trials, stopped]), top_k=3)
    assert dict(zip(check["label"], check["could_reach_top_k"], strict=True)) == {
        "ahead": True,
        "behind": False,
    }
    assert set(check["epoch"]) == {2}
    result = early_vs_final(pd.concat([curves, extra]), pd.concat([trials, stopped]))
    assert "ASHA stopped 2 trials: when stopped, 1 of them were ahead" in result.summary()


def test_histories_come_back_from_mlflow(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("curves")
    parent = client.create_run(exp, tags={"selab.role": "sweep", "selab.sweep": "curves"})
    now = int(time.time() * 1000)
    rows = []
    for c in range(2):
        run = client.create_run(
            exp,
            tags={
                "mlflow.parentRunId": parent.info.run_id,
                "selab.role": "trial",
                "selab.point": json.dumps({"arch.se.reduction": 4 * (c + 1)}),
                "selab.status": "finished",
            },
        ).info.run_id
        client.log_batch(
            run, metrics=[Metric("val_acc", 0.5 + 0.1 * e + 0.01 * c, now, e) for e in range(1, 4)]
        )
        rows.append({"run_id": run})
    got = epoch_histories(client, pd.DataFrame(rows))
    assert len(got) == 6 and sorted(set(got["epoch"])) == [1, 2, 3]
    first = got[got["run_id"] == rows[0]["run_id"]].sort_values("epoch")["value"]
    assert list(first) == pytest.approx([0.6, 0.7, 0.8])
