"""PNG figures of a sweep (matplotlib, Agg, no pyplot global state).

Every figure shows means of FINISHED trials with 95% t-interval error bars, names its units on
the axes, and keeps the legend outside the data.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox, offset_copy

from .cost import axis_label, cost_name, stage_shares
from .frame import FINISHED
from .metrics import SPLIT
from .pareto import pareto_front
from .stats import diff_ci
from .units import human, scale_for

FRONT_COLOR = "#d62728"
POINT_COLOR = "#1f77b4"
BASE_COLOR = "black"
DPI = 130
INTERVAL_NOTE = (
    "Points: means over finished seeds; bars: 95% t-interval, as in the tables "
    "(clipped to 0-100%, none with 1 seed)."
)


def _figure(width: float = 8.5, height: float = 5.2) -> tuple[Figure, FigureCanvasAgg]:
    fig = Figure(figsize=(width, height), dpi=DPI)
    return fig, FigureCanvasAgg(fig)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", facecolor="white")
    return path


def _cost_axis(cost_col: str, values: list[float]) -> tuple[float, str]:
    return axis_label(cost_col, values)


# Where place_labels tries a label, in points from its marker, nearest first.
# fmt: off
_LABEL_OFFSETS = [(7, 6), (7, -14), (-7, 6), (-7, -14), (7, 20), (-7, 20), (7, -28), (-7, -28),
                  (22, 34), (-22, 34), (22, -42), (-22, -42), (30, 0), (-30, 0), (10, 50),
                  (-10, 50), (10, -56), (-10, -56)]
# fmt: on
_LABEL_STYLE = {
    "fontsize": 8.5,
    "textcoords": "offset points",
    "va": "bottom",
    "bbox": {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
}


def place_labels(
    fig: Figure,
    canvas: FigureCanvasAgg,
    ax: Any,
    xs: list[float],
    ys: list[float],
    texts: list[str],
    colors: list[str] | None = None,
    shifts_pt: list[float] | None = None,
) -> list[Any]:
    """Annotate points without overlaps: try a ring of offsets, keep the first free one.

    A simple greedy placement (no extra dependency); each label avoids earlier labels, every
    marker, and the axes' edges, and gets a thin leader line when pushed away from its point.
    ``shifts_pt`` are sideways marker shifts (in points) applied when plotting.
    """
    renderer = canvas.get_renderer()
    ax_box = ax.get_window_extent(renderer)
    shifts = list(shifts_pt or [0.0] * len(xs))
    colors = list(colors or ["black"] * len(xs))
    px_per_pt = fig.dpi / 72.0
    marker_px = ax.transData.transform(np.column_stack([xs, ys])) if xs else np.zeros((0, 2))
    markers = [
        Bbox.from_extents(x + s * px_per_pt - 5, y - 5, x + s * px_per_pt + 5, y + 5)
        for (x, y), s in zip(marker_px, shifts, strict=True)
    ]
    placed: list[Bbox] = []
    annotations = []
    for i, (x, y, text) in enumerate(zip(xs, ys, texts, strict=True)):
        others = [m for j, m in enumerate(markers) if j != i]
        chosen = _LABEL_OFFSETS[0]
        for dx, dy in _LABEL_OFFSETS:
            ann = ax.annotate(
                text,
                (x, y),
                xytext=(dx + shifts[i], dy),
                color=colors[i],
                ha="left" if dx >= 0 else "right",
                **_LABEL_STYLE,
            )
            box = ann.get_window_extent(renderer).expanded(1.05, 1.1)
            ann.remove()
            inside = ax_box.contains(box.x0, box.y0) and ax_box.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(b) for b in placed + others):
                chosen = (dx, dy)
                break
        dx, dy = chosen  # when every spot is taken the first one is used: still readable
        far = abs(dy) > 15 or abs(dx) > 15
        ann = ax.annotate(
            text,
            (x, y),
            xytext=(dx + shifts[i], dy),
            color=colors[i],
            ha="left" if dx >= 0 else "right",
            # A thin leader line when the label had to move away from its point.
            arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6, "shrinkA": 0, "shrinkB": 4}
            if far
            else None,
            **_LABEL_STYLE,
        )
        placed.append(ann.get_window_extent(renderer).expanded(1.05, 1.1))
        annotations.append(ann)
    return annotations


def _not_finished_note(trials: pd.DataFrame) -> str:
    bad = trials[trials["status"] != FINISHED] if "status" in trials else trials.iloc[:0]
    if bad.empty:
        return ""
    counts = bad["status"].value_counts()
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"Not shown (not finished): {parts}."


def _dodge(x: np.ndarray, step_pt: float = 8.0) -> np.ndarray:
    """Sideways shifts (points) for markers at (nearly) the same cost, so that configurations
    with equal cost (gate, squeeze, placement ablations) do not hide each other."""
    shifts = np.zeros(x.size)
    if x.size < 2:
        return shifts
    span = float(np.nanmax(x) - np.nanmin(x)) or max(abs(float(np.nanmax(x))), 1.0)
    order = np.argsort(x, kind="stable")
    groups: list[list[int]] = [[int(order[0])]]
    for i in order[1:]:
        if abs(x[i] - x[groups[-1][0]]) <= 0.004 * span:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    for g in groups:
        for k, i in enumerate(g):
            shifts[i] = (k - (len(g) - 1) / 2) * step_pt
    return shifts


def _marker_style(pt: pd.Series, front_pt: bool) -> tuple[str, str, str, int]:
    if pt["baseline"]:
        return "no-SE baseline", "s", BASE_COLOR, 7
    if front_pt:
        return "mean, 95% CI, on the Pareto front", "o", FRONT_COLOR, 6
    return "mean, 95% CI, dominated", "o", POINT_COLOR, 6


def _draw_points(
    fig: Figure,
    ax: Any,
    pts: pd.DataFrame,
    done: pd.DataFrame,
    cost_col: str,
    acc_col: str,
    div: float,
    shifts: np.ndarray,
    on_front: set,
) -> None:
    """Single finished trials in grey, then each configuration's mean with its interval."""
    xs = (pts[cost_col] / div).to_numpy(dtype=float)
    yerr = interval_yerr(pts)
    seen: set[str] = set()
    for i, pt in pts.iterrows():
        shifted = offset_copy(ax.transData, fig=fig, x=shifts[i], y=0, units="points")
        if cost_col in done and acc_col in done and "point_key" in done:
            mine = done[done["point_key"] == pt["point_key"]]
            name = "single trial (finished)"
            ax.scatter(
                mine[cost_col] / div,
                100 * mine[acc_col],
                s=12,
                color="0.65",
                zorder=1,
                transform=shifted,
                label=None if name in seen else name,
            )
            seen.add(name)
        front_pt = pt["point_key"] in on_front
        name, fmt, color, ms = _marker_style(pt, front_pt)
        ax.errorbar(
            [xs[i]],
            [100 * pt["acc_mean"]],
            yerr=yerr[:, i : i + 1],
            fmt=fmt,
            color=color,
            ms=ms,
            capsize=3,
            lw=1.2,
            zorder=3,
            transform=shifted,
            label=None if name in seen else name,
            mfc=FRONT_COLOR if front_pt else color,
        )
        seen.add(name)


