"""reports/ against a real MLflow SQLite store built with MLflow's own API.

The store follows docs/mlflow-schema.md: a parent run per sweep, nested trial runs with
selab.* tags, arch.*/train.* params, per-epoch metrics and step-0 cost metrics. One store is
shared by the whole module (creating it costs a few seconds).
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag
from scipy import stats as sps

import reports
from tests.support import own_err

R_SWEEP = "r-sweep"
STAGE_SWEEP = "stage-sweep"
STAGE_EXPERIMENT = "stage-ablations"  # named unlike its sweep: found by the global search
SPEC_TEXT = "name: r-sweep\nsearch: grid\ngrid:\n  arch.se.reduction: [2, 4, 8, 16, 32]\n"

# Final val_acc per seed 0, 1, 2 (finished trials). Chosen so that:
#  - baseline 0.90/0.92/0.94: mean 0.92, sd 0.02 (the worked example of the issue);
#  - r=4 is the best mean (0.95); r=8 and r=16 are not significantly worse (paired, one-sided);
#  - r=32 is significantly worse than r=4 (per-seed gaps 0.025, 0.024, 0.025).
FINISHED_ACC = {
    "base": [0.90, 0.92, 0.94],
    4: [0.935, 0.95, 0.965],
    8: [0.93, 0.951, 0.966],
    16: [0.925, 0.948, 0.962],
    32: [0.91, 0.926, 0.94],
}
# The stage-mask sweep, 2 seeds a point (None = the no-SE baseline). SE cost grows with the
# enabled stages' shares 1:4:16:64, so 1,0,0,0 < 0,0,0,1 < 1,1,1,1 in FLOPs and params.
STAGE_ACC = {
    None: [0.70, 0.72],
    "1,0,0,0": [0.71, 0.725],
    "0,0,0,1": [0.73, 0.74],
    "1,1,1,1": [0.75, 0.77],
}
BASE_PARAMS, BASE_FLOPS = 1_000_000, 40_000_000
SE_SUM = 1_600_000  # sum over units of C^2: SE params = 2/r * SE_SUM
STAGE_SHARE = (1, 4, 16)  # how SE params/FLOPs split over the 3 stages


def se_cost(r: int | None) -> tuple[int, int]:
    if r is None:
        return 0, 0
    se_params = 2 * SE_SUM // r
    return se_params, se_params + 50_000


def cost_metrics(r: int | None, mask: str | None = None) -> list[Metric]:
    """Step-0 cost metrics; with a 4-stage ``mask`` SE cost is split 1:4:16:64 over stages
    and disabled stages add nothing."""
    shares = STAGE_SHARE
    if mask is not None:
        shares = tuple(s * int(on) for s, on in zip((1, 4, 16, 64), mask.split(","), strict=True))
    se_params, se_flops = se_cost(r)
    se_params, se_flops = (
        (se_params * sum(shares) // 85, se_flops * sum(shares) // 85)
        if (mask is not None)
        else (se_params, se_flops)
    )
    now = int(time.time() * 1000)
    vals = {
        "params": BASE_PARAMS + se_params,
        "flops": BASE_FLOPS + se_flops,
        "se_params": se_params,
        "se_flops": se_flops,
    }
    total = max(sum(shares), 1)
    for i, share in enumerate(shares, start=1):
        vals[f"stage{i}.params"] = BASE_PARAMS * share / total + se_params * share / total
        vals[f"stage{i}.flops"] = BASE_FLOPS * share / total + se_flops * share / total
        vals[f"stage{i}.se_params"] = se_params * share / total
        vals[f"stage{i}.se_flops"] = se_flops * share / total
    return [Metric(k, float(v), now, 0) for k, v in vals.items()]


def epoch_metrics(final: float, epochs: int = 3, best: float | None = None) -> list[Metric]:
    """val_acc rising to ``final`` at the last epoch (``best`` at the one before if given)."""
    now = int(time.time() * 1000)
    accs = [final - 0.05 * (epochs - e) for e in range(1, epochs + 1)]
    if best is not None:
        accs[-2] = best
    out = []
    for step, acc in enumerate(accs, start=1):
        out += [
            Metric("val_acc", acc, now, step),
            Metric("val_top5", min(acc + 0.04, 1.0), now, step),
            Metric("val_loss", 1.0 - acc, now, step),
            Metric("train_loss", 1.1 - acc, now, step),
            # epoch 1 is warm-up; the median over later epochs is 1050
            Metric("images_per_s", [500.0, 1000.0, 1100.0][min(step, 3) - 1], now, step),
            Metric("epoch_time_s", 10.0, now, step),
        ]
    return out


def add_parent(
    client, exp_id: str, name: str, varied: list[str], dataset: str, spec: str | None
) -> str:
    run = client.create_run(
        exp_id,
        run_name=name,
        tags={
            "selab.role": "sweep",
            "selab.sweep": name,
            "selab.search": "grid",
            "selab.varied": json.dumps(varied),
            "selab.objectives": json.dumps([{"metric": "val_acc", "mode": "max"}]),
            "selab.dataset": dataset,
            "selab.storage": "/tmp/ray/" + name,
        },
    )
    client.log_batch(
        run.info.run_id,
        params=[
            Param("arch.backbone", "cifar_resnet20"),
            Param("train.epochs", "3"),
            Param("data.name", dataset),
        ],
    )
    if spec is not None:
        client.log_text(run.info.run_id, spec, "spec.yaml")
    return run.info.run_id


def add_trial(
    client,
    exp_id: str,
    parent_id: str,
    sweep: str,
    *,
    trial_id: str,
    point: dict,
    label: str,
    seed: int,
    status: str,
    params: dict,
    metrics: list[Metric],
    baseline: bool = False,
    error: str | None = None,
) -> str:
    tags = {
        "mlflow.parentRunId": parent_id,
        "selab.role": "trial",
        "selab.sweep": sweep,
        "selab.trial_id": trial_id,
        "selab.point": json.dumps(point),
        "selab.label": label,
        "selab.baseline": "true" if baseline else "false",
        "selab.status": status,
    }
    if error:
        tags["selab.error"] = error
    run = client.create_run(exp_id, run_name=trial_id, tags=tags)
    full = {
        "seed": str(seed),
        "train.epochs": "3",
        "train.lr": "0.1",
        "data.name": "cifar100",
        **params,
    }
    client.log_batch(
        run.info.run_id,
        metrics=metrics,
        params=[Param(k, str(v)) for k, v in full.items()],
        tags=[RunTag("selab.status", status)],
    )
    mlflow_status = {"failed": "FAILED", "running": None}.get(status, "FINISHED")
    if mlflow_status:
        client.set_terminated(run.info.run_id, mlflow_status)
    return run.info.run_id


def arch_params(r: int | None, stages: str = "1,1,1", backbone: str = "cifar_resnet20") -> dict:
    return {
        "arch.backbone": backbone,
        "arch.depth": "",
        "arch.num_classes": "100",
        "arch.se.enabled": "false" if r is None else "true",
        "arch.se.reduction": str(r or 16),
        "arch.se.placement": "standard",
        "arch.se.stages": stages,
        "arch.se.squeeze": "avg",
        "arch.se.gate": "sigmoid",
    }


def build_store(root: Path) -> dict:
    uri = f"sqlite:///{root}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment(R_SWEEP, artifact_location=(root / "artifacts").as_uri())
    # An older parent run of the same sweep (an earlier `selab run --overwrite`): ignored.
    old = add_parent(client, exp, R_SWEEP, ["arch.se.reduction"], "cifar100", "name: old\n")
    client.set_terminated(old, "FINISHED")
    time.sleep(0.01)
    parent = add_parent(
        client, exp, R_SWEEP, ["arch.se.reduction", "arch.se.enabled"], "cifar100", SPEC_TEXT
    )
    n = 0
    for key, accs in FINISHED_ACC.items():
        r = None if key == "base" else key
        for seed, acc in enumerate(accs):
            n += 1
            point = {"arch.se.enabled": False} if r is None else {"arch.se.reduction": r}
            # r=4 seed 0 peaks at 0.94 in epoch 2 and ends at 0.935 (best != final)
            best = 0.94 if (r == 4 and seed == 0) else None
            metrics = epoch_metrics(acc, best=best) + cost_metrics(r)
            metrics.append(Metric("best_val_acc", max(acc, best or 0), 0, 3))
            metrics.append(Metric("epochs_done", 3.0, 0, 3))
            add_trial(
                client,
                exp,
                parent,
                R_SWEEP,
                trial_id=f"t{n:02d}",
                point=point,
                label="no SE" if r is None else f"r={r}",
                seed=seed,
                status="finished",
                params=arch_params(r),
                metrics=metrics,
                baseline=r is None,
            )
    # Trials that did not finish, with accuracies that would change every result if counted.
    add_trial(
        client,
        exp,
        parent,
        R_SWEEP,
        trial_id="t90",
        point={"arch.se.reduction": 8},
        label="r=8",
        seed=3,
        status="stopped_early",
        params=arch_params(8),
        metrics=epoch_metrics(0.999, epochs=1) + cost_metrics(8),
    )
    add_trial(
        client,
        exp,
        parent,
        R_SWEEP,
        trial_id="t91",
        point={"arch.se.reduction": 16},
        label="r=16",
        seed=3,
        status="diverged",
        params=arch_params(16),
        metrics=epoch_metrics(0.999, epochs=2) + cost_metrics(16),
    )
    add_trial(
        client,
        exp,
        parent,
        R_SWEEP,
        trial_id="t92",
        point={"arch.se.reduction": 2},
        label="r=2",
        seed=0,
        status="failed",
        params=arch_params(2),
        metrics=cost_metrics(2),
        error="RuntimeError: CUDA out of memory",
    )
    add_trial(
        client,
        exp,
        parent,
        R_SWEEP,
        trial_id="t93",
        point={"arch.se.reduction": 32},
        label="r=32",
        seed=3,
        status="running",
        params=arch_params(32),
        metrics=epoch_metrics(0.999, epochs=1) + cost_metrics(32),
    )

    # A stage-mask sweep in an experiment not named after it, left RUNNING, 2 seeds a point.
    exp2 = client.create_experiment(
        STAGE_EXPERIMENT, artifact_location=(root / "artifacts2").as_uri()
    )
    parent2 = add_parent(client, exp2, STAGE_SWEEP, ["arch.se.stages"], "cifar100", None)
    for mask, accs in STAGE_ACC.items():
        for seed, acc in enumerate(accs):
            n += 1
            point = (
                {"arch.se.enabled": False}
                if mask is None
                else {"arch.se.stages": [c == "1" for c in mask.split(",")]}
            )  # a list in the point
            add_trial(
                client,
                exp2,
                parent2,
                STAGE_SWEEP,
                trial_id=f"s{n:02d}",
                point=point,
                label="no SE" if mask is None else f"stages {mask}",
                seed=seed,
                status="finished",
                baseline=mask is None,
                params=arch_params(None if mask is None else 16, mask or "1,1,1,1", "resnet50"),
                metrics=epoch_metrics(acc)
                + cost_metrics(None if mask is None else 16, mask or "0,0,0,0"),
            )
    return {"uri": uri, "parent": parent, "old_parent": old, "stage_parent": parent2, "root": root}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    return build_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def sweep(store) -> reports.Sweep:
    return reports.load_sweep(store["uri"], R_SWEEP)


# ------------------------------------------------------------------ frame


def test_load_sweep_takes_newest_parent_and_keeps_every_trial(store, sweep):
    assert sweep.run_id == store["parent"] != store["old_parent"]
    assert sweep.varied == ["arch.se.reduction", "arch.se.enabled"]
    df = sweep.trials
    assert len(df) == 15 + 4  # 5 points x 3 seeds finished + 4 that did not finish
    assert df["run_id"].is_unique
    by_id = df.set_index("trial_id")
    assert by_id.loc["t90", "status"] == "stopped_early"
    assert by_id.loc["t91", "status"] == "diverged"
    assert by_id.loc["t92", "status"] == "failed"
    assert by_id.loc["t92", "error"] == "RuntimeError: CUDA out of memory"
    assert by_id.loc["t93", "status"] == "running"
    assert not by_id.loc[["t90", "t91", "t92", "t93"], "finished"].any()
    assert by_id["finished"].sum() == 15
    assert sweep.status_counts() == {
        "finished": 15,
        "stopped_early": 1,
        "diverged": 1,
        "failed": 1,
        "running": 1,
    }


def test_trial_columns_are_typed_and_flattened(sweep):
    df = sweep.trials
    base = df[df["baseline"]]
    assert len(base) == 3 and set(base["label"]) == {"no SE"}
    # the baseline does not override r: its value comes from the full config (param "16")
    assert set(base["arch.se.reduction"]) == {16}
    assert set(base["arch.se.enabled"]) == {False}
    r4 = df[(df["arch.se.reduction"] == 4)].sort_values("seed")
    assert list(r4["seed"]) == [0, 1, 2]
    assert r4["val_acc"].iloc[0] == pytest.approx(0.935)  # last epoch
    assert r4["best_val_acc"].iloc[0] == pytest.approx(0.94)  # best epoch
    assert r4["val_top5"].iloc[1] == pytest.approx(0.99)
    assert r4["images_per_s"].iloc[0] == pytest.approx(1050.0)  # median of epochs 2..3
    assert r4["params"].iloc[0] == BASE_PARAMS + 2 * SE_SUM // 4
    assert r4["stage3.se_params"].iloc[0] == pytest.approx(800_000 * 16 / 21)
    assert r4["train.lr"].iloc[0] == pytest.approx(0.1)
    assert r4["epochs_done"].iloc[0] == 3


# ------------------------------------------------------------------ tables


def test_ablation_table_numbers_match_hand_arithmetic(sweep):
    tables = reports.ablation_tables(sweep)
    # arch.se.enabled only marks the baseline: no table of its own
    assert list(tables) == ["arch.se.reduction"]
    t = tables["arch.se.reduction"]
    assert list(t["setting"]) == ["no SE", "r=2", "r=4", "r=8", "r=16", "r=32"]
    base = t.iloc[0]
    assert bool(base["baseline"]) and base["n_seeds"] == 3
    # 0.90, 0.92, 0.94: mean 0.92, sd 0.02, half-width t_{0.975,2} * 0.02 / sqrt(3)
    assert base["acc_mean"] == pytest.approx(0.92)
    assert base["acc_ci_half"] == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)
    assert base["top1_err"] == pytest.approx(8.0)
    assert base["top1_err_high"] - base["top1_err"] == pytest.approx(
        100 * 4.302653 * 0.02 / math.sqrt(3), rel=1e-5
    )
    # top-5 = acc + 0.04: 0.94, 0.96, 0.98 -> top-5 error 4%
    assert base["top5_err"] == pytest.approx(4.0)

    rows = t.set_index("setting")
    # r=2: its only trial failed: listed, nothing averaged
    assert rows.loc["r=2", "n_seeds"] == 0 and rows.loc["r=2", "not_finished"] == "1 failed"
    assert math.isnan(rows.loc["r=2", "acc_mean"])
    # r=8 keeps 3 finished seeds; the stopped-early 0.999 run is excluded from the mean
    assert rows.loc["r=8", "n_seeds"] == 3
    assert rows.loc["r=8", "not_finished"] == "1 stopped_early"
    assert rows.loc["r=8", "acc_mean"] == pytest.approx((0.93 + 0.951 + 0.966) / 3)
    assert rows.loc["r=16", "not_finished"] == "1 diverged"
    assert rows.loc["r=32", "not_finished"] == "1 running"
    assert rows.loc["r=32", "acc_mean"] == pytest.approx((0.91 + 0.926 + 0.94) / 3)
    # cost increase over the baseline: r=4 adds 2/4 * 1.6M = 800k params to 1M (+80%)
    assert rows.loc["r=4", "params_increase_pct"] == pytest.approx(80.0)
    assert rows.loc["r=4", "flops_increase_pct"] == pytest.approx(100 * 850_000 / 40e6)
    # paired t-test against the baseline (same seeds 0, 1, 2)
    expected = sps.ttest_rel(FINISHED_ACC[4], FINISHED_ACC["base"]).pvalue
    assert rows.loc["r=4", "test"] == "paired t"
    assert rows.loc["r=4", "p_value"] == pytest.approx(expected)
    assert rows.loc["r=4", "delta_top1_err_pp"] == pytest.approx(-3.0)
    assert bool(rows.loc["r=4", "significant"]) == (rows.loc["r=4", "p_holm"] < 0.05)
    assert rows.loc["r=4", "p_holm"] >= expected  # Holm over the table's rows
    # the paper's ImageNet numbers sit beside the rows whose r it ablated
    assert rows.loc["r=16", "paper_top1_err"] == pytest.approx(22.28)
    assert rows.loc["r=2", "paper_params_m"] == pytest.approx(45.7)
    assert rows.loc["no SE", "paper_top1_err"] == pytest.approx(23.30)


def test_table_exports_csv_and_markdown(sweep, tmp_path):
    tables = reports.ablation_tables(sweep)
    files = reports.write_tables(tables, tmp_path)
    assert {f.name for f in files} == {"table_arch_se_reduction.csv", "table_arch_se_reduction.md"}
    md = (tmp_path / "table_arch_se_reduction.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + 6  # header, separator, 6 rows
    assert len({ln.count("|") for ln in lines}) == 1  # every row has the same columns
    assert "8.00 [3.03, 12.97]" in md  # baseline top-1 error 8.00 % ± 100*4.303*0.02/sqrt(3)
    assert "[paper, ImageNet]" in md and "r=16 (SE-ResNet-50)" in md
    assert "+80.0%" in md
    csv = (tmp_path / "table_arch_se_reduction.csv").read_text().splitlines()
    assert len(csv) == 1 + 6
    assert csv[0].startswith("axis,value,setting")


# ------------------------------------------------------------------ pareto & recommendation


def test_pareto_front_from_store_ignores_unfinished(sweep):
    points = reports.point_summary(sweep.trials, varied=sweep.varied)
    front = reports.pareto_front(points, "acc_mean", "flops")
    # cost rises as r falls: base < r32 < r16 < r8 < r4; means .92 < .925 < .945 < .949 < .95
    # -> every finished point is non-dominated; r=2 (failed only) is absent.
    assert list(front["label"]) == ["no SE", "r=32", "r=16", "r=8", "r=4"]
    assert not front["pareto_tie"].any()
    # Counting the unfinished 0.999 runs would have put them (alone) on the front's top.
    assert front["acc_mean"].max() == pytest.approx(0.95)
    trial_front = reports.pareto_front(sweep.trials, "val_acc", "flops")
    assert (trial_front["status"] == "finished").all()


def test_recommendation_from_store_needs_a_margin_its_seeds_can_show(sweep):
    # r=4 is the best mean. r=8 and r=16 are within 1 point of it, but 3 seeds cannot show
    # equivalence within ±1 pp after Holm over the 4 comparisons: undecided, not "r=16".
    rec = reports.recommend(sweep, margin=0.01)
    assert rec.best.label == "r=4" and not rec.decided
    assert {c.arm.label for c in rec.choice.open_cheaper} == {"r=8", "r=16"}
    assert rec.text.startswith(
        "Undecided: the cheaper r=16 and r=8 are neither within ±1.00 pp "
        "of the best (r=4) nor shown worse; about "
    )
    assert "seeds per configuration would decide it" in rec.text
    # Within ±2 pp they are: TOST of r=16 (d = -0.010, -0.002, -0.003 against r=4), paired,
    # 2 df; Holm's second step (r=8 has the smaller p) multiplies by 3.
    rec = reports.recommend(sweep, margin=0.02)
    assert rec.pick.label == "r=16" and rec.decided
    d = [a - b for a, b in zip(FINISHED_ACC[16], FINISHED_ACC[4], strict=True)]
    mean, sd = sum(d) / 3, math.sqrt(sum((x - sum(d) / 3) ** 2 for x in d) / 2)
    p = sps.t.sf((0.02 + mean) / (sd / math.sqrt(3)), 2)
    c = rec.choice.contender(rec.pick.point_key)
    assert c.equivalent.p_value == pytest.approx(p)
    assert c.p_equivalent_holm == pytest.approx(
        max(
            3 * p,
            rec.choice.contender(
                next(x.arm.key for x in rec.choice.contenders if x.arm.label == "r=8")
            ).p_equivalent_holm,
        )
    )
    cand = rec.candidates.set_index("label")
    assert cand.loc["r=32", "vs_best"] == "worse" and cand.loc["no SE", "vs_best"] == "worse"
    assert rec.pick.values["arch.se.reduction"] == 16
    assert rec.se_text.startswith("Does SE help: yes")


def test_recommendation_under_budget(sweep):
    # 40.3M FLOPs admits r=16 (40.25M) and r=32 (40.15M), not r=8 (40.45M); r=16 is better
    rec = reports.recommend(sweep, budget_flops=40.3e6)
    assert rec.budget.pick.label == "r=16"
    rec = reports.recommend(sweep, budget_params=1.15e6)  # only r=32 (1.1M) fits
    assert rec.budget.pick.label == "r=32"
    assert "the budget costs 2.47 pp against the overall best r=4" in rec.budget.text
    rec = reports.recommend(sweep, budget_flops=40.01e6)  # nothing with SE fits: no SE does
    assert rec.budget.pick.label == "no SE" and rec.budget.pick.baseline
    assert "No SE configuration fits within 40M FLOPs" in rec.budget.text
    assert "the budget costs 3.00 pp" in rec.budget.text  # paired p = 0.005
    rec = reports.recommend(sweep, budget_flops=30e6, budget_params=2e6)  # not even no SE
    assert rec.budget.pick is None
    assert rec.budget.text == (
        "Nothing fits within 30M FLOPs and 2M params: the cheapest "
        "finished configuration, no SE, needs 40M FLOPs, 1M params."
    )
    assert rec.best.label == "r=4"  # a budget does not change the unconstrained choice


# ------------------------------------------------------------------ report & CLI


def test_write_report_embeds_plots_and_logs_artifacts(store, sweep, tmp_path):
    out = tmp_path / "rep"
    report = reports.write_report(sweep, out, budget_flops=40.3e6, margin=0.02)
    html = report.html_path.read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "acc_vs_flops.png",
        "acc_vs_params.png",
        "acc_vs_r.png",
        "rank_correlation.png",
        "stages.png",
    ]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    assert len(re.findall(r"src='data:image/png;base64,", html)) == len(pngs)
    assert "arch.se.reduction: [2, 4, 8, 16, 32]" in html  # the spec.yaml that ran
    assert "CUDA out of memory" in html  # failed trials listed with their error
    assert "[paper, ImageNet]" in html
    assert "Pick r=16: within ±2.00 pp of the best (r=4) by TOST" in html
    assert "Decision rule" in html
    assert "http" not in html.replace("http-equiv", "")  # self-contained: no external links

    client = mlflow.MlflowClient(store["uri"])
    logged = {Path(a.path).name for a in client.list_artifacts(store["parent"], "report")}
    assert {
        "report.html",
        "acc_vs_flops.png",
        "table_arch_se_reduction.csv",
        "table_arch_se_reduction.md",
        "trials.csv",
    } <= logged


def test_stage_sweep_found_in_other_experiment_with_paper_rows(store, tmp_path):
    sweep = reports.load_sweep(store["uri"], STAGE_SWEEP)
    assert sweep.run_id == store["stage_parent"]
    assert sweep.status == "RUNNING"
    t = reports.ablation_tables(sweep)["arch.se.stages"].set_index("setting")
    # the point holds a list of booleans; it reads as the params' mask string
    assert t.loc["stages 1,0,0,0", "value"] == "1,0,0,0"
    assert t.loc["stages 1,0,0,0", "paper_top1_err"] == pytest.approx(23.03)
    assert t.loc["stages 1,1,1,1", "paper_setting"] == "all"
    # two seeds: 0.75, 0.77 -> half-width t_{0.975,1} * sd / sqrt(2) = 12.706 * 0.01414 / 1.414
    assert t.loc["stages 1,1,1,1", "acc_ci_half"] == pytest.approx(12.7062 * 0.01, rel=1e-4)
    report = reports.write_report(sweep, tmp_path, log_to_mlflow=False)
    assert (tmp_path / "stages.png").exists() and not (tmp_path / "acc_vs_r.png").exists()
    html = report.html_path.read_text()
    assert "still running" in html and "no <code>spec.yaml</code>" in html
    client = mlflow.MlflowClient(store["uri"])
    assert client.list_artifacts(store["stage_parent"], "report") == []


def test_cli_report_on_sweep_name(store, tmp_path, capsys):
    from runners.cli.main import main

    out = tmp_path / "cli"
    rc = main(
        [
            "report",
            R_SWEEP,
            "--tracking-uri",
            store["uri"],
            "--out",
            str(out),
            "--budget-flops",
            "40.3M",
            "--no-log",
            "--margin",
            "2",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "Pick r=16: within ±2.00 pp of the best (r=4) by TOST" in text
    assert "Within 40.3M FLOPs: r=16" in text
    assert "Holm over 4 comparisons with the best" in text
    assert "Does SE help: yes, at alpha=0.05 with Holm's correction over 4 SE" in text
    assert "r=4 by +3.00 pp" in text
    assert (out / "report.html").is_file()
    assert {p.name for p in out.glob("*.png")} >= {"acc_vs_flops.png", "acc_vs_r.png"}
    assert (out / "table_arch_se_reduction.csv").is_file()
    assert (out / "table_arch_se_reduction.md").is_file()


def test_cli_report_on_spec_file_uses_its_tracking(store, tmp_path, monkeypatch, capsys):
    from runners.cli.main import main

    spec = tmp_path / "stages.yaml"
    spec.write_text(
        f"name: {STAGE_SWEEP}\ntracking:\n  uri: {store['uri']}\n  experiment: {STAGE_EXPERIMENT}\n"
    )
    monkeypatch.chdir(tmp_path)
    rc = main(["report", str(spec), "--no-log"])
    assert rc == 0
    out = tmp_path / "selab_reports" / STAGE_SWEEP
    assert (out / "report.html").is_file() and (out / "stages.png").is_file()
    assert (out / "table_arch_se_stages.csv").is_file()
    captured = capsys.readouterr()
    # 1,1,1,1 is the most accurate (mean 0.76); with 2 seeds a point, nothing cheaper is shown
    # equivalent within ±1 pp or worse after Holm's correction: undecided, and it says why.
    assert "Undecided: the cheaper " in captured.out
    assert "of the best (stages 1,1,1,1) nor shown worse" in captured.out
    assert "seeds per configuration would decide it" in captured.out
    assert "Does SE help:" in captured.out and "Decision rule" in captured.out
    # reading the spec.yaml artifact draws no MLflow progress bar
    assert "Downloading artifacts" not in captured.out + captured.err


def test_cli_errors_are_clear(store, tmp_path, capsys):
    from runners.cli.main import main

    rc = main(["report", "nope", "--tracking-uri", store["uri"], "--out", str(tmp_path)])
    err = own_err(capsys)
    assert rc == 2
    assert "no sweep 'nope'" in err and R_SWEEP in err and STAGE_SWEEP in err
    assert "Traceback" not in err
    rc = main(["report", R_SWEEP, "--tracking-uri", store["uri"], "--budget-flops", "lots"])
    assert rc == 2 and "--budget-flops" in own_err(capsys)
    rc = main(["report", "x", "--tracking-uri", f"sqlite:///{tmp_path}/missing.db"])
    assert rc == 2 and "no MLflow store" in own_err(capsys)
    assert not (tmp_path / "missing.db").exists()
