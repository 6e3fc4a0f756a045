"""reports/ pure functions on hand-built data (no MLflow): intervals, tests across seeds, Pareto
fronts, per-point summaries, ablation tables and the recommendation.

Expected values are computed here independently of the code under test, mostly from closed
forms of Student's t distribution for 1 and 2 degrees of freedom:
  df=1 (Cauchy): P(T > t) = 1/2 - atan(t)/pi,            quantile tan(pi (q - 1/2));
  df=2:          P(T > t) = 1/2 - t / (2 sqrt(2 + t^2)),  quantile (2q - 1) / sqrt(2q(1 - q)).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import reports
from reports.frame import point_key
from reports.tables import format_table, to_markdown

# ------------------------------------------------------------------ t distribution by hand


def sf_df1(t: float) -> float:
    return 0.5 - math.atan(t) / math.pi


def sf_df2(t: float) -> float:
    return 0.5 - t / (2 * math.sqrt(2 + t * t))


def q_df1(q: float) -> float:
    return math.tan(math.pi * (q - 0.5))


def q_df2(q: float) -> float:
    return (2 * q - 1) / math.sqrt(2 * q * (1 - q))


def sd(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def paired_t(a: list[float], b: list[float]) -> float:
    d = [x - y for x, y in zip(a, b, strict=True)]
    return (sum(d) / len(d)) / (sd(d) / math.sqrt(len(d)))


def test_closed_forms_are_the_t_distribution():
    # The helpers above are the reference for everything below: check them once against the
    # textbook table values t_{0.975,1} = 12.706, t_{0.975,2} = 4.303.
    assert q_df1(0.975) == pytest.approx(12.706, abs=1e-3)
    assert q_df2(0.975) == pytest.approx(4.303, abs=1e-3)
    assert sf_df2(q_df2(0.975)) == pytest.approx(0.025)
    assert sf_df1(q_df1(0.95)) == pytest.approx(0.05)


# ------------------------------------------------------------------ mean_ci


def test_mean_ci_worked_example():
    ci = reports.mean_ci([0.90, 0.92, 0.94])
    assert ci.n == 3
    assert ci.mean == pytest.approx(0.92)
    assert ci.sd == pytest.approx(0.02)
    half = q_df2(0.975) * 0.02 / math.sqrt(3)  # 4.303 * 0.011547
    assert half == pytest.approx(0.04968, abs=1e-5)
    assert ci.half_width == pytest.approx(half)
    assert (ci.low, ci.high) == pytest.approx((0.92 - half, 0.92 + half))
    assert ci.has_ci
    assert ci.describe() == "92.00% ± 4.97 (95% CI, 3 seeds)"


def test_mean_ci_two_seeds_other_level_and_edge_cases():
    two = reports.mean_ci([0.75, 0.77])  # sd 0.01414, sd/sqrt(2) = 0.01
    assert two.half_width == pytest.approx(q_df1(0.975) * 0.01)
    ninety = reports.mean_ci([0.90, 0.92, 0.94], level=0.90)
    assert ninety.half_width == pytest.approx(q_df2(0.95) * 0.02 / math.sqrt(3))
    assert ninety.half_width < reports.mean_ci([0.90, 0.92, 0.94]).half_width

    # NaN and inf (a diverged value that slipped through) are ignored, not averaged
    dirty = reports.mean_ci([0.90, math.nan, 0.92, math.inf, 0.94])
    assert dirty.n == 3 and dirty.mean == pytest.approx(0.92)

    one = reports.mean_ci([0.93])
    assert one.n == 1 and one.mean == pytest.approx(0.93)
    assert math.isnan(one.half_width) and math.isnan(one.sd) and not one.has_ci
    assert one.describe() == "93.00% (1 seed: CI not available)"

    none = reports.mean_ci([])
    assert none.n == 0 and math.isnan(none.mean) and none.describe() == "no finished run"


# ------------------------------------------------------------------ compare / diff_ci

BASE = [0.90, 0.92, 0.94]
R4 = [0.935, 0.95, 0.965]  # per-seed gains 0.035, 0.030, 0.025 over BASE


def test_compare_paired_matches_hand_computation():
    t = paired_t(R4, BASE)  # mean d 0.03, sd d 0.005 -> t = 0.03 / (0.005 / sqrt 3) = 10.39
    assert t == pytest.approx(0.03 / (0.005 / math.sqrt(3)))
    res = reports.compare(R4, BASE, [0, 1, 2], [0, 1, 2])
    assert res.test == "paired t" and res.n_a == res.n_b == 3
    assert res.diff == pytest.approx(0.03)
    assert res.statistic == pytest.approx(t)
    assert res.p_value == pytest.approx(2 * sf_df2(t))
    assert res.significant() and not res.significant(alpha=res.p_value / 2)
    assert res.describe() == f"paired t, 3 pairs, p={2 * sf_df2(t):.3f}"
    greater = reports.compare(R4, BASE, [0, 1, 2], [0, 1, 2], alternative="greater")
    assert greater.p_value == pytest.approx(sf_df2(t))
    less = reports.compare(R4, BASE, [0, 1, 2], [0, 1, 2], alternative="less")
    assert less.p_value == pytest.approx(1 - sf_df2(t))
    # and scipy agrees
    assert res.p_value == pytest.approx(sps.ttest_rel(R4, BASE).pvalue)


def test_compare_pairs_by_seed_not_by_position():
    # Same runs listed in another order: pairing follows the seeds.
    res = reports.compare([R4[2], R4[0], R4[1]], BASE, [2, 0, 1], [0, 1, 2])
    assert res.test == "paired t"
    assert res.statistic == pytest.approx(paired_t(R4, BASE))
    # Paired by position instead, the differences would be 0.065, 0.015, 0.010: another t.
    assert paired_t([R4[2], R4[0], R4[1]], BASE) != pytest.approx(res.statistic)


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    va, vb = sd(a) ** 2 / len(a), sd(b) ** 2 / len(b)
    t = (sum(a) / len(a) - sum(b) / len(b)) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, dof


def test_compare_falls_back_to_welch_when_seeds_differ():
    a, b = [0.935, 0.95], BASE  # seed 2 of a failed: seeds no longer pair up
    t, dof = welch(a, b)
    res = reports.compare(a, b, [0, 1], [0, 1, 2])
    assert res.test == "Welch t" and (res.n_a, res.n_b) == (2, 3)
    assert res.statistic == pytest.approx(t)
    assert res.p_value == pytest.approx(2 * sps.t.sf(abs(t), dof))
    assert res.describe().startswith("Welch t, n=2 vs 3, p=")

    # disjoint seeds, equal n and equal spread: Welch's dof equals the pooled n_a + n_b - 2
    a = [0.95, 0.96, 0.97]
    b = [0.90, 0.91, 0.92]
    t, dof = welch(a, b)
    assert dof == pytest.approx(4.0)
    res = reports.compare(a, b, [0, 1, 2], [3, 4, 5], alternative="greater")
    assert res.test == "Welch t" and res.p_value == pytest.approx(sps.t.sf(t, 4))
    # without seeds at all, nothing can be paired either
    assert reports.compare(a, b).test == "Welch t"


def test_compare_drops_nan_with_its_seed_and_needs_two_per_side():
    res = reports.compare([0.935, math.nan, 0.965], BASE, [0, 1, 2], [0, 1, 2])
    assert res.n_a == 2 and res.test == "Welch t"  # seed 1 is gone: no longer paired
    assert res.diff == pytest.approx((0.935 + 0.965) / 2 - 0.92)

    res = reports.compare([0.95], BASE, [0], [0, 1, 2])
    assert not res.available and res.test == "n/a" and math.isnan(res.p_value)
    assert res.diff == pytest.approx(0.03) and "2 seeds" in res.reason
    assert not res.significant()
    assert res.describe().startswith("no test")


def test_compare_without_spread():
    # Every seed gains exactly the same: no noise, so the sign of the difference is certain.
    a, b = [0.5, 0.75, 1.0], [0.25, 0.5, 0.75]  # exact in binary: d = 0.25 three times
    assert reports.compare(a, b, [0, 1, 2], [0, 1, 2], alternative="greater").p_value == 0.0
    assert reports.compare(a, b, [0, 1, 2], [0, 1, 2], alternative="less").p_value == 1.0
    assert reports.compare(a, b, [0, 1, 2], [0, 1, 2]).p_value == 0.0
    same = reports.compare(b, b, [0, 1, 2], [0, 1, 2])
    assert same.p_value == 1.0 and same.diff == 0.0


def test_compare_treats_rounding_noise_as_no_spread():
    # 0.93 - 0.90 and 0.94 - 0.91 are both 0.03 but differ in the last bits of a float; that
    # is not seed-to-seed noise and must not turn into an arbitrary t (scipy also warns).
    d = [0.93 - 0.90, 0.94 - 0.91]
    assert d[0] != d[1] and d == pytest.approx([0.03, 0.03])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = reports.compare([0.93, 0.94], [0.90, 0.91], [0, 1], [0, 1],
                              alternative="greater")
        assert res.p_value == 0.0 and res.statistic == math.inf
        # the same for a difference of "zero" that is only rounding: no evidence, p = 1
        res = reports.compare([0.1 + 0.2, 0.6], [0.3, 0.2 + 0.4], [0, 1], [0, 1])
        assert res.p_value == 1.0 and res.statistic == 0.0
        # two sides without spread in Welch's test: likewise exact
        res = reports.compare([0.1 + 0.2, 0.3], [0.25, 0.25], alternative="greater")
        assert res.test == "Welch t" and res.p_value == 0.0


def test_diff_ci_paired_and_welch():
    paired = reports.diff_ci(R4, BASE, [0, 1, 2], [0, 1, 2])
    assert paired.mean == pytest.approx(0.03)
    assert paired.half_width == pytest.approx(q_df2(0.975) * 0.005 / math.sqrt(3))
    a, b = [0.95, 0.96, 0.97], [0.90, 0.91, 0.92]
    t, dof = welch(a, b)
    unpaired = reports.diff_ci(a, b, [0, 1, 2], [3, 4, 5])
    se = math.sqrt(2 * 0.01**2 / 3)
    assert unpaired.mean == pytest.approx(0.05)
    assert unpaired.half_width == pytest.approx(sps.t.ppf(0.975, dof) * se)
    assert math.isnan(reports.diff_ci([0.9], b).half_width)


# ------------------------------------------------------------------ Pareto


def dominated_by_definition(acc: list[float], cost: list[float]) -> list[bool]:
    """Brute force: i is dominated when some j is at least as accurate and at most as costly,
    and strictly better in one of the two."""
    out = []
    for i in range(len(acc)):
        out.append(any(acc[j] >= acc[i] and cost[j] <= cost[i]
                       and (acc[j] > acc[i] or cost[j] < cost[i]) for j in range(len(acc))))
    return out


def test_pareto_mask_keeps_non_dominated_drops_dominated_keeps_ties():
    acc = [0.90, 0.92, 0.91, 0.95, 0.95, 0.93, 0.92]
    cost = [1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 2.5]
    mask = reports.pareto_mask(acc, cost)
    # 0.91@3 is beaten by 0.92@2; 0.93@4 by 0.95@4 (same cost); 0.92@2.5 by 0.92@2 (same
    # accuracy, cheaper); the two 0.95@4 are identical and neither dominates the other.
    assert list(mask) == [True, True, False, True, True, False, False]


def test_pareto_mask_ignores_missing_values():
    mask = reports.pareto_mask([0.99, 0.90, math.nan, 0.95], [math.nan, 1.0, 0.5, 2.0])
    # rows without accuracy or cost are neither on the front nor dominate anything
    assert list(mask) == [False, True, False, True]


def test_pareto_mask_matches_definition_on_random_points():
    rng = random.Random(0)
    for _ in range(30):
        n = rng.randint(1, 12)
        # coarse grids make ties and equal coordinates common
        acc = [rng.choice([0.90, 0.91, 0.92, 0.93]) for _ in range(n)]
        cost = [float(rng.randint(1, 4)) for _ in range(n)]
        mask = reports.pareto_mask(np.array(acc), np.array(cost))
        expected = [not d for d in dominated_by_definition(acc, cost)]
        assert list(mask) == expected
        # the front is never empty and its members are mutually non-dominating
        assert mask.any()
        front = [(a, c) for a, c, m in zip(acc, cost, mask, strict=True) if m]
        for (a1, c1), (a2, c2) in itertools.permutations(front, 2):
            assert not (a1 >= a2 and c1 <= c2 and (a1 > a2 or c1 < c2))


def test_pareto_front_marks_ties_sorts_by_cost_and_skips_unfinished():
    points = pd.DataFrame({
        "label": ["no SE", "r=16", "r=16b", "r=8", "r=4", "r=2"],
        "n": [3, 3, 3, 3, 3, 0],
        "acc_mean": [0.90, 0.93, 0.93, 0.92, 0.95, math.nan],
        "flops": [40.0, 41.0, 41.0, 42.0, 43.0, 44.0],
    })
    front = reports.pareto_front(points, "acc_mean", "flops")
    # r=8 is dominated by r=16 (more costly, less accurate); the identical r=16 and r=16b
    # are both kept and marked as a tie; cheapest first
    assert list(front["flops"]) == [40.0, 41.0, 41.0, 43.0]
    assert set(front["label"]) == {"no SE", "r=16", "r=16b", "r=4"}
    assert front.set_index("label")["pareto_tie"].to_dict() == {
        "no SE": False, "r=16": True, "r=16b": True, "r=4": False}
    # a point with a finished count of 0 has no place, even if someone filled its mean
    filled = points.assign(acc_mean=points["acc_mean"].fillna(0.99))
    assert "r=2" not in set(reports.pareto_front(filled)["label"])

    trials = pd.DataFrame({
        "trial_id": ["a", "b", "c", "d", "e"],
        "status": ["finished", "finished", "stopped_early", "diverged", "running"],
        "val_acc": [0.90, 0.93, 0.99, 0.99, 0.99],
        "flops": [40.0, 41.0, 39.0, 39.0, 39.0],
    })
    front = reports.pareto_front(trials, "val_acc", "flops")
    # the unfinished runs would dominate both finished ones if they were counted
    assert list(front["trial_id"]) == ["a", "b"]


# ------------------------------------------------------------------ hand-built trial frames

VARIED = ["arch.se.reduction", "arch.se.enabled"]
BASE_FLOPS, BASE_PARAMS = 40e6, 1e6


def se_cost(r: int) -> tuple[float, float]:
    """(FLOPs, params) of a net with SE at reduction r: SE params 2/r * 1.6M."""
    params = 2 * 1.6e6 / r
    return BASE_FLOPS + params + 50_000, BASE_PARAMS + params


def trial_rows(key: int | str | None, accs: list[float | None], *, seeds: list[int] | None = None,
               status: str = "finished", start: int = 0) -> list[dict]:
    """Trials of one point; ``key`` None = the no-SE baseline, an int = reduction r, a str = the
    squeeze (with the fixed spec's r=16). An accuracy of None = the trial never logged it."""
    rows = []
    for i, acc in enumerate(accs):
        seed = (seeds or list(range(len(accs))))[i]
        if key is None:
            point, label, r, enabled = {"arch.se.enabled": False}, "no SE", 16, False
            flops, params = BASE_FLOPS, BASE_PARAMS
        elif isinstance(key, str):
            point, label, r, enabled = {"arch.se.squeeze": key}, f"squeeze={key}", 16, True
            flops, params = se_cost(16)
        else:
            point, label, r, enabled = ({"arch.se.reduction": key}, f"r={key}", key, True)
            flops, params = se_cost(key)
        rows.append({
            "run_id": f"{label}-{seed}-{status}", "trial_id": f"t{start + i}", "label": label,
            "status": status, "finished": status == "finished", "baseline": key is None,
            "seed": seed, "arch.se.reduction": r, "arch.se.enabled": enabled,
            "arch.se.squeeze": key if isinstance(key, str) else "avg",
            "val_acc": math.nan if acc is None else acc,
            "val_top5": math.nan if acc is None else acc + 0.04,
            "flops": flops, "params": params, "se_flops": flops - BASE_FLOPS,
            "se_params": params - BASE_PARAMS,
            "point": point, "point_key": point_key(point),
        })
    return rows


def frame(*groups: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for g in groups for row in g])