def _label_front(
    fig: Figure,
    canvas: FigureCanvasAgg,
    ax: Any,
    pts: pd.DataFrame,
    front: pd.DataFrame,
    xs: np.ndarray,
    ys: np.ndarray,
    shifts: np.ndarray,
    label_all_below: int,
) -> None:
    on_front = set(front["point_key"])
    ties = set(front.loc[front["pareto_tie"], "point_key"])
    show = [
        i
        for i in range(len(pts))
        if pts.loc[i, "point_key"] in on_front or len(pts) < label_all_below
    ]
    # Front labels first so that they get the best spots.
    show.sort(key=lambda i: pts.loc[i, "point_key"] not in on_front)
    labels = [
        f"{pts.loc[i, 'label']} (tie)"
        if pts.loc[i, "point_key"] in ties
        else str(pts.loc[i, "label"])
        for i in show
    ]
    colors = ["#8b0000" if pts.loc[i, "point_key"] in on_front else "#1f3f6f" for i in show]
    place_labels(
        fig,
        canvas,
        ax,
        [xs[i] for i in show],
        [ys[i] for i in show],
        labels,
        colors,
        [shifts[i] for i in show],
    )


def plot_pareto(
    points: pd.DataFrame,
    trials: pd.DataFrame,
    cost_col: str,
    path: Path,
    title: str = "",
    acc_col: str = "val_acc",
    label_all_below: int = 12,
) -> Path | None:
    """Accuracy (%) vs ``cost_col`` with the Pareto front over per-point means, labelled.

    Front points are always labelled; the others too while there are fewer than
    ``label_all_below`` configurations (a long TPE search would turn into a wall of text).
    """
    pts = points[(points["n"] > 0) & points["acc_mean"].notna()]
    if cost_col not in pts or pts[cost_col].notna().sum() == 0:
        return None
    pts = pts[pts[cost_col].notna()].reset_index(drop=True)
    div, xlabel = _cost_axis(cost_col, list(pts[cost_col]))
    front = pareto_front(pts, "acc_mean", cost_col)
    xs = (pts[cost_col] / div).to_numpy(dtype=float)
    ys = (100 * pts["acc_mean"]).to_numpy(dtype=float)
    shifts = _dodge(xs)
    done = trials[trials["status"] == FINISHED] if "status" in trials else trials

    fig, canvas = _figure()
    ax = fig.add_subplot()
    if len(front):
        ax.step(
            list(front[cost_col] / div),
            list(100 * front["acc_mean"]),
            where="post",
            color=FRONT_COLOR,
            lw=1.5,
            alpha=0.6,
            zorder=2,
            label="Pareto front (max accuracy, min cost)",
        )
    _draw_points(fig, ax, pts, done, cost_col, acc_col, div, shifts, set(front["point_key"]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{acc_col} (%, {SPLIT.get(acc_col, 'validation')} split)")
    ax.grid(True, alpha=0.3)
    # Artists drawn with a sideways shift are left out of autoscaling: set the limits from the
    # means, their intervals and the single trials, with room for labels.
    singles = (
        100 * pd.to_numeric(done[acc_col], errors="coerce").dropna()
        if (acc_col in done and "point_key" in done)
        else pd.Series(dtype=float)
    )
    bars = interval_yerr(pts)
    # A measured cost (latency) differs from trial to trial: their x counts too.
    single_x = (
        pd.to_numeric(done[cost_col], errors="coerce").dropna() / div
        if (cost_col in done and "point_key" in done)
        else pd.Series(dtype=float)
    )
    _set_limits(
        ax, [*xs, *single_x], [*(ys - bars[0]), *(ys + bars[1]), *singles], x_pad=0.12, y_pad=0.15
    )
    ax.set_title(title or f"Accuracy vs {cost_name(cost_col)}", fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)
    notes = [INTERVAL_NOTE]
    if (shifts != 0).any():
        notes.append("Configurations of equal cost are drawn side by side.")
    if nf := _not_finished_note(trials):
        notes.append(nf)
    fig.text(0.01, -0.02, "\n".join(notes), fontsize=8, color="0.35", ha="left", va="top")
    fig.tight_layout()
    _label_front(fig, canvas, ax, pts, front, xs, ys, shifts, label_all_below)
    return _save(fig, path)


def _set_limits(ax: Any, xs: Any, ys: Any, x_pad: float, y_pad: float) -> None:
    """Axis limits around the data with a margin of `pad` times the span on each side."""
    for values, pad, setter in ((xs, x_pad, ax.set_xlim), (ys, y_pad, ax.set_ylim)):
        finite = [float(v) for v in values if np.isfinite(v)]
        if not finite:
            continue
        lo, hi = min(finite), max(finite)
        margin = pad * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 0.5)
        setter(lo - margin, hi + margin)


def interval_yerr(pts: pd.DataFrame, prefix: str = "acc") -> np.ndarray:
    """Asymmetric error bars in % from the interval the tables print (clipped to [0, 1]);
    none for a configuration with one seed."""
    mean = 100 * pts[f"{prefix}_mean"].to_numpy(dtype=float)
    low = 100 * pts[f"{prefix}_ci_low"].to_numpy(dtype=float)
    high = 100 * pts[f"{prefix}_ci_high"].to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)


