"""Ablation tables laid out like the paper's: one row per value of a varied axis.

Numbers stay numeric in the frames (for CSV); :func:`format_table` turns a table into the
paper's layout (top-1/top-5 error %, params, GFLOPs) for Markdown and HTML.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from . import notes, paper
from .frame import Sweep
from .points import point_summary
from .stats import compare, format_p, holm
from .units import scale_for

SIGNIFICANCE_ALPHA = 0.05


def _sort_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, bool):
        return (0, float(value), "")
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _distinct(values: pd.Series) -> int:
    return len({str(v) for v in values})


def _rows_for_axis(points: pd.DataFrame, axis: str, varied: list[str]) -> pd.DataFrame | None:
    """Points that belong in ``axis``'s table (without the baseline), or None to skip it.

    A point belongs when its overrides set ``axis`` or set nothing (the fixed spec, the
    reference of every axis). An axis with fewer than two values there is skipped (it only
    marks the baseline, like ``arch.se.enabled``) unless no axis has two: then it is a single
    configuration against the baseline and all points are shown.
    """
    others = points[~points["baseline"]]

    def members(key: str) -> pd.DataFrame:
        mask = others["point"].map(lambda p, k=key: not p or k in p)
        return others[mask]

    rows = members(axis)
    if axis in rows and _distinct(rows[axis]) >= 2:
        return rows
    if any(k in others and _distinct(members(k)[k]) >= 2 for k in varied if k != axis):
        return None
    return others if len(others) else None


def _cost_increase(rec: dict[str, Any], base: pd.Series | None) -> None:
    for col in ("params", "flops"):
        b = base.get(col, math.nan) if base is not None else math.nan
        rec[f"{col}_increase_pct"] = 100 * (rec[col] - b) / b if b and pd.notna(b) else math.nan


def _accuracy_columns(pt: pd.Series, points: pd.DataFrame) -> dict[str, Any]:
    """Accuracy and its interval (clipped to [0, 1]) as top-1 (top-5) error in %."""
    rec = {key: pt[key] for key in ("acc_mean", "acc_ci_half", "acc_ci_low", "acc_ci_high")}
    rec.update(
        top1_err=100 * (1 - pt["acc_mean"]),
        top1_err_low=100 * (1 - pt["acc_ci_high"]),
        top1_err_high=100 * (1 - pt["acc_ci_low"]),
    )
    if "top5_mean" in points:
        has = pd.notna(pt.get("top5_mean"))
        rec.update(
            top5_err=100 * (1 - pt["top5_mean"]) if has else math.nan,
            top5_err_low=100 * (1 - pt["top5_ci_high"]) if has else math.nan,
            top5_err_high=100 * (1 - pt["top5_ci_low"]) if has else math.nan,
        )
    return rec


def _configs(trials: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each point's full config (one trial's arch.* and data.* params): what the paper's
    figures are matched on."""
    if trials.empty or "point_key" not in trials:
        return {}
    cols = [c for c in trials.columns if c.startswith(("arch.", "data."))]
    first = trials.drop_duplicates("point_key").set_index("point_key")[cols]
    return {str(key): row.to_dict() for key, row in first.iterrows()}


def _chance_note(config: dict[str, Any], accuracy: float, floor: float, rows: int) -> str:
    """The note beside a row that trained at chance (reports.notes), "" for any other row or
    when the validation images (1 / the resolution) or the classes are not known."""
    classes = pd.to_numeric(pd.Series([config.get("arch.num_classes")]), errors="coerce")[0]
    if not floor > 0 or not pd.notna(accuracy) or not pd.notna(classes) or classes < 2:
        return ""
    return notes.row_note(config, float(accuracy), round(1 / floor), int(classes), rows=rows) or ""


def row_notes(table: pd.DataFrame) -> list[str]:
    """``setting: note`` for each row of a table that has a note, to print under it."""
    if "note" not in table:
        return []
    return [
        f"{setting}: {note}"
        for setting, note in zip(table["setting"], table["note"], strict=True)
        if note
    ]


def _tests_vs_baseline(
    table: pd.DataFrame, ordered: pd.DataFrame, base: pd.Series | None, floor: float
) -> pd.DataFrame:
    """Two-sided t-test of each row against the baseline, Holm-adjusted over the table's rows."""
    results = [
        compare(pt["acc_values"], base["acc_values"], pt["seeds"], base["seeds"], floor=floor)
        if base is not None and not pt["baseline"]
        else None
        for _, pt in ordered.iterrows()
    ]
    raw = [r.p_value if r is not None else math.nan for r in results]
    table["delta_top1_err_pp"] = [-100 * r.diff if r else math.nan for r in results]
    table["test"] = [
        "" if r is None else (r.test if r.available else f"n/a ({r.reason})") for r in results
    ]
    table["p_value"] = raw
    table["p_holm"] = holm(raw)
    table["significant"] = [bool(p < SIGNIFICANCE_ALPHA) for p in table["p_holm"]]
    return table


