"""Figures of what a sweep says about its own search: which knob mattered (parameter
importance with its bootstrap interval) and whether early epochs rank configurations as the
last one does (rank correlation per epoch with its 95% interval)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from .curves import AGREES, EarlyVsFinal
from .importance import Importance
from .plots import _figure, _save

COLORS = {"PED-ANOVA": "#1f77b4", "fANOVA": "#ff7f0e", "spearman": "#1f77b4", "kendall": "#2ca02c"}


def plot_importance(imp: Importance, path: Path, title: str = "") -> Path | None:
    """Horizontal bars per knob, one per evaluator, with the 95% bootstrap interval."""
    if not imp.available or imp.table.empty:
        return None
    knobs = list(imp.table.groupby("knob")["importance"].mean().sort_values().index)
    evaluators = list(dict.fromkeys(imp.table["evaluator"]))
    fig, _ = _figure(8.0, 0.55 * len(knobs) + 1.6)
    ax = fig.add_subplot()
    height = 0.8 / len(evaluators)
    for i, name in enumerate(evaluators):
        rows = imp.table[imp.table["evaluator"] == name].set_index("knob").reindex(knobs)
        y = np.arange(len(knobs)) + (i - (len(evaluators) - 1) / 2) * height
        err = np.vstack([rows["importance"] - rows["low"], rows["high"] - rows["importance"]])
        ax.barh(
            y,
            rows["importance"],
            height,
            xerr=np.clip(err, 0, None),
            capsize=2,
            color=COLORS.get(name),
            label=f"{name} (2.5-97.5% over resamples)",
        )
    ax.set_yticks(np.arange(len(knobs)), knobs)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of the variation in {imp.metric} (sums to 1 per evaluator)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8.5)
    ax.set_title(
        title or f"Which knob mattered ({imp.trials} finished trials, {imp.resamples} resamples)",
        fontsize=11,
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_rank_correlation(early: EarlyVsFinal, path: Path, title: str = "") -> Path | None:
    """Spearman's rho and Kendall's tau between each epoch and the last, with 95% intervals."""
    if not early.available or early.table.empty:
        return None
    t = early.table
    fig, _ = _figure(8.0, 4.4)
    ax = fig.add_subplot()
    for kind, name in (("spearman", "Spearman's rho"), ("kendall", "Kendall's tau")):
        ax.plot(t["epoch"], t[kind], "-o", ms=4, color=COLORS[kind], label=name)
        ax.fill_between(
            t["epoch"],
            t[f"{kind}_low"],
            t[f"{kind}_high"],
            color=COLORS[kind],
            alpha=0.15,
            label=f"{name}, 95% interval",
        )
    ax.axhline(AGREES, color="0.4", ls="--", lw=1, label=f"{AGREES}: an early ranking to rely on")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"epoch (of {early.final_epoch})")
    ax.set_ylabel("rank correlation with the final epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)
    ax.set_title(
        title
        or f"Does an early epoch rank the {early.configurations} configurations "
        "as the last one does?",
        fontsize=11,
    )
    fig.tight_layout()
    return _save(fig, path)


def importance_display(imp: Importance) -> pd.DataFrame:
    """The importance table as the report shows it."""
    t = imp.table
    return pd.DataFrame(
        {
            "knob": t["knob"],
            "evaluator": t["evaluator"],
            "importance (2.5-97.5% over resamples)": [
                f"{v:.2f} ({lo:.2f}-{hi:.2f})"
                for v, lo, hi in zip(t["importance"], t["low"], t["high"], strict=True)
            ],
            "ranked first in": t["top_share"].map(lambda v: f"{v:.0%} of resamples"),
        }
    )


def correlation_display(early: EarlyVsFinal) -> pd.DataFrame:
    """The per-epoch correlations as the report shows them."""
    t = early.table

    def cell(kind: str) -> list[str]:
        return [
            ("—" if pd.isna(v) else f"{v:.2f} [{lo:.2f}, {hi:.2f}]")
            for v, lo, hi in zip(t[kind], t[f"{kind}_low"], t[f"{kind}_high"], strict=True)
        ]

    return pd.DataFrame(
        {
            "epoch": t["epoch"],
            "configurations": t["configurations"],
            "Spearman rho [95%]": cell("spearman"),
            "Kendall tau [95%]": cell("kendall"),
        }
    )