def _r_position(values: list[Any]) -> tuple[dict[str, float], bool]:
    """x positions for r values: log2 when all are numbers, else categorical."""
    nums = {}
    for v in values:
        try:
            nums[str(v)] = float(v)
        except (TypeError, ValueError):
            break
    else:
        if all(x > 0 for x in nums.values()):
            return {k: math.log2(x) for k, x in nums.items()}, True
    ordered = sorted(
        {str(v) for v in values},
        key=lambda s: [float(p) for p in re.findall(r"[0-9.]+", s)] or [math.inf],
    )
    return {k: float(i) for i, k in enumerate(ordered)}, False


def _baseline_band(ax: Any, points: pd.DataFrame) -> None:
    base = points[points["baseline"] & (points["n"] > 0)]
    if len(base):
        b = base.iloc[0]
        ax.axhline(
            100 * b["acc_mean"], color=BASE_COLOR, ls="--", lw=1.2, label="no-SE baseline, 95% CI"
        )
        if pd.notna(b["acc_ci_half"]):
            ax.axhspan(100 * b["acc_ci_low"], 100 * b["acc_ci_high"], color="0.5", alpha=0.15)


def plot_acc_vs_r(points: pd.DataFrame, path: Path, title: str = "") -> Path | None:
    """Accuracy (%) vs reduction r with 95% CI bars, one line per backbone/placement."""
    axis = "arch.se.reduction"
    if axis not in points:
        return None
    pts = points[(points["n"] > 0) & ~points["baseline"] & points[axis].notna()]
    if pts[axis].astype(str).nunique() < 2:
        return None
    group_cols = [
        c
        for c in ("arch.backbone", "arch.depth", "arch.se.placement")
        if c in pts and pts[c].astype(str).nunique() > 1
    ]
    pos, is_log = _r_position(list(pts[axis]))
    fig, _ = _figure(8.0, 4.8)
    ax = fig.add_subplot()
    groups = list(pts.groupby(group_cols, sort=True)) if group_cols else [((), pts)]
    width = 0.08 * (len(groups) - 1)
    for gi, (key, grp) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{c.split('.')[-1]}={v}" for c, v in zip(group_cols, key, strict=True))
        grp = grp.assign(_x=grp[axis].astype(str).map(pos)).sort_values("_x")
        # Dodge lines sideways so that error bars of different groups do not overlap.
        dodge = (gi - (len(groups) - 1) / 2) * (width / max(len(groups) - 1, 1))
        x = grp["_x"] + dodge
        y = 100 * grp["acc_mean"]
        ax.errorbar(
            x,
            y,
            yerr=interval_yerr(grp),
            fmt="-o",
            capsize=3,
            ms=5,
            lw=1.4,
            label=name or "mean, 95% CI",
        )
        single = grp["n"] < 2
        if single.any():
            ax.scatter(
                x[single],
                y[single],
                s=60,
                facecolors="white",
                edgecolors="0.3",
                zorder=4,
                label="1 seed (no CI)" if gi == 0 else None,
            )
    _baseline_band(ax, points)
    ticks = sorted(pos.items(), key=lambda kv: kv[1])
    ax.set_xticks([v for _, v in ticks], [k for k, _ in ticks])
    ax.set_xlabel(
        "SE reduction ratio r (channels / bottleneck width)" + (", log scale" if is_log else "")
    )
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.08, y=0.15)
    ax.set_title(title or "Accuracy vs reduction ratio r", fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)
    note = INTERVAL_NOTE
    missing = points[(points["n"] == 0) & ~points["baseline"]]
    if len(missing):
        note += " No finished trial yet: " + ", ".join(map(str, missing["label"])) + "."
    fig.text(0.01, -0.02, note, fontsize=8, color="0.35", ha="left", va="top")
    fig.tight_layout()
    return _save(fig, path)


