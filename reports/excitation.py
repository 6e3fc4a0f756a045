"""Figures of the paper's excitation analysis (Sec. 7.2), drawn from the tables that
`selab analyze` logs to each trial's MLflow run (`excitation/per_class.csv`, `summary.csv`):

- per block, the mean excitation of every channel for each class and over all classes: close
  lines mean the block excites channels alike for every class (the paper's early blocks),
  spread lines a class-specific block (its later ones);
- per block, the spread across classes and how saturated the gate is (the paper's last stage,
  whose excitations sit near 1, scales little and costs little accuracy when removed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ALL = "all"  # the per_class rows over every image
SATURATION_BAND = 0.05  # as search_space.excitation_analysis measures it


def plot_per_class(per_class: pd.DataFrame, out: Path, title: str, max_classes: int = 10) -> Path:
    """One panel per block: mean excitation per channel, a line per class and one for all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = list(dict.fromkeys(per_class["block"]))
    fig, axes = plt.subplots(len(blocks), 1, figsize=(9.5, 2.4 * len(blocks)), squeeze=False)
    for ax, block in zip(axes[:, 0], blocks, strict=True):
        rows = per_class[per_class["block"] == block]
        shown = [c for c in dict.fromkeys(rows["class"]) if c != ALL][:max_classes]
        for name in shown:
            line = rows[rows["class"] == name]
            ax.plot(line["channel"], line["mean"], lw=0.8, alpha=0.8, label=str(name))
        overall = rows[rows["class"] == ALL]
        ax.plot(overall["channel"], overall["mean"], color="black", lw=1.8, label="all")
        ax.set_title(block, fontsize=9)
        ax.set_ylabel("mean excitation")
    axes[-1, 0].set_xlabel("channel index")
    # Beside the panels, not in one: a legend inside would hide some channels' lines.
    fig.legend(
        *axes[0, 0].get_legend_handles_labels(),
        loc="center right",
        fontsize=7,
        title="class",
        title_fontsize=7,
    )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_summary(summary: pd.DataFrame, out: Path, title: str) -> Path:
    """Class spread per block (left) and gate saturation per block (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    x = np.arange(len(summary))
    spread = left.bar(x, summary["class_spread"], color="tab:blue")
    left.bar_label(spread, fmt="%.4f", fontsize=7)
    left.set_ylabel("sd across classes of the\nper-class mean (avg over channels)")
    left.set_title("class specificity", fontsize=9)
    # Values on the bars: a share of 0 would otherwise look like a panel that failed to draw.
    for offset, col, label in (
        (-0.2, "saturated_high", "near the top of the gate"),
        (0.2, "saturated_low", "near the bottom"),
    ):
        share = summary[col]
        bars = right.bar(x + offset, share.fillna(0), width=0.4, label=label)
        right.bar_label(
            bars, labels=["n/a" if pd.isna(v) else f"{v:.3f}" for v in share], fontsize=7
        )
    right.set_ylim(0, 1.08)
    right.set_ylabel("share of excitations")
    right.set_title(
        f"saturation (within {SATURATION_BAND:.0%} of the gate's range; n/a: unbounded gate)",
        fontsize=9,
    )
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.set_xticks(x, summary["block"], rotation=30, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def analyzed_figures(tracking_uri: str, trials: pd.DataFrame, out: Path) -> dict[str, Path]:
    """The figures `selab analyze` logged to finished trials' runs, copied under `out`:
    {"r=16 seed 0: per-class mean excitations": path, ...} (empty when none was analysed)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    figures: dict[str, Path] = {}
    done = trials[trials["status"] == "finished"] if len(trials) else trials
    for row in done.itertuples():
        logged = {a.path for a in client.list_artifacts(row.run_id, "excitation")}
        for name, title in (
            ("per_class.png", "per-class mean excitations"),
            ("summary.png", "class spread and saturation"),
        ):
            if f"excitation/{name}" in logged:
                folder = out / f"{row.run_id}"
                folder.mkdir(parents=True, exist_ok=True)
                path = client.download_artifacts(row.run_id, f"excitation/{name}", str(folder))
                figures[f"{row.label} seed {row.seed}: {title}"] = Path(path)
    return figures


def summary_table(results: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """One row per analysed trial, from each trial's summary table (``summary.csv``): how
    class-specific its first and last analysed blocks are, which block is the most, and how
    saturated the last block's gate is — what `selab analyze` prints instead of a list of
    folders (the paper's reading: early blocks alike for every class, later ones specific, the
    last one saturated)."""
    rows = []
    for name, summary in results:
        if summary.empty:
            continue
        first, last = summary.iloc[0], summary.iloc[-1]
        top = summary.loc[summary["class_spread"].idxmax()]
        rows.append(
            {
                "trial": name,
                "blocks": len(summary),
                "class spread, first block": f"{first['class_spread']:.4f} ({first['block']})",
                "class spread, last block": f"{last['class_spread']:.4f} ({last['block']})",
                "most class-specific": str(top["block"]),
                "last block near the top of the gate": _share(last.get("saturated_high")),
            }
        )
    return pd.DataFrame(rows)


def _share(value: object) -> str:
    return "n/a (unbounded gate)" if value is None or pd.isna(value) else f"{float(value):.1%}"