def test_point_summary_counts_only_finished_trials():
    trials = frame(
        trial_rows(8, [0.93, 0.95, 0.94]),
        trial_rows(8, [0.999], seeds=[3], status="stopped_early"),
        trial_rows(8, [0.999], seeds=[4], status="diverged"),
        trial_rows(8, [0.999], seeds=[5], status="running"),
        trial_rows(8, [None], seeds=[6]),  # finished but logged no accuracy
        trial_rows(2, [None], status="failed"),
    )
    pts = reports.point_summary(trials, varied=VARIED).set_index("label")
    r8 = pts.loc["r=8"]
    assert r8["n_trials"] == 7 and r8["n"] == 3 and r8["n_not_finished"] == 3
    assert r8["not_finished"] == "1 diverged, 1 running, 1 stopped_early"
    assert r8["acc_mean"] == pytest.approx(0.94)
    assert r8["acc_ci_half"] == pytest.approx(q_df2(0.975) * 0.01 / math.sqrt(3))
    assert sorted(r8["seeds"]) == [0, 1, 2]
    assert r8["top5_mean"] == pytest.approx(0.98)
    r2 = pts.loc["r=2"]
    assert r2["n"] == 0 and math.isnan(r2["acc_mean"]) and r2["not_finished"] == "1 failed"
    assert r2["flops"] == pytest.approx(se_cost(2)[0])  # cost is known without training


