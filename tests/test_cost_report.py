"""`selab report --cost`: the pick and the fronts by measured time, on a made-up MLflow store
(MLflow's own API, SQLite) in which the configuration cheapest in FLOPs is the slowest.

Three SE configurations that are equally accurate (shown equivalent within 1 point) and a
no-SE baseline that is shown worse: the pick is the cheapest of the three, and which one is
cheapest depends on the cost: r=16 by FLOPs, r=4 by latency and by the SE/plain latency ratio.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

import reports
from runners.cli.main import main

ACC = {
    None: [0.80, 0.81, 0.79],
    4: [0.950, 0.949, 0.950],
    8: [0.950, 0.951, 0.949],
    16: [0.949, 0.950, 0.950],
}  # r=8 the most accurate, by 0.03 points
FLOPS = {None: 1_000_000, 4: 1_100_000, 8: 1_050_000, 16: 1_020_000}
LATENCY_MS = {None: 1.0, 4: 1.2, 8: 1.5, 16: 2.0}  # the fewest FLOPs, the slowest
# What SE adds per stage (ms at the deployment batch): most of it in stage 2, whose share of
# SE's FLOPs is the smallest.
STAGE_SE_MS = (0.02, 0.15, 0.03)
STAGE_SE_FLOPS_SHARE = (0.4, 0.1, 0.5)


def cost_metrics(r: int | None, timed: bool) -> list[Metric]:
    now = int(time.time() * 1000)
    se_flops = FLOPS[r] - FLOPS[None]
    values = {
        "flops": FLOPS[r],
        "params": 10_000 + (0 if r is None else 1000 // r),
        "se_flops": se_flops,
        "se_params": 0 if r is None else 1000 // r,
    }
    for i in range(3):
        values[f"stage{i + 1}.flops"] = FLOPS[None] / 4 + se_flops * STAGE_SE_FLOPS_SHARE[i]
        values[f"stage{i + 1}.se_flops"] = se_flops * STAGE_SE_FLOPS_SHARE[i]
        if timed:
            added = 0.0 if r is None else STAGE_SE_MS[i] * LATENCY_MS[r]
            values[f"stage{i + 1}.latency_ms"] = 1.0 + added
            values[f"stage{i + 1}.se_latency_ms"] = added
    if timed:
        values |= {
            "latency_b1_ms": LATENCY_MS[r],
            "latency_ratio_b1": LATENCY_MS[r],
            "plain_latency_b1_ms": 1.0,
            "latency_noise_b1": 0.02,
            "latency_b8_ms": 4 * LATENCY_MS[r],
            "latency_ratio_b8": LATENCY_MS[r],
            "latency_noise_b8": 0.03,
            "throughput_train_img_s": 100 / LATENCY_MS[r],
            "throughput_train_ratio": 1 / LATENCY_MS[r],
        }
    return [Metric(k, float(v), now, 0) for k, v in values.items()]


def make_sweep(uri: str, name: str, timed: bool) -> None:
    client = MlflowClient(uri)
    exp = client.create_experiment(name)
    parent = client.create_run(
        exp,
        run_name=name,
        tags={
            "selab.role": "sweep",
            "selab.sweep": name,
            "selab.search": "grid",
            "selab.varied": json.dumps(["arch.se.reduction", "arch.se.enabled"]),
            "selab.objectives": json.dumps([{"metric": "val_acc", "mode": "max"}]),
            "selab.dataset": "digits",
        },
    ).info.run_id
    for r, accs in ACC.items():
        point = {"arch.se.enabled": False} if r is None else {"arch.se.reduction": r}
        for seed, acc in enumerate(accs):
            run = client.create_run(
                exp,
                run_name=f"{r}-{seed}",
                tags={
                    "mlflow.parentRunId": parent,
                    "selab.role": "trial",
                    "selab.sweep": name,
                    "selab.trial_id": f"{r}-{seed}",
                    "selab.point": json.dumps(point),
                    "selab.label": "no SE" if r is None else f"r={r}",
                    "selab.baseline": "true" if r is None else "false",
                    "selab.status": "finished",
                },
            ).info.run_id
            now = int(time.time() * 1000)
            client.log_batch(
                run,
                metrics=[Metric("val_acc", acc, now, 1), *cost_metrics(r, timed)],
                params=[Param("seed", str(seed)), Param("arch.num_classes", "10")],
            )
            client.set_terminated(run, "FINISHED")
    client.set_terminated(parent, "FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('cost') / 'mlflow.db'}"
    make_sweep(uri, "timed", timed=True)
    make_sweep(uri, "untimed", timed=False)
    return uri


@pytest.mark.parametrize(
    ("cost", "pick"), [("flops", "r=16"), ("latency", "r=4"), ("latency_ratio", "r=4")]
)
def test_the_pick_is_the_cheapest_equivalent_by_the_cost_asked_for(
    store: str, tmp_path: Path, cost: str, pick: str
) -> None:
    sweep = reports.load_sweep(store, "timed")
    report = reports.write_report(sweep, tmp_path, log_to_mlflow=False, cost=cost)
    rec = report.recommendation
    assert rec is not None and rec.decided
    assert rec.pick.label == pick
    assert not any("every cost here is FLOPs" in n for n in rec.notes)
    # The words name the cost the pick was made on.
    unit = {"flops": "FLOPs", "latency": "latency_b1_ms", "latency_ratio": "latency_ratio_b1"}
    assert "within ±1.00 pp of the best (r=8) by TOST, and cheaper" in rec.text
    assert unit[cost] in rec.text
    # The fronts: by measured time r=4 is the fastest of the equally accurate, by FLOPs r=16.
    assert list(report.fronts["latency_b1_ms"]["label"]) == ["no SE", "r=4", "r=8"]
    assert list(report.fronts["flops"]["label"]) == ["no SE", "r=16", "r=8"]


def test_latency_falls_back_to_flops_with_a_note_where_nothing_was_timed(
    store: str, tmp_path: Path
) -> None:
    sweep = reports.load_sweep(store, "untimed")
    report = reports.write_report(sweep, tmp_path, log_to_mlflow=False, cost="latency")
    assert report.recommendation.pick.label == "r=16"
    assert any("every cost here is FLOPs" in n for n in report.recommendation.notes)
    assert "latency_b1_ms" not in report.fronts
    assert not (tmp_path / "flops_vs_time.csv").exists()
    assert "FLOPs vs measured time" not in report.html_path.read_text()


def test_the_command_draws_the_front_in_time_and_shows_where_se_time_goes(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                "timed",
                "--tracking-uri",
                store,
                "--out",
                str(out),
                "--no-log",
                "--cost",
                "latency",
            ]
        )
        == 0
    )
    assert "Pick r=4" in capsys.readouterr().out
    for png in ("acc_vs_latency.png", "acc_vs_flops.png", "time_shares.png"):
        assert (out / png).stat().st_size > 0, png
    page = (out / "report.html").read_text()
    assert "What SE costs: FLOPs vs measured time" in page and "Accuracy vs latency" in page
    with open(out / "stage_time_shares.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["configuration"] == "r=16"]
    share_of_time = {int(r["stage"]): float(r["share of SE's time %"]) for r in rows}
    share_of_flops = {int(r["stage"]): float(r["share of SE's FLOPs %"]) for r in rows}
    assert max(share_of_time, key=share_of_time.get) == 2  # where SE's time goes
    assert min(share_of_flops, key=share_of_flops.get) == 2  # which FLOPs would not show
    assert share_of_time[2] == pytest.approx(100 * 0.15 / 0.20)
    with open(out / "flops_vs_time.csv") as fh:
        totals = {r["configuration"]: r for r in csv.DictReader(fh)}
    assert float(totals["r=16"]["latency b1 +% over plain"]) == pytest.approx(100.0)
    assert float(totals["r=16"]["training throughput % vs plain"]) == pytest.approx(-50.0)
    assert "latency b8 ms" in totals["r=4"]  # the deployment batch, read from the metrics
