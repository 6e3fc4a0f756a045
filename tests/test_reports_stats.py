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
    assert ci.std_error == pytest.approx(0.02 / math.sqrt(3))  # sd 0.02 over sqrt(n)
    half = q_df2(0.975) * 0.02 / math.sqrt(3)  # 4.303 * 0.011547
    assert half == pytest.approx(0.04968, abs=1e-5)
    assert ci.half_width == pytest.approx(half)
    assert (ci.low, ci.high) == pytest.approx((0.92 - half, 0.92 + half))
    assert ci.has_ci
    assert ci.describe() == "92.00% [87.03, 96.97] (95% CI, 3 seeds)"


def test_tied_seeds_never_give_a_zero_width_interval_and_bounds_clip():
    # Three seeds with the same accuracy: the spread is floored at one validation image.
    floor = 1 / 360
    ci = reports.mean_ci([0.975, 0.975, 0.975], floor=floor, bounds=(0.0, 1.0))
    assert ci.half_width == pytest.approx(q_df2(0.975) * floor / math.sqrt(3))
    assert ci.half_width > 0
    # Two seeds near 100%: the t-interval runs past 1, the interval stops there.
    near = reports.mean_ci([0.99, 1.0], bounds=(0.0, 1.0))
    assert near.mean + near.half_width > 1.0 and near.high == 1.0
    assert near.low == pytest.approx(0.995 - q_df1(0.975) * 0.005)


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
    assert math.isnan(one.half_width) and math.isnan(one.std_error) and not one.has_ci
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


def test_seeds_that_tie_never_give_p_zero():
    # Every seed gains exactly one validation image (1/360): without a floor that is "no
    # noise" and p = 0. Floored at one image, the paired t has d = 1/360 and sd 1/360:
    # t = sqrt(2) with 1 df, and P(T > sqrt 2) = 1/2 - atan(sqrt 2) / pi.
    floor = 1 / 360
    a, b = [0.5 + floor, 0.75 + floor], [0.5, 0.75]
    res = reports.compare(a, b, [0, 1], [0, 1], alternative="greater", floor=floor)
    assert res.test == "paired t"
    assert res.statistic == pytest.approx(math.sqrt(2))
    assert res.p_value == pytest.approx(sf_df1(math.sqrt(2)))
    assert 0.19 < res.p_value < 0.2
    # without a resolution there is no test rather than a p of 0
    res = reports.compare(a, b, [0, 1], [0, 1], alternative="greater")
    assert not res.available and "no spread" in res.reason
    # rounding noise (0.93 - 0.90 vs 0.94 - 0.91) is below the floor: the floor decides
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = reports.compare(
            [0.93, 0.94], [0.90, 0.91], [0, 1], [0, 1], alternative="greater", floor=0.001
        )
    assert res.statistic == pytest.approx(0.03 / (0.001 / math.sqrt(2)))
    assert 0 < res.p_value == pytest.approx(sf_df1(res.statistic))


def test_equivalence_is_two_one_sided_tests():
    # d = a - b = 0.001 on every seed, sd floored at 0.002, margin 0.01, 3 pairs (2 df):
    # t_low = (0.001 + 0.01) / (0.002 / sqrt 3), t_high = (0.001 - 0.01) / (0.002 / sqrt 3)
    a, b = [0.911, 0.921, 0.931], [0.910, 0.920, 0.930]
    res = reports.equivalence(a, b, 0.01, [0, 1, 2], [0, 1, 2], floor=0.002)
    se = 0.002 / math.sqrt(3)
    p_low, p_high = sf_df2((0.011) / se), sf_df2(0.009 / se)
    assert res.test == "TOST paired t"
    assert res.p_value == pytest.approx(max(p_low, p_high))
    # a difference at the margin can never be shown equivalent: p >= 1/2
    at_margin = reports.equivalence(
        [0.92, 0.93, 0.94], [0.91, 0.92, 0.93], 0.01, [0, 1, 2], [0, 1, 2], floor=0.002
    )
    assert at_margin.p_value >= 0.5 - 1e-9