# ------------------------------------------------------------------ tables


def test_ablation_table_rows_numbers_and_welch_for_a_missing_seed():
    base = [0.90, 0.92, 0.94]
    r4 = [0.935, 0.95, 0.965]
    r8 = [0.93, 0.951]  # seed 2 failed
    trials = frame(trial_rows(None, base), trial_rows(8, r8),
                   trial_rows(8, [None], seeds=[2], status="failed"), trial_rows(4, r4))
    tables = reports.ablation_tables(trials, VARIED)
    assert list(tables) == ["arch.se.reduction"]
    t = tables["arch.se.reduction"]
    assert list(t["setting"]) == ["no SE", "r=4", "r=8"]  # baseline first, then by r
    assert pd.isna(t["value"].iloc[0]) and list(t["value"].iloc[1:]) == [4, 8]
    assert list(t["n_seeds"]) == [3, 3, 2]
    rows = t.set_index("setting")

    half = q_df2(0.975) * 0.02 / math.sqrt(3)
    assert rows.loc["no SE", "acc_mean"] == pytest.approx(0.92)
    assert rows.loc["no SE", "acc_ci_half"] == pytest.approx(half)
    assert rows.loc["no SE", "top1_err"] == pytest.approx(8.0)
    assert rows.loc["no SE", "top1_err_ci_half"] == pytest.approx(100 * half)
    assert rows.loc["no SE", "top5_err"] == pytest.approx(4.0)
    assert math.isnan(rows.loc["no SE", "p_value"])

    # params/FLOPs and their increase over the baseline
    flops4, params4 = se_cost(4)
    assert rows.loc["r=4", "params"] == pytest.approx(params4)
    assert rows.loc["r=4", "params_increase_pct"] == pytest.approx(80.0)  # +800k on 1M
    assert rows.loc["r=4", "flops_increase_pct"] == pytest.approx(100 * 850_000 / 40e6)

    # r=4 pairs with the baseline on seeds 0..2: two-sided paired t
    tp = paired_t(r4, base)
    assert rows.loc["r=4", "test"] == "paired t"
    assert rows.loc["r=4", "p_value"] == pytest.approx(2 * sf_df2(tp))
    assert rows.loc["r=4", "delta_top1_err_pp"] == pytest.approx(-3.0)
    assert bool(rows.loc["r=4", "significant"])

    # r=8 lost seed 2: Welch, with the failure counted but not averaged
    tw, dof = welch(r8, base)
    assert rows.loc["r=8", "test"] == "Welch t"
    assert rows.loc["r=8", "p_value"] == pytest.approx(2 * sps.t.sf(abs(tw), dof))
    assert rows.loc["r=8", "not_finished"] == "1 failed"
    assert rows.loc["r=8", "acc_mean"] == pytest.approx((0.93 + 0.951) / 2)
    assert rows.loc["r=8", "acc_ci_half"] == pytest.approx(
        q_df1(0.975) * sd(r8) / math.sqrt(2))
    assert rows.loc["r=8", "delta_top1_err_pp"] == pytest.approx(-100 * ((0.93 + 0.951) / 2
                                                                         - 0.92))
    assert bool(rows.loc["r=8", "significant"]) == (2 * sps.t.sf(abs(tw), dof) < 0.05)


