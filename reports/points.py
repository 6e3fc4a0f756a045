"""Per-configuration summaries: the trials of one point (all seeds) folded into one row.

Only FINISHED trials enter means and intervals; the others are counted by status so a table can
say how many runs of a point did not make it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pandas as pd

from .frame import FINISHED
from .stats import mean_ci

COST_COLS = ("flops", "params", "se_flops", "se_params")
_SEED_IN_LABEL = re.compile(r"[,;\s]*\bseed\s*[=:]\s*\S+", re.I)


def _label(labels: pd.Series) -> str:
    # Labels may carry the seed ("r=8 seed=1"); the point's label should not.
    clean = [_SEED_IN_LABEL.sub("", str(x)).strip() for x in labels.dropna()]
    return Counter(clean).most_common(1)[0][0] if clean else "?"


def baseline_mask(trials: pd.DataFrame) -> pd.Series:
    """Trials of the no-SE baseline: tagged ``selab.baseline=true``; if no trial is tagged,
    trials whose config has ``arch.se.enabled`` false (older sweeps)."""
    if "baseline" in trials and trials["baseline"].astype(bool).any():
        return trials["baseline"].astype(bool)
    if "arch.se.enabled" in trials:
        return trials["arch.se.enabled"].map(lambda v: v is False or str(v).lower() == "false")
    return pd.Series(False, index=trials.index)


def not_finished_text(statuses: pd.Series) -> str:
    """``"1 failed, 2 stopped_early"`` for the non-finished trials, ``""`` when none."""
    counts = Counter(s for s in statuses if s != FINISHED)
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def point_summary(
    trials: pd.DataFrame,
    acc_col: str = "val_acc",
    varied: list[str] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per configuration (``point_key``), aggregating its seeds.

    Columns: ``point_key``, ``label``, ``baseline``, the varied keys, ``n_trials``, ``n``
    (finished trials that logged ``acc_col``), ``n_not_finished``, ``not_finished``,
    ``seeds``/``acc_values`` (lists, finished only), ``acc_mean``, ``acc_sd``,
    ``acc_ci_half``, ``acc_ci_low``, ``acc_ci_high``, ``top5_mean``/``top5_ci_half`` when
    ``val_top5`` exists, the cost columns (mean over trials that logged them: cost does not
    depend on training), and ``images_per_s`` (mean over finished trials).
    """
    varied = list(varied or [])
    if trials.empty:
        return pd.DataFrame(columns=["point_key", "label", "baseline", *varied, "n", "acc_mean"])
    trials = trials.copy()
    trials["baseline"] = baseline_mask(trials)
    top5_col = "best_val_top5" if acc_col == "best_val_acc" else "val_top5"
    rows: list[dict[str, Any]] = []
    for key, group in trials.groupby("point_key", sort=False):
        done = group[group["status"] == FINISHED]
        if acc_col in done:
            done = done[pd.to_numeric(done[acc_col], errors="coerce").notna()]
        acc = mean_ci(done.get(acc_col, []), level)
        row: dict[str, Any] = {
            "point_key": key,
            "label": _label(group["label"]),
            "baseline": bool(group["baseline"].any()),
            # The overrides without the seed, so "no override" means the fixed spec.
            "point": json.loads(str(key)),
        }
        for col in varied:
            vals = group[col].dropna() if col in group else pd.Series(dtype=object)
            row[col] = vals.iloc[0] if len(vals) else None
        row.update(
            n_trials=len(group),
            n=acc.n,
            n_not_finished=int((group["status"] != FINISHED).sum()),
            not_finished=not_finished_text(group["status"]),
            seeds=list(done["seed"]) if "seed" in done else [],
            acc_values=[float(v) for v in done[acc_col]] if acc_col in done else [],
            acc_mean=acc.mean,
            acc_sd=acc.sd,
            acc_ci_half=acc.half_width,
            acc_ci_low=acc.low,
            acc_ci_high=acc.high,
        )
        if top5_col in trials and top5_meaningful(trials):
            top5 = mean_ci(done.get(top5_col, []), level)
            row.update(top5_mean=top5.mean, top5_ci_half=top5.half_width, top5_n=top5.n)
        for col in COST_COLS:
            if col in group:
                row[col] = pd.to_numeric(group[col], errors="coerce").mean()
        if "images_per_s" in done:
            row["images_per_s"] = pd.to_numeric(done["images_per_s"], errors="coerce").mean()
        rows.append(row)
    return pd.DataFrame(rows)


# Top-5 accuracy says little when 5 guesses cover a large share of the classes (half of
# CIFAR-10's): like the paper, report it only for datasets with many classes.
TOP5_MIN_CLASSES = 20


def top5_meaningful(trials: pd.DataFrame) -> bool:
    """False when the trials' ``arch.num_classes`` is known and below TOP5_MIN_CLASSES."""
    if "arch.num_classes" not in trials:
        return True
    classes = pd.to_numeric(trials["arch.num_classes"], errors="coerce").dropna()
    return classes.empty or classes.min() >= TOP5_MIN_CLASSES