def test_holm_and_power_come_from_statsmodels():
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.power import TTestPower

    # Holm: sorted p times (m, m-1, ...), made monotone; NaN stays out of the family.
    assert reports.holm([0.01, math.nan, 0.04, 0.03]) == pytest.approx(
        [0.03, math.nan, 0.06, 0.06], nan_ok=True
    )
    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 9):
        p = rng.uniform(0, 0.2, size)
        assert reports.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert reports.power(0.01, 0.01, 5, 0.05) == pytest.approx(
        TTestPower().power(1.0, 5, 0.05, alternative="larger")
    )
    n = reports.seeds_needed(0.005, 0.01, 0.05)
    assert reports.power(0.005, 0.01, n, 0.05) >= 0.8 > reports.power(0.005, 0.01, n - 1, 0.05)
    assert reports.seeds_needed(1e-6, 0.01, 0.05) is None  # more than anyone would run


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
        out.append(
            any(
                acc[j] >= acc[i] and cost[j] <= cost[i] and (acc[j] > acc[i] or cost[j] < cost[i])
                for j in range(len(acc))
            )
        )
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
    points = pd.DataFrame(
        {
            "label": ["no SE", "r=16", "r=16b", "r=8", "r=4", "r=2"],
            "n": [3, 3, 3, 3, 3, 0],
            "acc_mean": [0.90, 0.93, 0.93, 0.92, 0.95, math.nan],
            "flops": [40.0, 41.0, 41.0, 42.0, 43.0, 44.0],
        }
    )
    front = reports.pareto_front(points, "acc_mean", "flops")
    # r=8 is dominated by r=16 (more costly, less accurate); the identical r=16 and r=16b
    # are both kept and marked as a tie; cheapest first
    assert list(front["flops"]) == [40.0, 41.0, 41.0, 43.0]
    assert set(front["label"]) == {"no SE", "r=16", "r=16b", "r=4"}
    assert front.set_index("label")["pareto_tie"].to_dict() == {
        "no SE": False,
        "r=16": True,
        "r=16b": True,
        "r=4": False,
    }
    # a point with a finished count of 0 has no place, even if someone filled its mean
    filled = points.assign(acc_mean=points["acc_mean"].fillna(0.99))
    assert "r=2" not in set(reports.pareto_front(filled)["label"])

    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d", "e"],
            "status": ["finished", "finished", "stopped_early", "diverged", "running"],
            "val_acc": [0.90, 0.93, 0.99, 0.99, 0.99],
            "flops": [40.0, 41.0, 39.0, 39.0, 39.0],
        }
    )
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


def trial_rows(
    key: int | str | None,
    accs: list[float | None],
    *,
    seeds: list[int] | None = None,
    status: str = "finished",
    start: int = 0,
) -> list[dict]:
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
        rows.append(
            {
                "run_id": f"{label}-{seed}-{status}",
                "trial_id": f"t{start + i}",
                "label": label,
                "status": status,
                "finished": status == "finished",
                "baseline": key is None,
                "seed": seed,
                "arch.se.reduction": r,
                "arch.se.enabled": enabled,
                "arch.se.squeeze": key if isinstance(key, str) else "avg",
                "val_acc": math.nan if acc is None else acc,
                "val_top5": math.nan if acc is None else acc + 0.04,
                "flops": flops,
                "params": params,
                "se_flops": flops - BASE_FLOPS,
                "se_params": params - BASE_PARAMS,
                "point": point,
                "point_key": point_key(point),
            }
        )
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
    trials = frame(
        trial_rows(None, base),
        trial_rows(8, r8),
        trial_rows(8, [None], seeds=[2], status="failed"),
        trial_rows(4, r4),
    )
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
    assert rows.loc["no SE", "top1_err_high"] - rows.loc["no SE", "top1_err"] == pytest.approx(
        100 * half
    )
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
    # stars are Holm-adjusted over the table's two tested rows
    tw, dof = welch(r8, base)
    p8 = 2 * sps.t.sf(abs(tw), dof)
    assert rows.loc["r=4", "p_holm"] == pytest.approx(min(1, 2 * min(p8, 2 * sf_df2(tp))))
    assert bool(rows.loc["r=4", "significant"]) == (rows.loc["r=4", "p_holm"] < 0.05)

    # r=8 lost seed 2: Welch, with the failure counted but not averaged
    assert rows.loc["r=8", "test"] == "Welch t"
    assert rows.loc["r=8", "p_value"] == pytest.approx(2 * sps.t.sf(abs(tw), dof))
    assert rows.loc["r=8", "not_finished"] == "1 failed"
    assert rows.loc["r=8", "acc_mean"] == pytest.approx((0.93 + 0.951) / 2)
    assert rows.loc["r=8", "acc_ci_half"] == pytest.approx(q_df1(0.975) * sd(r8) / math.sqrt(2))
    assert rows.loc["r=8", "delta_top1_err_pp"] == pytest.approx(-100 * ((0.93 + 0.951) / 2 - 0.92))
    assert bool(rows.loc["r=8", "significant"]) == (rows.loc["r=8", "p_holm"] < 0.05)