def test_one_table_per_varied_axis_each_with_baseline_and_fixed_spec():
    # One factor at a time around a fixed spec (r=16, avg squeeze): the point {} belongs to
    # both axes' tables, each override only to its own axis.
    trials = frame(trial_rows(None, [0.90, 0.91]), trial_rows(4, [0.93, 0.94]),
                   trial_rows("max", [0.92, 0.925]))
    fixed = trial_rows(16, [0.915, 0.93])
    for row in fixed:
        row.update(point={}, point_key=point_key({}), label="fixed")
    trials = pd.concat([trials, frame(fixed)], ignore_index=True)
    varied = ["arch.se.reduction", "arch.se.squeeze", "arch.se.enabled"]
    tables = reports.ablation_tables(trials, varied)
    assert list(tables) == ["arch.se.reduction", "arch.se.squeeze"]
    r = tables["arch.se.reduction"]
    assert list(r["setting"]) == ["no SE", "r=4", "fixed"] and list(r["value"][1:]) == [4, 16]
    s = tables["arch.se.squeeze"]
    assert list(s["setting"]) == ["no SE", "fixed", "squeeze=max"]
    assert list(s["value"][1:]) == ["avg", "max"]
    assert s.set_index("setting").loc["squeeze=max", "acc_mean"] == pytest.approx(0.9225)


