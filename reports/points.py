"""Per-configuration summaries: the trials of one point (all seeds) folded into one row.

Only FINISHED trials enter means and intervals; the others are counted by status so a table can
say how many runs of a point did not make it.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from . import metrics as m
from .cost import measured_columns
from .decide import Arm
from .frame import FINISHED
from .stats import MeanCI, mean_ci

COST_COLS = m.COSTS
ACCURACY_BOUNDS = (0.0, 1.0)
_SEED_IN_LABEL = re.compile(r"[,;\s]*\bseed\s*[=:]\s*\S+", re.I)


def _label(labels: pd.Series) -> str:
    # Labels may carry the seed ("r=8 seed=1"); the point's label should not.
    clean = [_SEED_IN_LABEL.sub("", str(x)).strip() for x in labels.dropna()]
    return Counter(clean).most_common(1)[0][0] if clean else "?"


def baseline_mask(trials: pd.DataFrame) -> pd.Series:
    """Trials of the no-SE baseline (tag ``selab.baseline=true``)."""
    if "baseline" not in trials:
        return pd.Series(False, index=trials.index)
    return trials["baseline"].astype(bool)


def not_finished_text(statuses: pd.Series) -> str:
    """``"1 failed, 2 stopped_early"`` for the non-finished trials, ``""`` when none."""
    counts = Counter(s for s in statuses if s != FINISHED)
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def finished_values(trials: pd.DataFrame, col: str) -> pd.DataFrame:
    """Finished trials that logged a finite ``col``."""
    done = trials[trials["status"] == FINISHED] if "status" in trials else trials
    if col not in done:
        return done.iloc[:0]
    return done[np.isfinite(pd.to_numeric(done[col], errors="coerce").astype(float))]


def resolution(trials: pd.DataFrame, col: str) -> float:
    """The floor on the seed-to-seed spread of ``col``: one evaluation image (0 if unknown)."""
    done = finished_values(trials, col)
    found = m.accuracy_resolution(done[col]) if len(done) else None
    return found or 0.0


def _ci_columns(prefix: str, ci: MeanCI) -> dict[str, Any]:
    return {
        f"{prefix}_mean": ci.mean,
        f"{prefix}_std_error": ci.std_error,
        f"{prefix}_ci_half": ci.half_width,
        f"{prefix}_ci_low": ci.low,
        f"{prefix}_ci_high": ci.high,
        f"{prefix}_n": ci.n,
    }


def _summarise(
    group: pd.DataFrame,
    acc_col: str,
    level: float,
    floors: dict[str, float],
    extra: list[tuple[str, str]],
) -> dict[str, Any]:
    done = finished_values(group, acc_col)
    acc = mean_ci(done.get(acc_col, []), level, floors[acc_col], ACCURACY_BOUNDS)
    row: dict[str, Any] = {
        "n_trials": len(group),
        "n": acc.n,
        "n_not_finished": int((group["status"] != FINISHED).sum()),
        "not_finished": not_finished_text(group["status"]),
        "stopped_seeds": sorted(group.loc[group["status"] == "stopped_early", "seed"].tolist())
        if "seed" in group
        else [],
        "seeds": list(done["seed"]) if "seed" in done else [],
        "acc_values": [float(v) for v in done[acc_col]] if acc_col in done else [],
        **_ci_columns("acc", acc),
    }
    for prefix, col in extra:
        vals = finished_values(group, col)
        row.update(
            _ci_columns(
                prefix, mean_ci(vals.get(col, []), level, floors.get(col, 0.0), ACCURACY_BOUNDS)
            )
        )
    for col in COST_COLS:
        if col in group:  # cost does not depend on training: every trial that logged it
            row[col] = pd.to_numeric(group[col], errors="coerce").mean()
    for col in measured_columns(group):  # measured time: the median of the workers' figures
        row[col] = pd.to_numeric(group[col], errors="coerce").median()
    if m.IMAGES_PER_S in done:
        row[m.IMAGES_PER_S] = pd.to_numeric(done[m.IMAGES_PER_S], errors="coerce").mean()
    return row


def point_summary(
    trials: pd.DataFrame,
    acc_col: str = m.VAL_ACC,
    varied: list[str] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per configuration (``point_key``), aggregating its seeds.

    Columns: ``point_key``, ``label``, ``baseline``, ``point``, the varied keys, ``n_trials``,
    ``n`` (finished trials that logged ``acc_col``), ``n_not_finished``, ``not_finished``,
    ``stopped_seeds`` (seeds ASHA stopped), ``seeds``/``acc_values`` (finished only),
    ``acc_mean``, ``acc_std_error``, ``acc_ci_half``, ``acc_ci_low``/``acc_ci_high`` (clipped
    to [0, 1]), ``acc_n``, the same for ``top5_*`` (datasets with many classes) and ``test_*``
    (``test_acc``, when logged), the cost columns and ``images_per_s``. The spread is floored
    at ``resolution`` (one evaluation image), given in the frame's ``attrs``.
    """
    varied = list(varied or [])
    if trials.empty:
        return pd.DataFrame(columns=["point_key", "label", "baseline", *varied, "n", "acc_mean"])
    trials = trials.assign(baseline=baseline_mask(trials))
    extra = [
        (p, c)
        for p, c in (("top5", m.top5_of(acc_col)), ("test", m.TEST_ACC))
        if c in trials and (p != "top5" or top5_meaningful(trials))
    ]
    floors = {col: resolution(trials, col) for col in [acc_col, *(c for _, c in extra)]}
    rows: list[dict[str, Any]] = []
    for key, group in trials.groupby("point_key", sort=False):
        row: dict[str, Any] = {
            "point_key": key,
            "label": _label(group["label"]),
            "baseline": bool(group["baseline"].any()),
            "point": json.loads(str(key)),
        }
        for col in varied:
            vals = group[col].dropna() if col in group else pd.Series(dtype=object)
            row[col] = vals.iloc[0] if len(vals) else None
        rows.append(row | _summarise(group, acc_col, level, floors, extra))
    out = pd.DataFrame(rows)
    out.attrs.update(metric=acc_col, resolution=floors[acc_col], level=level)
    return out


def arms(points: pd.DataFrame, cost_col: str = "flops") -> list[Arm]:
    """The configurations as the decision functions take them (finished seeds only)."""
    other = "params" if cost_col == "flops" else "flops"
    out = []
    for _, p in points.iterrows():
        cost = tuple(float(p.get(c, math.nan)) for c in (cost_col, other))
        out.append(
            Arm(
                str(p["point_key"]),
                str(p["label"]),
                tuple(p["acc_values"]),
                tuple(p["seeds"]),
                bool(p["baseline"]),
                cost,
            )
        )
    return out


# Top-5 accuracy says little when 5 guesses cover a large share of the classes (half of
# CIFAR-10's): like the paper, report it only for datasets with many classes.
TOP5_MIN_CLASSES = 20


def top5_meaningful(trials: pd.DataFrame) -> bool:
    """False when the trials' ``arch.num_classes`` is known and below TOP5_MIN_CLASSES."""
    if "arch.num_classes" not in trials:
        return True
    classes = pd.to_numeric(trials["arch.num_classes"], errors="coerce").dropna()
    return classes.empty or classes.min() >= TOP5_MIN_CLASSES