def test_one_table_per_varied_axis_each_with_baseline_and_fixed_spec():
    # One factor at a time around a fixed spec (r=16, avg squeeze): the point {} belongs to
    # both axes' tables, each override only to its own axis.
    trials = frame(
        trial_rows(None, [0.90, 0.91]),
        trial_rows(4, [0.93, 0.94]),
        trial_rows("max", [0.92, 0.925]),
    )
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
    trials = frame(
        trial_rows(None, [0.90, 0.92, 0.94]),
        trial_rows(4, [0.935, 0.95, 0.965]),
        trial_rows(8, [0.93]),
        trial_rows(8, [None], seeds=[1], status="diverged"),
    )
    tables = reports.ablation_tables(trials, VARIED)
    table = tables["arch.se.reduction"]
    shown = format_table(table).set_index("setting")
    err = "top-1 err (%) [95% CI]"
    half = 100 * q_df2(0.975) * 0.02 / math.sqrt(3)
    assert shown.loc["no SE", err] == f"8.00 [{8 - half:.2f}, {8 + half:.2f}]"
    assert shown.loc["r=8", err] == "7.00 (CI n/a: 1 seed)"
    assert shown.loc["r=8", "not finished"] == "1 diverged"
    assert shown.loc["r=4", "Δparams vs no SE"] == "+80.0%"
    p4 = 2 * sf_df2(paired_t([0.935, 0.95, 0.965], [0.90, 0.92, 0.94]))
    # the only tested row: Holm over a family of one leaves p as it is
    assert shown.loc["r=4", "p Holm (p, test)"] == f"{p4:.3f} ({p4:.3f}, paired t)"
    assert shown.loc["r=4", "Δ top-1 err vs no SE (pp)"] == "-3.00 *"
    assert shown.loc["r=8", "p Holm (p, test)"].startswith("n/a")

    files = reports.write_tables(tables, tmp_path)
    assert sorted(f.name for f in files) == [
        "table_arch_se_reduction.csv",
        "table_arch_se_reduction.md",
    ]
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
NEAR_BEST = [0.909, 0.929, 0.919]  # 1 image (at resolution 1/1000) below BEST on every seed
NO_SE = [0.85, 0.86, 0.87]


def holm_min(p: float, family: int) -> float:
    """Holm's adjusted p of the smallest of `family` p-values."""
    return min(1.0, family * p)


def test_pick_the_cheaper_configuration_shown_equivalent_to_the_best():
    trials = frame(trial_rows(None, NO_SE), trial_rows(4, BEST), trial_rows(16, NEAR_BEST))
    rec = reports.recommend(trials, varied=VARIED, margin=0.01)
    assert rec.resolution == pytest.approx(0.001)  # values are k/1000
    assert rec.best.label == "r=4" and rec.pick.label == "r=16" and rec.decided
    # TOST on d = -0.001 (three times), sd floored at 0.001, 2 df, margin 0.01
    se = 0.001 / math.sqrt(3)
    p = max(sf_df2((0.01 - 0.001) / se), sf_df2((0.01 + 0.001) / se))
    c = rec.choice.contender(rec.pick.point_key)
    assert c.verdict == "equivalent" and c.equivalent.p_value == pytest.approx(p)
    assert c.p_equivalent_holm == pytest.approx(holm_min(p, 2))  # no SE and r=16 vs the best
    # one sentence that names only what the decision table shows
    assert rec.text == (
        "Pick r=16: within ±1.00 pp of the best (r=4) by TOST, and cheaper "
        "(40.25M vs 40.85M FLOPs); the cheaper no SE is shown worse."
    )
    table = rec.table.set_index("configuration")
    assert list(table.index) == ["no SE", "r=16", "r=4"]  # cheapest first
    assert table.loc["r=16", "vs best"] == "within ±1.00 pp <- pick"
    assert table.loc["r=4", "vs best"] == "best" and table.loc["no SE", "vs best"] == "worse"
    assert (table.loc["r=16", "FLOPs"], table.loc["r=4", "FLOPs"]) == ("40.25M", "40.85M")
    assert table.loc["no SE", "worse than"] == "r=4"
    numbers = " ".join(rec.numbers)
    assert numbers.startswith("r=16: 91.90% [")
    assert (
        f"r=16 is -0.10 pp against r=4, TOST paired t within ±1.00 pp, p={p:.3f}, Holm over 2 "
        f"comparisons with the best: p={holm_min(p, 2):.3f} < 0.05"
    ) in numbers
    # the cheaper no SE is shown worse: r=4 beats it most clearly (paired t = 10.39, 2 df);
    # times its 2 comparisons, then Holm's first step over the 3 configurations
    p_worse = sf_df2(paired_t(BEST, NO_SE))
    assert (
        f"no SE shown worse: -6.00 pp against r=4, paired t one-sided, p={p_worse:.3f}, "
        f"times 2 comparisons and Holm over 3 configurations: p={6 * p_worse:.3f}"
    ) in numbers
    assert table.loc["no SE", "p worse"] == f"{6 * p_worse:.3f}"