def test_table_markdown_and_csv_export(tmp_path):
    trials = frame(trial_rows(None, [0.90, 0.92, 0.94]), trial_rows(4, [0.935, 0.95, 0.965]),
                   trial_rows(8, [0.93]), trial_rows(8, [None], seeds=[1], status="diverged"))
    tables = reports.ablation_tables(trials, VARIED)
    table = tables["arch.se.reduction"]
    shown = format_table(table).set_index("setting")
    err = "top-1 err (%) ± 95% CI"
    assert shown.loc["no SE", err] == f"8.00 ± {100 * q_df2(0.975) * 0.02 / math.sqrt(3):.2f}"
    assert shown.loc["r=8", err] == "7.00 (CI n/a: 1 seed)"
    assert shown.loc["r=8", "not finished"] == "1 diverged"
    assert shown.loc["r=4", "Δparams vs no SE"] == "+80.0%"
    p4 = 2 * sf_df2(paired_t([0.935, 0.95, 0.965], [0.90, 0.92, 0.94]))
    assert shown.loc["r=4", "p (test)"] == f"{p4:.3f} (paired t)"
    assert shown.loc["r=4", "Δ top-1 err vs no SE (pp)"] == "-3.00 *"
    assert shown.loc["r=8", "p (test)"].startswith("n/a")

    files = reports.write_tables(tables, tmp_path)
    assert sorted(f.name for f in files) == ["table_arch_se_reduction.csv",
                                             "table_arch_se_reduction.md"]
    back = pd.read_csv(tmp_path / "table_arch_se_reduction.csv")
    assert list(back["setting"]) == ["no SE", "r=4", "r=8"]
    assert back["acc_mean"].tolist() == pytest.approx([0.92, 0.95, 0.93])
    assert back.loc[1, "p_value"] == pytest.approx(p4)
    assert back.loc[1, "params_increase_pct"] == pytest.approx(80.0)
    md = (tmp_path / "table_arch_se_reduction.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + 3 and len({ln.count("|") for ln in lines}) == 1
    assert lines[0].startswith("| reduction r | setting | seeds |")


def test_to_markdown_escapes_pipes():
    md = to_markdown(pd.DataFrame({"a|b": ["x|y"], "c": ["line\nbreak"]}))
    assert md.splitlines() == ["| a\\|b | c |", "|---|---|", "| x\\|y | line break |"]


# ------------------------------------------------------------------ recommendation

BEST = [0.910, 0.930, 0.920]  # mean 0.92


def test_pick_cheaper_r_when_best_is_not_significantly_better():
    r16 = [0.915, 0.915, 0.915]  # d = -0.005, 0.015, 0.005: t = 0.005 / (0.01 / sqrt 3)
    p = sf_df2(paired_t(BEST, r16))
    assert p == pytest.approx(0.2394, abs=1e-3) and p >= 0.05
    trials = frame(trial_rows(None, [0.85, 0.86, 0.87]), trial_rows(4, BEST),
                   trial_rows(16, r16))
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.best.label == "r=4" and rec.pick.label == "r=16"
    assert rec.test_vs_best.p_value == pytest.approx(p)
    assert rec.test_vs_best.test == "paired t"
    assert rec.text.startswith("Use r=16: 91.50%")
    assert f"p={p:.3f}" in rec.text
    assert rec.candidates.set_index("label").loc["r=16", "vs_best"] == "indistinguishable"
    assert rec.confidence == "moderate"


def test_pick_best_when_it_is_significantly_better():
    r16 = [0.899, 0.921, 0.909]  # d = 0.011, 0.009, 0.011: t = 15.5
    p = sf_df2(paired_t(BEST, r16))
    assert p < 0.01
    trials = frame(trial_rows(None, [0.85, 0.86, 0.87]), trial_rows(4, BEST),
                   trial_rows(16, r16))
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.pick.label == rec.best.label == "r=4" and rec.test_vs_best is None
    cand = rec.candidates.set_index("label")
    assert cand.loc["r=16", "vs_best"] == "worse"
    assert cand.loc["r=16", "p_vs_best"] == pytest.approx(p)
    assert f"significantly less accurate: r=16 (p={p:.3f})" in rec.text


def test_pick_is_cheapest_of_the_indistinguishable_not_cheapest_overall():
    r8 = [0.915, 0.915, 0.915]  # as r=16 in the first case: indistinguishable
    r32 = [0.899, 0.921, 0.909]  # as r=16 in the second case: worse
    trials = frame(trial_rows(None, [0.85, 0.86, 0.87]), trial_rows(4, BEST),
                   trial_rows(8, r8), trial_rows(32, r32))
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.pick.label == "r=8"
    # cost order is no SE < r=32 < r=8: both cheaper ones are listed as significantly worse
    assert "significantly less accurate: r=32" in rec.text and "no SE (p=" in rec.text


def test_no_se_baseline_is_picked_when_se_does_not_beat_it():
    base = [0.912, 0.925, 0.921]  # d vs BEST = -0.002, 0.005, -0.001: no detectable gain
    p = sf_df2(paired_t(BEST, base))
    assert p >= 0.05
    trials = frame(trial_rows(None, base), trial_rows(4, BEST), trial_rows(16, [0.90, 0.91, 0.9]))
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.best.label == "r=4"
    assert rec.pick.label == "no SE" and rec.pick.baseline
    assert rec.pick.flops == BASE_FLOPS
    assert rec.test_vs_best.p_value == pytest.approx(p)
    assert rec.text.startswith("Use no SE (the no-SE baseline)")
    assert "No SE configuration is significantly more accurate" in rec.text
    assert "does not establish a gain from SE" in rec.baseline_note

    # the baseline is the most accurate outright: it is the best and the pick
    trials = frame(trial_rows(None, [0.93, 0.94, 0.95]), trial_rows(4, BEST))
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.best.label == rec.pick.label == "no SE" and rec.test_vs_best is None
    assert "no SE configuration is more accurate" in rec.text
    assert "r=4, is -2.00 pp" in rec.text


def test_untestable_candidates_are_not_picked_and_single_seed_has_no_confidence():
    # r=16 is cheaper and looks as good, but its other seeds failed: no test, no pick.
    trials = frame(trial_rows(None, [0.85, 0.86, 0.87]), trial_rows(4, BEST),
                   trial_rows(16, [0.915]),
                   trial_rows(16, [None, None], seeds=[1, 2], status="failed"))
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.pick.label == "r=4"
    assert rec.candidates.set_index("label").loc["r=16", "vs_best"] == "untested"
    assert "Not testable (fewer than 2 finished seeds on one side): r=16." in rec.text

    one = frame(trial_rows(None, [0.85]), trial_rows(4, [0.92]), trial_rows(16, [0.91]))
    rec = reports.recommend(one, varied=VARIED)
    assert rec.pick.label == "r=4" and rec.confidence == "none"
    assert "with a single seed no test is possible" in rec.text
    assert "1 seed, CI not available" in rec.text


def test_cost_column_decides_between_indistinguishable_configurations():
    trials = frame(trial_rows(4, BEST), trial_rows(8, [0.915, 0.915, 0.915]))
    # make r=8 cheaper in params but dearer in FLOPs than r=4
    trials.loc[trials["label"] == "r=8", "flops"] = se_cost(4)[0] + 1
    assert reports.recommend(trials, varied=VARIED).pick.label == "r=4"
    assert reports.recommend(trials, varied=VARIED, cost_col="params").pick.label == "r=8"


def test_no_recommendation_without_a_finished_se_configuration():
    trials = frame(trial_rows(None, [0.85, 0.86]), trial_rows(4, [0.99], status="running"))
    assert reports.recommend(trials, varied=VARIED) is None


def test_budget_pick():
    r8 = [0.905, 0.915, 0.925]  # d vs BEST = 0.005, 0.015, -0.005: not significant
    r32 = [0.87, 0.895, 0.875]  # d vs BEST = 0.04, 0.035, 0.045: significant
    trials = frame(trial_rows(None, [0.85, 0.86, 0.87]), trial_rows(4, BEST),
                   trial_rows(8, r8), trial_rows(32, r32))
    f4, _ = se_cost(4)
    f8, _ = se_cost(8)
    _, p32 = se_cost(32)

    assert sf_df2(paired_t(BEST, r8)) >= 0.05
    rec = reports.recommend(trials, varied=VARIED, budget_flops=f4)
    assert rec.budget.pick.label == "r=4" and "the overall best fits" in rec.budget.text

    rec = reports.recommend(trials, varied=VARIED, budget_flops=f8)  # r=8, r=32, no SE fit
    assert rec.budget.pick.label == "r=8"  # the most accurate of those
    assert rec.budget.test_vs_best.p_value == pytest.approx(sf_df2(paired_t(BEST, r8)))
    assert rec.budget.text.startswith("Within ")

    rec = reports.recommend(trials, varied=VARIED, budget_params=p32, budget_flops=f4)
    assert rec.budget.pick.label == "r=32"  # the params limit binds
    p = sf_df2(paired_t(BEST, r32))  # t = 0.04 / (0.005 / sqrt 3) = 13.9
    assert p < 0.05
    assert rec.budget.test_vs_best.p_value == pytest.approx(p)
    assert "significant" in rec.budget.text and "the budget costs 4.00 pp" in rec.budget.text

    rec = reports.recommend(trials, varied=VARIED, budget_params=p32 - 1)
    assert rec.budget.pick.label == "no SE"
    assert rec.budget.text.startswith("No SE configuration fits within")

    rec = reports.recommend(trials, varied=VARIED, budget_flops=BASE_FLOPS - 1)
    assert rec.budget.pick is None
    assert rec.budget.text.startswith("Nothing fits within 40M FLOPs")
    assert "no SE, needs 40M FLOPs, 1M params" in rec.budget.text


# ------------------------------------------------------------------ units


@pytest.mark.parametrize(("text", "value"), [
    ("40M", 40e6), ("40m", 40e6), ("1.2G", 1.2e9), ("500k", 5e5), ("3e9", 3e9),
    ("25M params", 25e6), ("1.2GFLOPs", 1.2e9), (7, 7.0),
])
def test_parse_quantity(text, value):
    assert reports.parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["lots", "0", "-1M", "1.2X", ""])
