"""The cost side of a report: which cost the fronts and the pick use, and FLOPs against
measured time, in total and per stage.

A trial logs its fvcore FLOPs and parameters and, unless its spec turned `timing` off, the time
its network takes on the trial's device beside the plain network of the same shape
(search_space.timing; names holding `latency` or `throughput`, docs/mlflow-schema.md). Time is
measured once per architecture and worker process, so a configuration's trials carry one or a
few measurements: a report takes their median.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# `selab report --cost`: the choice, the column it reads.
COSTS = {
    "flops": "flops",
    "params": "params",
    "latency": "latency_b1_ms",
    "latency_ratio": "latency_ratio_b1",
}
DEFAULT_COST = "flops"
_LATENCY = re.compile(r"^latency_b(\d+)_ms$")
_STAGE = re.compile(r"^stage(\d+)\.latency_ms$")


def is_measured(column: str) -> bool:
    """A measured-time column (search_space.timing's metric names)."""
    name = column.rsplit(".", 1)[-1]
    return "latency" in name or "throughput" in name


def measured_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if is_measured(str(c))]


def cost_column(choice: str, points: pd.DataFrame) -> tuple[str, str | None]:
    """The column `--cost choice` reads, and a note when it falls back to FLOPs because no trial
    of the sweep measured it (timing turned off, or a sweep from before selab measured time)."""
    if choice not in COSTS:
        raise ValueError(f"cost: {choice!r} is not one of {', '.join(COSTS)}")
    column = COSTS[choice]
    if column in points and pd.to_numeric(points[column], errors="coerce").notna().any():
        return column, None
    return COSTS[DEFAULT_COST], (
        f"Cost: no trial of this sweep logged {column} (its spec's timing.enabled was false, "
        f"or it ran before selab measured time), so every cost here is FLOPs."
    )


def axis_label(column: str, values: list[float]) -> tuple[float, str]:
    """Divisor and axis label for a cost column (FLOPs and params scaled to k/M/G)."""
    from .units import scale_for

    if batch := _LATENCY.match(column):
        return 1.0, (
            f"latency at batch {batch.group(1)} (ms per forward, median over paired "
            "rounds, this sweep's devices)"
        )
    if column.startswith("latency_ratio_b"):
        batch = column.removeprefix("latency_ratio_b")
        return 1.0, (f"latency / the plain network's, batch {batch} (median of per-round ratios)")
    div, prefix = scale_for(values)
    if column == "flops":
        return div, f"FLOPs per image ({prefix}FLOPs, multiply-add = 1)"
    if column == "params":
        return div, f"parameters ({prefix})" if prefix else "parameters (count)"
    return div, column


def cost_name(column: str) -> str:
    """Short name of a cost column for titles: FLOPs, parameters, latency, latency ratio."""
    if _LATENCY.match(column):
        return "latency"
    if column.startswith("latency_ratio"):
        return "latency ratio"
    return {"flops": "FLOPs", "params": "parameters"}.get(column, column)


def deploy_batch(columns: list[str]) -> int | None:
    """The deployment batch the trials measured: the largest latency batch size logged."""
    sizes = [int(m.group(1)) for c in columns if (m := _LATENCY.match(str(c)))]
    return max(sizes) if sizes else None