def _stage_numbers(columns: list[str], what: str) -> list[int]:
    nums = set()
    for c in columns:
        m = re.fullmatch(rf"stage(\d+)\.{what}", c)
        if m:
            nums.add(int(m.group(1)))
    return sorted(nums)


def _gain_panel(ax: Any, points: pd.DataFrame) -> None:
    """Accuracy gain of each configuration over no SE (95% CI of the difference), with what
    the gain costs in parameters at the foot of its bar."""
    base = points[points["baseline"] & (points["n"] > 0)]
    pts = points[~points["baseline"] & (points["n"] > 0)]
    if base.empty or pts.empty:
        ax.text(0.5, 0.5, "no finished baseline or SE run yet", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    b = base.iloc[0]
    floor = float(points.attrs.get("resolution", 0.0))
    rows = []
    for _, p in pts.iterrows():
        d = diff_ci(p["acc_values"], b["acc_values"], p["seeds"], b["seeds"], floor=floor)
        rows.append(
            (
                str(p["label"]),
                100 * d.mean,
                100 * d.half_width if d.has_ci else 0.0,
                float(p.get("params", 0)),
            )
        )
    rows.sort(key=lambda r: r[3])
    bars = ax.bar(
        range(len(rows)),
        [r[1] for r in rows],
        yerr=[r[2] for r in rows],
        capsize=3,
        color=[FRONT_COLOR if r[1] > 0 else POINT_COLOR for r in rows],
    )
    base_params = float(b.get("params", math.nan))
    for bar, r in zip(bars, rows, strict=True):
        if math.isfinite(base_params) and math.isfinite(r[3]):
            ax.annotate(
                f"+{human(r[3] - base_params)}\nparams",
                (bar.get_x() + bar.get_width() / 2, 0),
                xytext=(0, -3 if r[1] >= 0 else 3),
                textcoords="offset points",
                ha="center",
                va="top" if r[1] >= 0 else "bottom",
                fontsize=7.5,
                color="0.3",
            )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("accuracy gain over no SE (pp)")
    ax.set_title("Gain vs no-SE baseline (95% CI of the difference)", fontsize=10.5)
    ax.grid(True, axis="y", alpha=0.3)


def plot_stage_view(
    points: pd.DataFrame,
    trials: pd.DataFrame,
    path: Path,
    stages_varied: bool,
    title: str = "",
    max_configs: int = 6,
) -> Path | None:
    """What SE adds per stage in params and FLOPs; with a varied stage mask, what it gains."""
    stages = _stage_numbers(list(trials.columns), "se_params")
    if not stages:
        return None
    se = trials[~trials.get("baseline", pd.Series(False, index=trials.index)).astype(bool)]
    if se.empty:
        return None
    # Cost is the same for every seed of a configuration; take one row per point.
    per_point = se.groupby("point_key", sort=False).first()
    labels = points.set_index("point_key")["label"] if "point_key" in points else pd.Series()
    # Most expensive first: r=2 before r=32, all stages before one stage.
    total = per_point.get("se_params", pd.Series(0.0, index=per_point.index)).astype(float)
    keys = list(total.sort_values(ascending=False, kind="stable").index)
    if len(keys) > max_configs:  # evenly spaced subset keeps the bars readable
        keys = [keys[int(i)] for i in np.linspace(0, len(keys) - 1, max_configs)]
    sub = per_point.loc[keys]

    panels = 3 if stages_varied else 2
    fig, _ = _figure(4.2 * panels + 1.5, 4.6)
    axes = fig.subplots(1, panels)
    width = 0.8 / max(len(keys), 1)
    x = np.arange(len(stages))
    for ax, what, unit_name in (
        (axes[0], "se_params", "parameters"),
        (axes[1], "se_flops", "FLOPs"),
    ):
        cols = [f"stage{s}.{what}" for s in stages]
        vals = sub.reindex(columns=cols).astype(float).fillna(0.0)
        div, prefix = scale_for(list(vals.to_numpy().ravel()))
        for i, key in enumerate(keys):
            ax.bar(
                x + (i - (len(keys) - 1) / 2) * width,
                vals.loc[key] / div,
                width,
                label=str(labels.get(key, key)),
            )
        ax.set_xticks(x, [f"stage {s}" for s in stages])
        ax.set_ylabel(
            f"added by SE ({prefix}{' ' if prefix else ''}{unit_name})"
            if unit_name == "parameters"
            else f"added by SE ({prefix}FLOPs)"
        )
        ax.set_title(f"SE {unit_name} per stage", fontsize=10.5)
        ax.grid(True, axis="y", alpha=0.3)
    axes[1].legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8.5,
        frameon=False,
        title="configuration",
    )

    if stages_varied:
        _gain_panel(axes[2], points)
    fig.suptitle(title or "Where SE adds cost", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_time_shares(trials: pd.DataFrame, path: Path, title: str = "") -> Path | None:
    """Per stage, its share of the network's FLOPs against its share of the time, and what SE
    adds to it in FLOPs against in time, for the SE configuration that adds the most FLOPs."""
    table = stage_shares(trials)
    if table.empty:
        return None
    se_flops = (
        pd.to_numeric(trials["se_flops"], errors="coerce")
        .groupby(trials["point_key"])
        .median()
        .reindex(table["point_key"].unique())
    )
    rows = table[table["point_key"] == se_flops.idxmax()]
    fig, _ = _figure(11.0, 4.4)
    axes = fig.subplots(1, 2)
    x = np.arange(len(rows))
    panels = (
        (
            axes[0],
            ("FLOPs share %", "time share %"),
            "share of the network (%)",
            "Where the network's FLOPs and time go",
        ),
        (
            axes[1],
            ("SE +FLOPs % of stage", "SE +time % of stage"),
            "added by SE (% of the plain stage)",
            "What SE adds: FLOPs vs time",
        ),
    )
    for ax, (flops_col, time_col), ylabel, panel_title in panels:
        ax.bar(x - 0.2, rows[flops_col].fillna(0.0), 0.4, label="FLOPs (fvcore)", color=POINT_COLOR)
        ax.bar(x + 0.2, rows[time_col].fillna(0.0), 0.4, label="time (measured)", color=FRONT_COLOR)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, [f"stage {s}" for s in rows["stage"]])
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title, fontsize=10.5)
        ax.grid(True, axis="y", alpha=0.3)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)
    label = rows["configuration"].iloc[0]
    fig.suptitle(title or f"FLOPs vs measured time per stage ({label})", fontsize=11)
    fig.text(
        0.01,
        -0.02,
        f"{label}: the SE configuration that adds the most FLOPs. Time: the "
        "deployment batch's forward, SE network and plain network in alternating rounds, "
        "medians (stage_time_shares.csv has every configuration).",
        fontsize=8,
        color="0.35",
        ha="left",
        va="top",
    )
    fig.tight_layout()
    return _save(fig, path)


