"""Does the cheap run predict the full one? Per-epoch validation accuracy against the final one,
across configurations.

For every epoch e, the rank correlation (Spearman's rho and Kendall's tau, scipy) between each
configuration's mean accuracy at epoch e and its final mean accuracy, over the configurations
whose finished seeds logged every epoch. A correlation near 1 at an early epoch says that
ranking configurations after e epochs (ASHA's rungs, a short-schedule ablation) picks the same
ones as the full schedule on this task; its 95% interval says how sure that is with this many
configurations (Fisher's z with Bonett and Wright's standard error for rho, Fieller's for tau).

Where ASHA stopped trials, each stopped trial is set against the finished trials at the epoch
it stopped: it "could have reached the top k" when, at that epoch, it was ahead of at least
one trial that went on to finish in the top k; otherwise every eventual top-k trial was already
ahead of it. That is all the data can tell: a stopped trial's final accuracy was never measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import metrics as m
from .frame import FINISHED, _histories

MIN_CONFIGS = 5  # Kendall's interval needs n > 4, and fewer points say little about a ranking
LEVEL = 0.95
TOP_K = 3
AGREES = 0.8  # the lower end of rho's interval from which an early ranking is called reliable


@dataclass
class EarlyVsFinal:
    """Per-epoch rank correlations (``table``) and the ASHA check, or why there is none."""

    table: pd.DataFrame  # epoch, configurations, spearman, spearman_low/high, kendall, ...
    final_epoch: int
    configurations: int
    stopped: pd.DataFrame  # one row per stopped trial: label, epoch, acc, could_reach_top_k
    top_k: int
    reason: str = ""

    @property
    def available(self) -> bool:
        return not self.reason

    def summary(self) -> str:
        if not self.available:
            return f"Early vs final epoch: not computed ({self.reason})."
        good = self.table[self.table["spearman_low"] >= AGREES]
        if len(good):
            row = good.iloc[0]
            first = (
                f"the ranking after epoch {int(row['epoch'])} of {self.final_epoch} agrees "
                f"with the final one (Spearman's rho {row['spearman']:.2f} "
                f"[{row['spearman_low']:.2f}, {row['spearman_high']:.2f}], above "
                f"{AGREES})"
            )
        else:
            row = self.table.loc[self.table["spearman"].fillna(-2).idxmax()]
            first = (
                f"at no epoch before the last ({self.final_epoch}) is the ranking shown to "
                f"agree with the final one (no 95% interval of Spearman's rho above "
                f"{AGREES}; the closest, epoch {int(row['epoch'])}: "
                f"{row['spearman']:.2f} [{row['spearman_low']:.2f}, "
                f"{row['spearman_high']:.2f}])"
            )
        text = f"Early vs final epoch, over {self.configurations} configurations: {first}."
        if len(self.stopped):
            could = int(self.stopped["could_reach_top_k"].sum())
            text += (
                f" ASHA stopped {len(self.stopped)} trials: when stopped, {could} of "
                f"them were ahead of a trial that went on to finish in the top "
                f"{self.top_k} (those could have reached it); the other "
                f"{len(self.stopped) - could} were behind every eventual top-{self.top_k} "
                "trial."
            )
        return text


def epoch_histories(client: Any, trials: pd.DataFrame, key: str = m.VAL_ACC) -> pd.DataFrame:
    """Long frame run_id, epoch, value: every logged epoch of ``key`` of every trial."""
    if trials.empty:
        return pd.DataFrame(columns=["run_id", "epoch", "value"])
    found = _histories(client, list(trials["run_id"]), key)
    rows = [
        (run_id, int(h.step), float(h.value))
        for run_id, hist in found.items()
        for h in hist
        if math.isfinite(h.value)
    ]
    out = pd.DataFrame(rows, columns=["run_id", "epoch", "value"])
    return out.drop_duplicates(["run_id", "epoch"], keep="last")


def rank_interval(r: float, n: int, kind: str, level: float = LEVEL) -> tuple[float, float]:
    """Fisher-z interval of a rank correlation: Bonett-Wright (Spearman) or Fieller (Kendall)
    standard errors; NaN when n is too small."""
    if not math.isfinite(r) or n < (4 if kind == "spearman" else 5):
        return math.nan, math.nan
    se = math.sqrt((1 + r * r / 2) / (n - 3)) if kind == "spearman" else math.sqrt(0.437 / (n - 4))
    z = math.atanh(max(min(r, 0.999999), -0.999999))
    q = sps.norm.ppf((1 + level) / 2)
    return math.tanh(z - q * se), math.tanh(z + q * se)


def _per_config(curves: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """(configuration x epoch) mean accuracy over finished seeds that logged every epoch."""
    done = trials[trials["status"] == FINISHED][["run_id", "point_key", "label"]]
    data = curves.merge(done, on="run_id")
    if data.empty:
        return pd.DataFrame()
    last = int(data["epoch"].max())
    complete = data.groupby("run_id")["epoch"].nunique() == last
    data = data[data["run_id"].isin(complete[complete].index)]
    return data.pivot_table(index="label", columns="epoch", values="value", aggfunc="mean")


def _correlations(table: pd.DataFrame) -> pd.DataFrame:
    final = table.columns.max()
    rows = []
    for epoch in table.columns[table.columns < final]:  # the last against itself is 1
        x, y = table[epoch].to_numpy(), table[final].to_numpy()
        rho = float(sps.spearmanr(x, y).statistic) if np.ptp(x) > 0 else math.nan
        tau = float(sps.kendalltau(x, y).statistic) if np.ptp(x) > 0 else math.nan
        s_low, s_high = rank_interval(rho, len(x), "spearman")
        k_low, k_high = rank_interval(tau, len(x), "kendall")
        rows.append(
            {
                "epoch": int(epoch),
                "configurations": len(x),
                "spearman": rho,
                "spearman_low": s_low,
                "spearman_high": s_high,
                "kendall": tau,
                "kendall_low": k_low,
                "kendall_high": k_high,
            }
        )
    return pd.DataFrame(rows)


def stopped_check(curves: pd.DataFrame, trials: pd.DataFrame, top_k: int = TOP_K) -> pd.DataFrame:
    """Each stopped trial against the finished ones at the epoch it stopped (see module)."""
    by_run = curves.pivot_table(index="run_id", columns="epoch", values="value")
    done = trials[trials["status"] == FINISHED]
    finals = {r: by_run.loc[r].dropna().iloc[-1] for r in done["run_id"] if r in by_run.index}
    top = sorted(finals, key=finals.get, reverse=True)[:top_k]
    rows = []
    for _, trial in trials[trials["status"] == "stopped_early"].iterrows():
        if trial["run_id"] not in by_run.index:
            continue
        history = by_run.loc[trial["run_id"]].dropna()
        epoch, acc = int(history.index.max()), float(history.iloc[-1])
        rivals = [
            by_run.loc[r, epoch]
            for r in top
            if epoch in by_run.columns and math.isfinite(by_run.loc[r, epoch])
        ]
        rows.append(
            {
                "label": trial["label"],
                "seed": trial.get("seed"),
                "epoch": epoch,
                "acc": acc,
                "could_reach_top_k": bool(rivals) and acc > min(rivals),
            }
        )
    return pd.DataFrame(rows, columns=["label", "seed", "epoch", "acc", "could_reach_top_k"])


def early_vs_final(curves: pd.DataFrame, trials: pd.DataFrame, top_k: int = TOP_K) -> EarlyVsFinal:
    """The per-epoch rank correlations and the ASHA check (see the module)."""
    table = _per_config(curves, trials)
    stopped = stopped_check(curves, trials, top_k) if len(curves) else pd.DataFrame()
    empty = pd.DataFrame(columns=["epoch", "configurations", "spearman"])
    if table.empty or table.shape[1] < 2:
        return EarlyVsFinal(
            empty, 0, 0, stopped, top_k, "no finished trial logged more than one epoch"
        )
    if len(table) < MIN_CONFIGS:
        return EarlyVsFinal(
            empty,
            int(table.columns.max()),
            len(table),
            stopped,
            top_k,
            f"{len(table)} configurations finished every epoch, at least "
            f"{MIN_CONFIGS} needed to judge a ranking",
        )
    return EarlyVsFinal(_correlations(table), int(table.columns.max()), len(table), stopped, top_k)