def test_failing_to_find_a_difference_is_undecided_not_equivalent():
    r16 = [0.915, 0.915, 0.915]  # d = +0.005, -0.015, -0.005 against BEST: sd 0.01
    assert sf_df2(paired_t(BEST, r16)) >= 0.05  # the old rule called this "indistinguishable"
    trials = frame(trial_rows(None, NO_SE), trial_rows(4, BEST), trial_rows(16, r16))
    rec = reports.recommend(trials, varied=VARIED, margin=0.01)
    assert not rec.decided and rec.pick.label == "r=4"
    assert rec.choice.contender(rec.choice.open_cheaper[0].arm.key).arm.label == "r=16"
    from statsmodels.stats.power import TTestPower

    # gap 0.005 inside the margin 0.01: TOST needs to detect 0.01 - 0.005 at sd 0.01,
    # alpha / 2 (Holm's worst case over the 2 comparisons), 80% power
    n = math.ceil(TTestPower().solve_power(0.5, alpha=0.025, power=0.8, alternative="larger"))
    assert rec.choice.seeds_to_decide == n
    assert rec.text == (
        f"Undecided: the cheaper r=16 is neither within ±1.00 pp of the best "
        f"(r=4) nor shown worse; about {n} seeds per configuration would decide "
        "it. Until then, pick r=4: the most accurate; the cheaper no SE is "
        "shown worse."
    )
    assert "r=16 open: -0.50 pp against r=4, TOST paired t" in " ".join(rec.numbers)
    assert rec.table.set_index("configuration").loc["r=16", "vs best"] == "open"


def test_pick_the_best_when_every_cheaper_one_is_shown_worse():
    r16 = [0.899, 0.921, 0.909]  # d = 0.011, 0.009, 0.011: t = 15.5
    trials = frame(trial_rows(None, NO_SE), trial_rows(4, BEST), trial_rows(16, r16))
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.pick.label == rec.best.label == "r=4" and rec.decided
    c = next(x for x in rec.choice.contenders if x.arm.label == "r=16")
    p16 = sf_df2(paired_t(BEST, r16))
    p_base = sf_df2(paired_t(BEST, NO_SE))
    assert c.verdict == "worse" and c.worse.p_value == pytest.approx(p16)
    assert c.beaten_by.label == "r=4" and c.comparisons == 2
    # Holm's first step over 3 configurations of 2 x the smallest p
    assert p16 < p_base and c.p_worse_holm == pytest.approx(3 * 2 * p16)
    base = next(x for x in rec.choice.contenders if x.arm.label == "no SE")
    assert base.p_worse_holm == pytest.approx(max(6 * p16, 2 * 2 * p_base))  # second step
    assert rec.text == "Pick r=4: the most accurate; the cheaper no SE and r=16 are shown worse."