def ablation_table(
    points: pd.DataFrame,
    axis: str,
    varied: list[str],
    level: float = 0.95,
    configs: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame | None:
    """The numeric table for one axis from :func:`points.point_summary` output (or None).

    ``configs`` (point_key -> the point's params) lets each row get the paper's figure for the
    network it is; without it only the varied keys are known.
    """
    rows = _rows_for_axis(points, axis, varied)
    if rows is None:
        return None
    base_pts = points[points["baseline"]].sort_values("n", ascending=False)
    base = base_pts.iloc[0] if len(base_pts) else None
    rows = rows.assign(_k=rows[axis].map(_sort_key)).sort_values("_k").drop(columns="_k")
    # Other varied keys that differ between rows are shown so that rows can be told apart.
    shown = [k for k in varied if k != axis and k in rows and _distinct(rows[k]) >= 2]
    ordered = pd.concat([base_pts.iloc[:1], rows]) if base is not None else rows
    floor = float(points.attrs.get("resolution", 0.0))
    out = []
    for _, pt in ordered.iterrows():
        is_base = bool(pt["baseline"])
        value = pt.get(axis) if (not is_base or axis == "arch.se.enabled") else None
        rec: dict[str, Any] = {"axis": axis, "value": value, "setting": pt["label"]}
        rec.update({k: None if is_base else pt.get(k) for k in shown})
        rec.update(
            baseline=is_base,
            n_seeds=int(pt["n"]),
            n_not_finished=int(pt["n_not_finished"]),
            not_finished=pt["not_finished"],
        )
        rec.update(_accuracy_columns(pt, points))
        rec.update(
            {
                col: pt.get(col, math.nan)
                for col in ("params", "flops", "se_params", "se_flops", "images_per_s")
            }
        )
        _cost_increase(rec, base)
        config = (configs or {}).get(pt["point_key"]) or {k: pt.get(k) for k in varied}
        rec["note"] = _chance_note(config, pt["acc_mean"], floor, rows=len(ordered))
        out.append(rec | paper.row_columns(config, axis))
    return _tests_vs_baseline(pd.DataFrame(out), ordered, base, floor)


def ablation_tables(
    data: Sweep | pd.DataFrame,
    varied: list[str] | None = None,
    acc_col: str = "val_acc",
    level: float = 0.95,
) -> dict[str, pd.DataFrame]:
    """One numeric table per varied axis (``selab.varied`` of the sweep by default).

    Each row is a configuration: seeds finished, what did not finish, mean accuracy with its
    t-interval, top-1 (and top-5) error in %, params/FLOPs and their increase over the no-SE
    baseline, the difference to the baseline (``delta_top1_err_pp``, negative = better) with a
    two-sided t-test across seeds (paired on seeds when they pair up, else Welch), and the
    paper's figures for the network each row is (``paper_*``: ImageNet, ``paper_cifar_*``:
    CIFAR; see reports.paper).
    """
    if isinstance(data, Sweep):
        trials, varied = data.trials, list(varied if varied is not None else data.varied)
    else:
        trials, varied = data, list(varied or [])
    points = point_summary(trials, acc_col=acc_col, varied=varied, level=level)
    if points.empty:
        return {}
    tables: dict[str, pd.DataFrame] = {}
    configs = _configs(trials)
    for axis in varied:
        if axis not in points:
            continue
        table = ablation_table(points, axis, varied, level, configs)
        if table is not None:
            tables[axis] = table
    return tables


# ---------------------------------------------------------------- display


def _num(v: Any, fmt: str = ".2f") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—" if v is None else str(v)
    return "—" if math.isnan(f) else format(f, fmt)


def _value(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float) and v.is_integer():  # r=2, not 2.0 (a column with NaN is float)
        return str(int(v))
    if isinstance(v, float):  # a searched learning rate: 0.0457, not 0.045659139293920264
        return f"{v:.3g}"
    return str(v)


def _with_ci(mean: float, low: float, high: float, n: int) -> str:
    if n == 0 or pd.isna(mean):
        return "—"
    if n < 2 or pd.isna(low):
        return f"{mean:.2f} (CI n/a: 1 seed)"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def _pct(v: float) -> str:
    return "—" if pd.isna(v) else f"{v:+.1f}%"


def axis_title(axis: str) -> str:
    names = {
        "arch.se.reduction": "reduction r",
        "arch.se.stages": "SE stages",
        "arch.se.placement": "placement",
        "arch.se.squeeze": "squeeze",
        "arch.se.gate": "excitation gate",
        "arch.se.enabled": "SE enabled",
        "arch.backbone": "backbone",
    }
    return names.get(axis, axis)


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout as strings: top-1 (top-5) error % ± 95% CI, params, FLOPs, Δ."""
    if table.empty:
        return pd.DataFrame()
    axis = str(table["axis"].iloc[0])
    pdiv, pprefix = scale_for(list(table["params"].dropna()))
    fdiv, fprefix = (
        (1e9, "G")
        if table["flops"].max(skipna=True) >= 1e8
        else scale_for(list(table["flops"].dropna()))
    )
    skip = {"axis", "value", "setting", "baseline", "n_seeds", "n_not_finished", "not_finished"}
    other_axes = [
        c for c in table.columns if c.startswith(("arch.", "train.", "data.")) and c not in skip
    ]
    out = pd.DataFrame()
    out[axis_title(axis)] = table["value"].map(_value)
    out["setting"] = table["setting"]
    for c in other_axes:
        out[axis_title(c)] = table[c].map(_value)
    out["seeds"] = table["n_seeds"].astype(int)
    out["not finished"] = table["not_finished"].map(lambda s: s or "0")
    for k in ("top1", "top5"):
        if f"{k}_err" in table:
            out[f"top-{k[-1]} err (%) [95% CI]"] = [
                _with_ci(*vals)
                for vals in zip(
                    table[f"{k}_err"],
                    table[f"{k}_err_low"],
                    table[f"{k}_err_high"],
                    table["n_seeds"],
                    strict=True,
                )
            ]
    out[f"params ({pprefix or 'count'})"] = (table["params"] / pdiv).map(lambda v: _num(v, ".3g"))
    out["Δparams vs no SE"] = table["params_increase_pct"].map(_pct)
    out[f"{fprefix}FLOPs"] = (table["flops"] / fdiv).map(lambda v: _num(v, ".4g"))
    out["ΔFLOPs vs no SE"] = table["flops_increase_pct"].map(_pct)
    out["Δ top-1 err vs no SE (pp)"] = [
        "—" if pd.isna(d) else f"{d:+.2f}" + (" *" if s else "")
        for d, s in zip(table["delta_top1_err_pp"], table["significant"], strict=True)
    ]
    out["p Holm (p, test)"] = [
        "—" if not t else (t if pd.isna(p) else f"{format_p(ph)} ({format_p(p)}, {t})")
        for p, ph, t in zip(table["p_value"], table["p_holm"], table["test"], strict=True)
    ]
    for header, cells in paper.display_columns(table).items():
        out[header] = cells
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (pandas' own needs tabulate, which is not a dependency)."""

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, sep, *body]) + "\n"


