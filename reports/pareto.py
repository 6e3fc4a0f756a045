"""Pareto front of accuracy (maximise) against a cost (minimise)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .frame import FINISHED


def pareto_mask(acc: np.ndarray | pd.Series, cost: np.ndarray | pd.Series) -> np.ndarray:
    """True where no other point is at least as accurate and at most as costly, and strictly
    better in one of the two. Identical points do not dominate each other, so ties stay in."""
    a = np.asarray(acc, dtype=float)
    c = np.asarray(cost, dtype=float)
    keep = np.zeros(a.size, dtype=bool)
    for i in range(a.size):
        if not (np.isfinite(a[i]) and np.isfinite(c[i])):
            continue
        ok = np.isfinite(a) & np.isfinite(c)
        dominated = ok & (a >= a[i]) & (c <= c[i]) & ((a > a[i]) | (c < c[i]))
        keep[i] = not dominated.any()
    return keep


def pareto_front(
    df: pd.DataFrame, acc_col: str = "acc_mean", cost_col: str = "flops"
) -> pd.DataFrame:
    """Rows of ``df`` on the front, cheapest first, with ``pareto_tie`` marking rows that equal
    another front row in both accuracy and cost.

    Meant for per-point means (:func:`reports.points.point_summary`), which only count finished
    trials; given a trials frame, rows whose ``status`` is not finished are left out here too,
    so early-stopped, diverged or failed runs never enter the front. Rows missing either value
    are left out.
    """
    data = df
    if "status" in data:
        data = data[data["status"] == FINISHED]
    if "n" in data:  # a point with no finished trial has no mean to place
        data = data[data["n"] > 0]
    acc = pd.to_numeric(data[acc_col], errors="coerce")
    cost = pd.to_numeric(data[cost_col], errors="coerce")
    valid = acc.notna() & cost.notna()
    data, acc, cost = data[valid], acc[valid], cost[valid]
    front = data[pareto_mask(acc.to_numpy(), cost.to_numpy())].copy()
    pairs = list(zip(front[acc_col].astype(float), front[cost_col].astype(float), strict=True))
    front["pareto_tie"] = [pairs.count(p) > 1 for p in pairs]
    return front.sort_values([cost_col, acc_col], ascending=[True, False])