def test_no_se_is_picked_only_when_shown_equivalent():
    trials = frame(
        trial_rows(None, NEAR_BEST), trial_rows(4, BEST), trial_rows(16, [0.90, 0.91, 0.90])
    )
    rec = reports.recommend(trials, varied=VARIED, margin=0.01)
    assert rec.pick.label == "no SE" and rec.pick.baseline and rec.decided
    assert rec.pick.flops == BASE_FLOPS
    assert rec.text == (
        "Pick no SE: within ±1.00 pp of the best (r=4) by TOST, and cheaper (40M vs 40.85M FLOPs)."
    )
    assert rec.se_text.startswith("Does SE help: not shown.")
    # the same baseline with a margin too tight to show equivalence: undecided, not "no SE"
    tight = reports.recommend(trials, varied=VARIED, margin=0.0011)
    # (r=16 is 1.7 pp below r=4, paired p = 0.019: not shown worse once Holm's closed test
    # accounts for the best being chosen from the same three configurations)
    assert not tight.decided
    assert tight.text.startswith(
        "Undecided: the cheaper no SE and r=16 are neither within ±0.11 pp of the best (r=4)"
    )

    # the baseline is the most accurate outright: it is the best and the pick
    trials = frame(trial_rows(None, [0.93, 0.94, 0.95]), trial_rows(4, BEST))
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.best.label == rec.pick.label == "no SE" and rec.decided
    assert rec.text == "Pick no SE: the most accurate, and the cheapest."


def test_se_helps_is_corrected_for_the_number_of_se_configurations():
    base = [0.90, 0.91, 0.92]
    r4 = [0.904, 0.92, 0.925]  # d = 0.004, 0.010, 0.005: one-sided p = 0.038 alone
    r16 = [0.901, 0.908, 0.921]  # no gain
    d = [a - b for a, b in zip(r4, base, strict=True)]
    p4 = sf_df2((sum(d) / 3) / (sd(d) / math.sqrt(3)))
    assert 0.025 < p4 < 0.05
    alone = reports.recommend(frame(trial_rows(None, base), trial_rows(4, r4)), varied=VARIED)
    assert [v.arm.label for v in alone.se.helped] == ["r=4"]
    assert alone.se_text.startswith(
        "Does SE help: yes, at alpha=0.05 with Holm's correction "
        "over 1 SE configurations: r=4 by +0.63 pp"
    )
    both = reports.recommend(
        frame(trial_rows(None, base), trial_rows(4, r4), trial_rows(16, r16)), varied=VARIED
    )
    top = both.se.rows[0]
    assert top.arm.label == "r=4" and top.test.p_value == pytest.approx(p4)
    assert top.p_holm == pytest.approx(2 * p4) and not both.se.helped
    assert both.se_text.startswith("Does SE help: not shown.")
    assert f"Holm-adjusted over 2 SE configurations: p={2 * p4:.3f}" in both.se_text


def test_configurations_with_one_seed_leave_the_decision_open():
    trials = frame(
        trial_rows(None, NO_SE),
        trial_rows(4, BEST),
        trial_rows(16, [0.915]),
        trial_rows(16, [None, None], seeds=[1, 2], status="failed"),
    )
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.pick.label == "r=4" and not rec.decided
    assert rec.choice.contender(rec.choice.open_cheaper[0].arm.key).verdict == "untested"
    assert "r=16 open: -0.50 pp against r=4, fewer than 2 seeds on a side (no test)." in rec.numbers
    assert rec.table.set_index("configuration").loc["r=16", "vs best"] == "untested"

    one = frame(trial_rows(None, [0.85]), trial_rows(4, [0.92]), trial_rows(16, [0.91]))
    rec = reports.recommend(one, varied=VARIED)
    assert rec.pick.label == "r=4" and not rec.decided and rec.choice.seeds_to_decide is None
    assert "1 seed, CI not available" in rec.numbers[0]
    assert rec.text == (
        "Pick r=4: the most accurate of 3 configurations, but with one seed "
        "each nothing is tested; run seeds of the best and the cheaper ones to "
        "decide."
    )


def test_cost_column_decides_between_equivalent_configurations():
    trials = frame(trial_rows(4, BEST), trial_rows(8, NEAR_BEST))
    # make r=8 cheaper in params but dearer in FLOPs than r=4
    trials.loc[trials["label"] == "r=8", "flops"] = se_cost(4)[0] + 1
    assert reports.recommend(trials, varied=VARIED).pick.label == "r=4"
    assert reports.recommend(trials, varied=VARIED, cost_col="params").pick.label == "r=8"


def test_no_recommendation_without_a_finished_se_configuration():
    trials = frame(trial_rows(None, [0.85, 0.86]), trial_rows(4, [0.99], status="running"))
    assert reports.recommend(trials, varied=VARIED) is None


