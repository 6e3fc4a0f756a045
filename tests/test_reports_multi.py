"""Configurations across tasks (reports/multi.py): Friedman + Nemenyi and SE against no SE by
Wilcoxon-Holm, on tasks whose truth is known, and through real MLflow stores (SQLite) built
with MLflow's API as docs/mlflow-schema.md says."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from scipy import stats as sps

from reports.frame import point_key
from reports.multi import compare_sweeps, report_many, se_across
from reports.points import point_summary

RES = 1 / 1000


def task_points(
    rng: np.random.Generator, gains: dict[int | None, float], seeds: int = 3, base: float = 0.9
) -> pd.DataFrame:
    """One task's per-configuration summary: r -> true gain over no SE (None = no SE)."""
    rows = []
    for r, gain in gains.items():
        point = {"arch.se.enabled": False} if r is None else {"arch.se.reduction": r}
        for seed in range(seeds):
            acc = round((base + gain + rng.normal(0, 0.003)) / RES) * RES
            rows.append(
                {
                    "run_id": f"{r}-{seed}",
                    "label": "no SE" if r is None else f"r={r}",
                    "status": "finished",
                    "baseline": r is None,
                    "seed": seed,
                    "val_acc": acc,
                    "flops": 1e6 + (r or 0),
                    "params": 1e5,
                    "point": point,
                    "point_key": point_key(point),
                    "arch.se.reduction": r or 16,
                }
            )
    return point_summary(pd.DataFrame(rows), varied=["arch.se.reduction"])


def test_se_that_helps_everywhere_is_found_across_six_tasks():
    rng = np.random.default_rng(0)
    tasks = {f"task{i}": task_points(rng, {None: 0.0, 4: 0.01, 16: 0.01}) for i in range(6)}
    c = compare_sweeps(tasks)
    assert list(c.ranks.index[-1:]) == ["no SE"] and c.ranks["no SE"] == 3.0
    # Friedman on the per-task means, as scipy computes it
    assert c.friedman_p == pytest.approx(
        sps.friedmanchisquare(*[c.means[col] for col in c.means]).pvalue
    )
    assert c.friedman_p < 0.05
    # Nemenyi: no SE, last in every task, differs from the SE configuration ranked first
    first = c.ranks.index[0]
    assert c.posthoc.loc[first, "no SE"] < 0.05
    assert np.allclose(c.posthoc.to_numpy(), c.posthoc.to_numpy().T)
    rows = c.se_rows.set_index("configuration")
    assert (rows["wins"] == 6).all()
    # six wins out of six: exact one-sided Wilcoxon p = 1/64, Holm over 2 configurations
    assert rows["p_wilcoxon"].tolist() == pytest.approx([1 / 64, 1 / 64])
    assert rows["p_holm"].tolist() == pytest.approx([2 / 64, 2 / 64])
    assert any(line.startswith("Does SE help across these tasks: yes") for line in c.lines)


def test_three_tasks_cannot_show_anything_and_say_so():
    rng = np.random.default_rng(1)
    tasks = {f"task{i}": task_points(rng, {None: 0.0, 4: 0.02}) for i in range(3)}
    c = compare_sweeps(tasks)
    line = next(x for x in c.lines if x.startswith("Does SE help across these tasks"))
    assert "not testable with 3 tasks" in line and "p=0.125" in line
    assert "more accurate in 3 of 3 tasks" in line
    # each task's own test over its seeds still says it helps there
    assert c.per_task["shown"].all()


def test_se_that_does_nothing_is_claimed_at_most_alpha_of_the_time():
    # per-task means of 2 SE configurations and no SE, all equal in truth, 8 tasks
    rng = np.random.default_rng(2)
    sims, claims = 1000, 0
    for _ in range(sims):
        means = pd.DataFrame(rng.normal(90, 0.5, size=(8, 3)), columns=["no SE", "r=4", "r=16"])
        claims += bool((se_across(means)["p_holm"] < 0.05).any())
    limit = sps.binom.ppf(0.999, sims, 0.05) / sims
    assert claims / sims <= limit