def _per_config(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: the median of every numeric cost column over its trials
    (cost does not depend on training: every trial that logged it counts)."""
    cost_cols = [
        c
        for c in trials.columns
        if is_measured(str(c))
        or str(c) in ("flops", "params", "se_flops", "se_params")
        or re.match(r"^stage\d+\.", str(c))
    ]
    numeric = trials[["point_key", *cost_cols]].copy()
    for c in cost_cols:
        numeric[c] = pd.to_numeric(numeric[c], errors="coerce")
    out = numeric.groupby("point_key", sort=False).median()
    first = trials.groupby("point_key", sort=False)
    out["label"] = first["label"].first()
    out["baseline"] = first["baseline"].any() if "baseline" in trials else False
    latency = "latency_b1_ms"
    out["measured"] = first[latency].count() if latency in trials else 0
    return out


def _pct(part: float, whole: float) -> float:
    return 100 * part / whole if whole and math.isfinite(whole) and whole > 0 else math.nan


def flops_vs_time(trials: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: what it adds over the plain network in FLOPs, and in time measured
    (latency at batch 1 and the deployment batch, training throughput), with the noise floor."""
    if trials.empty or "latency_b1_ms" not in trials:
        return pd.DataFrame()
    batch = deploy_batch(list(trials.columns))
    rows = []
    for key, r in _per_config(trials).iterrows():
        row = {
            "point_key": key,
            "configuration": r["label"],
            "baseline": bool(r["baseline"]),
            "trials measured": int(r["measured"]),
            "FLOPs": r.get("flops", math.nan),
            "FLOPs +% over plain": _pct(
                r.get("se_flops", 0.0), r.get("flops", math.nan) - r.get("se_flops", 0.0)
            ),
        }
        for b in sorted({1, batch or 1}):
            row[f"latency b{b} ms"] = r.get(f"latency_b{b}_ms", math.nan)
            row[f"latency b{b} +% over plain"] = 100 * (r.get(f"latency_ratio_b{b}", math.nan) - 1)
            row[f"noise floor b{b} %"] = 100 * r.get(f"latency_noise_b{b}", math.nan)
        if "throughput_train_img_s" in r:
            row["training img/s"] = r["throughput_train_img_s"]
            row["training throughput % vs plain"] = 100 * (r["throughput_train_ratio"] - 1)
        rows.append(row)
    return pd.DataFrame(rows).sort_values("FLOPs", kind="stable").reset_index(drop=True)


def stage_shares(trials: pd.DataFrame) -> pd.DataFrame:
    """Per SE configuration and stage: the stage's share of the network's FLOPs and of its
    time (deployment batch), what SE adds to the stage in FLOPs and in time (% of the plain
    stage's), and the stage's share of all that SE adds in FLOPs and in time."""
    stages = sorted({int(m.group(1)) for c in trials.columns if (m := _STAGE.match(str(c)))})
    if not stages:
        return pd.DataFrame()
    rows = []
    for key, r in _per_config(trials).iterrows():
        if r["baseline"] or not r.get("se_flops", 0) > 0:
            continue
        total_time = sum(r.get(f"stage{s}.latency_ms", math.nan) for s in stages)
        se_time = sum(r.get(f"stage{s}.se_latency_ms", math.nan) for s in stages)
        for s in stages:
            flops, se_flops = r.get(f"stage{s}.flops", math.nan), r.get(f"stage{s}.se_flops", 0)
            ms, se_ms = (
                r.get(f"stage{s}.latency_ms", math.nan),
                r.get(f"stage{s}.se_latency_ms", math.nan),
            )
            rows.append(
                {
                    "point_key": key,
                    "configuration": r["label"],
                    "stage": s,
                    "FLOPs share %": _pct(flops, r.get("flops", math.nan)),
                    "time share %": _pct(ms, total_time),
                    "SE +FLOPs % of stage": _pct(se_flops, flops - se_flops),
                    "SE +time % of stage": _pct(se_ms, ms - se_ms),
                    "share of SE's FLOPs %": _pct(se_flops, r.get("se_flops", math.nan)),
                    "share of SE's time %": _pct(se_ms, se_time) if se_time > 0 else math.nan,
                }
            )
    return pd.DataFrame(rows)


STAGE_NOTE = (
    "Per stage, at the deployment batch: the stage's share of the network's FLOPs and of the "
    "time its stages take; what SE adds to the stage, in FLOPs and in time, as a percentage of "
    "the plain stage's; and the stage's share of everything SE adds. Times: forward hooks on "
    "each stage, SE network against the plain network of the same shape in alternating rounds, "
    "median over rounds, then over the configuration's trials; a share of SE's time is shown "
    "only when SE's total added time is positive."
)
TIME_NOTE = (
    "Latency: one forward pass, eval mode, no autograd, on the trial's device in its dtype and "
    "memory format, inputs already on the device (no data loading); training: forward, "
    "backward and an SGD step at the training batch size. Each trial's figure is the median "
    "over rounds in which the plain network of the same shape ran before and after the "
    "network; '+% over plain' is the median of the per-round ratios, so load that drifts "
    "during a measurement hits both sides. Noise floor: how far the ratio of a round's two "
    "plain timings is from 1 (median over rounds): a '+%' within it is not told apart from 0. "
    "Values are medians over the configuration's trials (each worker process measures an "
    "architecture once)."
)


@dataclass
class CostView:
    """The report's cost section: FLOPs vs time per configuration, and per stage."""

    totals: pd.DataFrame = field(default_factory=pd.DataFrame)
    stages: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def available(self) -> bool:
        return not self.totals.empty


def cost_view(trials: pd.DataFrame) -> CostView:
    return CostView(flops_vs_time(trials), stage_shares(trials))


def write_cost_tables(view: CostView, out: Path) -> list[Path]:
    files = []
    for name, table in (("flops_vs_time.csv", view.totals), ("stage_time_shares.csv", view.stages)):
        if not table.empty:
            table.drop(columns=["point_key"]).to_csv(out / name, index=False)
            files.append(out / name)
    return files


def display(table: pd.DataFrame) -> pd.DataFrame:
    """The table as text cells: percentages to one decimal, times to three significant
    digits, FLOPs as counts."""
    out = table.drop(columns=[c for c in ("point_key", "baseline") if c in table]).copy()
    for c in out.columns:
        if c in ("configuration", "stage", "trials measured"):
            continue
        if c == "FLOPs":
            form = "{:,.0f}"
        elif "%" in c:
            form = "{:+.1f}" if "+" in c or "vs plain" in c else "{:.1f}"
        else:
            form = "{:.3g}"
        out[c] = out[c].map(lambda v, form=form: "—" if pd.isna(v) else form.format(v))
    return out