def make_plots(
    points: pd.DataFrame,
    trials: pd.DataFrame,
    varied: list[str],
    out_dir: str | Path,
    name: str = "",
    acc_col: str = "val_acc",
    cost_col: str = "flops",
) -> dict[str, Path]:
    """All figures that apply to this sweep, as ``{title: path}``: accuracy against FLOPs,
    parameters, measured latency where the trials measured it, and ``cost_col``."""
    out = Path(out_dir)
    figs: dict[str, Path | None] = {}
    prefix = f"{name}: " if name else ""
    costs = dict.fromkeys(["flops", "params", "latency_b1_ms", cost_col])
    for col in costs:
        if col in points:
            what = cost_name(col)
            figs[f"Accuracy vs {what}"] = plot_pareto(
                points,
                trials,
                col,
                out / f"acc_vs_{col}.png".replace("_b1_ms", ""),
                f"{prefix}accuracy vs {what}",
                acc_col,
            )
    if "arch.se.reduction" in varied:
        figs["Accuracy vs reduction r"] = plot_acc_vs_r(
            points, out / "acc_vs_r.png", f"{prefix}accuracy vs reduction ratio r"
        )
    stages_varied = "arch.se.stages" in varied
    figs["SE cost per stage"] = plot_stage_view(
        points,
        trials,
        out / "stages.png",
        stages_varied,
        f"{prefix}what SE adds per stage" + (" and what it gains" if stages_varied else ""),
    )
    figs["FLOPs vs measured time per stage"] = plot_time_shares(trials, out / "time_shares.png")
    return {k: v for k, v in figs.items() if v is not None}