def test_parse_quantity_rejects(text):
    with pytest.raises(ValueError):
        reports.parse_quantity(text)


def test_point_key_ignores_seed_and_reads_masks_like_params():
    # point_key is the configuration id used everywhere above: seeds never enter it
    assert point_key({"arch.se.reduction": 8, "seed": 3}) == point_key({"arch.se.reduction": 8})
    assert json.loads(point_key({"arch.se.stages": [True, False]})) == {"arch.se.stages": "1,0"}


def test_accuracy_error_bars_stop_at_0_and_100_percent():
    from reports.plots import accuracy_yerr

    bars = accuracy_yerr([98.0, 50.0, 1.0], [5.0, 5.0, 5.0])
    assert bars[:, 0].tolist() == [5.0, 2.0]  # 98 - 5 .. 98 + 2
    assert bars[:, 1].tolist() == [5.0, 5.0]
    assert bars[:, 2].tolist() == [1.0, 5.0]


def test_top5_is_left_out_for_datasets_with_few_classes():
    from reports.points import top5_meaningful

    assert not top5_meaningful(pd.DataFrame({"arch.num_classes": [10, 10]}))
    assert top5_meaningful(pd.DataFrame({"arch.num_classes": [100, 100]}))
    assert top5_meaningful(pd.DataFrame({"val_acc": [0.5]}))  # unknown: keep it


def test_integer_axis_values_print_without_a_decimal_point():
    from reports.tables import _value

    assert [_value(v) for v in (2.0, 2.5, "1,0,1", None, math.nan)] == [
        "2", "2.5", "1,0,1", "—", "—"]