def test_test_split_is_shown_beside_the_pick_and_never_used_to_choose():
    trials = frame(trial_rows(None, NO_SE), trial_rows(4, BEST), trial_rows(16, NEAR_BEST))
    # a test split that would reverse the choice if it were used
    trials["test_acc"] = [0.99 if r == 16 else 0.5 for r in trials["arch.se.reduction"]]
    trials.loc[trials["label"] == "no SE", "test_acc"] = 0.999
    rec = reports.recommend(trials, varied=VARIED)
    assert rec.pick.label == "r=16"
    assert "Its test_acc on the test split is 99.00%" in " ".join(rec.numbers)


def test_budget_pick():
    r8 = NEAR_BEST  # equivalent to BEST within 1 pp
    r32 = [0.87, 0.895, 0.875]  # d vs BEST = 0.04, 0.035, 0.045: worse
    trials = frame(
        trial_rows(None, NO_SE), trial_rows(4, BEST), trial_rows(8, r8), trial_rows(32, r32)
    )
    f4, _ = se_cost(4)
    f8, _ = se_cost(8)
    _, p32 = se_cost(32)

    rec = reports.recommend(trials, varied=VARIED, budget_flops=f4)
    assert rec.budget.pick.label == "r=4" and "the overall best fits" in rec.budget.text

    rec = reports.recommend(trials, varied=VARIED, budget_flops=f8)  # r=8, r=32, no SE fit
    assert rec.budget.pick.label == "r=8"  # the most accurate of those
    assert rec.budget.text.startswith("Within ")
    # the verdict the choice made on r=8, with its correction: one rule for the report
    assert "within ±1.00 pp of the overall best r=4: -0.10 pp against r=4" in rec.budget.text
    assert "Holm over 3 comparisons with the best" in rec.budget.text

    rec = reports.recommend(trials, varied=VARIED, budget_params=p32, budget_flops=f4)
    assert rec.budget.pick.label == "r=32"  # the params limit binds
    p = sf_df2(paired_t(BEST, r32))
    assert (
        f"the budget costs 4.00 pp against the overall best r=4: shown worse, -4.00 pp "
        f"against r=4, paired t one-sided, p={p:.3f}, times 3 comparisons"
    ) in rec.budget.text

    rec = reports.recommend(trials, varied=VARIED, budget_params=p32 - 1)
    assert rec.budget.pick.label == "no SE"
    assert rec.budget.text.startswith("No SE configuration fits within")

    rec = reports.recommend(trials, varied=VARIED, budget_flops=BASE_FLOPS - 1)
    assert rec.budget.pick is None
    assert rec.budget.text.startswith("Nothing fits within 40M FLOPs")
    assert "no SE, needs 40M FLOPs, 1M params" in rec.budget.text


# ------------------------------------------------------------------ units


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("40M", 40e6),
        ("40m", 40e6),
        ("1.2G", 1.2e9),
        ("500k", 5e5),
        ("3e9", 3e9),
        ("25M params", 25e6),
        ("1.2GFLOPs", 1.2e9),
        (7, 7.0),
    ],
)
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


def test_plot_error_bars_are_the_table_intervals_clipped_at_0_and_100_percent():
    from reports.plots import interval_yerr

    trials = frame(trial_rows(4, [0.99, 1.0]), trial_rows(8, [0.93, 0.95, 0.94]))
    points = reports.point_summary(trials, varied=VARIED)
    bars = interval_yerr(points)
    r4 = points.set_index("label").loc["r=4"]
    assert r4["acc_ci_high"] == 1.0  # the t-interval would reach 100.6%
    assert bars[:, 0].tolist() == pytest.approx([100 * (0.995 - r4["acc_ci_low"]), 0.5])
    table = reports.ablation_tables(trials, VARIED)["arch.se.reduction"].set_index("setting")
    assert table.loc["r=4", "top1_err_low"] == pytest.approx(0.0)  # error cannot go below 0


def test_top5_is_left_out_for_datasets_with_few_classes():
    from reports.points import top5_meaningful

    assert not top5_meaningful(pd.DataFrame({"arch.num_classes": [10, 10]}))
    assert top5_meaningful(pd.DataFrame({"arch.num_classes": [100, 100]}))
    assert top5_meaningful(pd.DataFrame({"val_acc": [0.5]}))  # unknown: keep it


def test_integer_axis_values_print_without_a_decimal_point():
    from reports.tables import _value

    assert [_value(v) for v in (2.0, 2.5, "1,0,1", None, math.nan)] == [
        "2",
        "2.5",
        "1,0,1",
        "—",
        "—",
    ]