def test_configurations_missing_from_a_task_are_left_out_and_named():
    rng = np.random.default_rng(3)
    tasks = {
        "a": task_points(rng, {None: 0.0, 4: 0.01, 8: 0.01}),
        "b": task_points(rng, {None: 0.0, 4: 0.01}),
    }
    c = compare_sweeps(tasks)
    assert list(c.means.columns) == ["no SE", "r=4"] and c.dropped == {"r=8": ["b"]}
    assert "Left out (not in every task): r=8 (missing in b)." in c.lines
    with pytest.raises(ValueError, match="at least 2 tasks"):
        compare_sweeps({"a": tasks["a"]})


def log_sweep(
    client: MlflowClient, name: str, accs: dict[str, list[float]], backbone_key: bool = False
) -> None:
    """A grid sweep as runners log it; accs maps a label to its seeds' accuracies. With
    ``backbone_key``, labels are "r=4@resnet20" and the point also varies arch.backbone."""
    exp = client.create_experiment(name)
    varied = ["arch.se.reduction", "arch.se.enabled"] + (["arch.backbone"] if backbone_key else [])
    parent = client.create_run(
        exp,
        run_name=name,
        tags={
            "selab.role": "sweep",
            "selab.sweep": name,
            "selab.search": "grid",
            "selab.varied": json.dumps(varied),
            "selab.objectives": json.dumps([{"metric": "val_acc", "mode": "max"}]),
        },
    ).info.run_id
    now = int(time.time() * 1000)
    for label, values in accs.items():
        config, _, backbone = label.partition("@")
        point = (
            {"arch.se.enabled": False}
            if config == "no SE"
            else {"arch.se.reduction": int(config[2:])}
        )
        if backbone:
            point["arch.backbone"] = backbone
        for seed, acc in enumerate(values):
            run = client.create_run(
                exp,
                tags={
                    "mlflow.parentRunId": parent,
                    "selab.role": "trial",
                    "selab.sweep": name,
                    "selab.point": json.dumps(point),
                    "selab.label": label.replace("@", " "),
                    "selab.baseline": str(config == "no SE").lower(),
                    "selab.status": "finished",
                },
            )
            client.log_batch(
                run.info.run_id,
                params=[Param("seed", str(seed))],
                metrics=[
                    Metric("val_acc", acc, now, 1),
                    Metric("flops", 1e6, now, 0),
                    Metric("params", 1e5, now, 0),
                ],
            )


def test_selab_report_of_several_sweeps_writes_the_comparison(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    log_sweep(client, "digits", {"no SE": [0.95, 0.96], "r=4": [0.97, 0.97]})
    log_sweep(client, "cifar", {"no SE": [0.80, 0.82], "r=4": [0.83, 0.84]})
    c, files = report_many(uri, ["digits", "cifar"], tmp_path / "out")
    assert c.means.loc["cifar", "r=4"] == pytest.approx(83.5)
    assert c.means.loc["digits", "no SE"] == pytest.approx(95.5)
    assert {f.name for f in files} == {
        "comparison.md",
        "means.csv",
        "se_vs_no_se.csv",
        "per_task.csv",
        "critical_difference.png",
    }
    assert (tmp_path / "out" / "critical_difference.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        "Does SE help across these tasks: not testable with 2 tasks"
        in (tmp_path / "out" / "comparison.md").read_text()
    )

    # one sweep that varies the backbone: one task per backbone, matched by the other knobs
    log_sweep(
        client,
        "backbones",
        {
            "no SE@resnet20": [0.9, 0.91],
            "r=4@resnet20": [0.92, 0.93],
            "no SE@resnet56": [0.93, 0.94],
            "r=4@resnet56": [0.95, 0.95],
        },
        backbone_key=True,
    )
    c, _ = report_many(uri, ["backbones"], tmp_path / "by", by="arch.backbone")
    assert c.tasks == ["backbone=resnet20", "backbone=resnet56"]
    assert list(c.means.columns) == ["no SE", "reduction=4"]
    assert c.means.loc["backbone=resnet56", "reduction=4"] == pytest.approx(95.0)