def to_text(df: pd.DataFrame) -> str:
    """A fixed-width table for a terminal: the first column left-aligned, the rest right."""
    if df.empty:
        return "(no finished configuration)"
    cells = [[str(c) for c in df.columns]] + [
        [str(v) for v in row] for row in df.itertuples(index=False)
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(df.columns))]

    def line(row: list[str]) -> str:
        return "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


TABLE_NOTE = (
    "Means over finished trials only; [low, high] is the 95% t-interval "
    "(t_0.975,n-1 · sd/√n with sd at least one evaluation image; not available with 1 seed), "
    "clipped to [0, 100]%. Δ is against the no-SE baseline (negative = lower error = better), "
    "tested by a two-sided t-test across seeds (paired on seeds when both ran the same seeds, "
    "else Welch); p Holm is Holm-adjusted over the rows of the table, and * marks p Holm < "
    f"{SIGNIFICANCE_ALPHA}. {paper.COLUMN_NOTE}"
)


def table_filename(axis: str) -> str:
    return "table_" + "".join(ch if ch.isalnum() else "_" for ch in axis)


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Each table as ``table_<axis>.csv`` (numeric) and ``table_<axis>.md`` (paper layout)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for axis, table in tables.items():
        stem = out / table_filename(axis)
        table.to_csv(stem.with_suffix(".csv"), index=False)
        body = to_markdown(format_table(table))
        flagged = "".join(f"- {line}\n" for line in row_notes(table))
        flagged = f"\n{flagged}" if flagged else ""
        md = f"## {axis_title(axis)} (`{axis}`)\n\n{body}{flagged}\n{TABLE_NOTE}\n"
        stem.with_suffix(".md").write_text(md, encoding="utf-8")
        written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    return written
