"""A self-contained HTML page: tables, plots as base64 PNG, and the spec that ran."""

from __future__ import annotations

import base64
import datetime as dt
import re
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from . import paper, verdict
from .recommend import Recommendation
from .tables import TABLE_NOTE, axis_title, format_table, row_notes

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1340px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .45em;text-align:right;vertical-align:top}
th{white-space:normal;min-width:2.5em;max-width:11em}td{white-space:normal}
table.wide{font-size:.74em}table.wide th,table.wide td{padding:.2em .3em}
th{background:#f3f3f3}td.l,th.l{text-align:left}
tr.base td{background:#f7f7f7;font-style:italic}tr.pick td{background:#dff0df;font-weight:600}
.paper{color:#7a4b00}th.paper{background:#fff3dc}
.note{color:#555;font-size:.85em}.warn{background:#fff4e5;border-left:4px solid #f0a020;
padding:.5em 1em}.rec{background:#eef6ee;border-left:4px solid #2c8a2c;padding:.6em 1em}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:.85em}
.bad{color:#a00}
"""


WIDE_COLUMNS = 12  # a table with more columns gets a smaller font to fit 1,400 px
_INTERVAL = re.compile(r"\[[^\]]*\]")


def _cell(value: object) -> str:
    """Escaped text that wraps at its spaces, except inside an interval ``[1.86, 2.60]``."""
    text = escape(str(value))
    return _INTERVAL.sub(lambda m: m.group(0).replace(" ", "&nbsp;"), text)


def _table_html(df: pd.DataFrame, row_classes: list[str] | None = None) -> str:
    """A table that wraps its headers and cells to fit the page (a scroll bar only when even
    that is not enough)."""
    if df.empty:
        return "<p class='note'>(empty)</p>"
    head = "".join(
        f"<th class='{'paper' if '[paper' in str(c) else 'l' if i < 2 else ''}'>"
        f"{escape(str(c))}</th>"
        for i, c in enumerate(df.columns)
    )
    body = []
    for r, row in enumerate(df.itertuples(index=False)):
        cls = f" class='{row_classes[r]}'" if row_classes and row_classes[r] else ""
        cells = "".join(
            f"<td class='{'paper' if '[paper' in str(c) else 'l' if i < 2 else ''}'>{_cell(v)}</td>"
            for i, (c, v) in enumerate(zip(df.columns, row, strict=True))
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    wide = " class='wide'" if len(df.columns) > WIDE_COLUMNS else ""
    return (
        f"<div class='scroll'><table{wide}><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<figure><img alt='{escape(alt)}' src='data:image/png;base64,{data}'></figure>"


def _trials_display(trials: pd.DataFrame, varied: list[str]) -> pd.DataFrame:
    cols = [
        "trial_id",
        "label",
        "status",
        "seed",
        *varied,
        "val_acc",
        "best_val_acc",
        "test_acc",
        "val_top5",
        "epochs_done",
        "flops",
        "params",
        "images_per_s",
        "error",
    ]
    out = trials[[c for c in dict.fromkeys(cols) if c in trials]].copy()
    for c in ("val_acc", "best_val_acc", "test_acc", "val_top5"):
        if c in out:
            out[c] = out[c].map(lambda v: "—" if pd.isna(v) else f"{100 * v:.2f}%")
    for c in ("flops", "params"):
        if c in out:
            out[c] = out[c].map(lambda v: "—" if pd.isna(v) else f"{v:,.0f}")
    if "images_per_s" in out:
        out["images_per_s"] = out["images_per_s"].map(lambda v: "—" if pd.isna(v) else f"{v:,.0f}")
    return out.astype(object).fillna("—")  # text cells: a float column takes "—" too


def _cifar_html(dataset: str) -> str:
    key = dataset.lower().replace("-", "")
    if key not in ("cifar10", "cifar100"):
        return ""
    df = pd.DataFrame(
        [
            {
                "model": r["model"],
                "without SE (%)": f"{r[key][0]:.2f}",
                "with SE (%)": f"{r[key][1]:.2f}",
            }
            for r in paper.CIFAR
        ]
    )
    return (
        f"<h3>Paper reference: {escape(paper.CIFAR_LABEL)} ({escape(dataset)})</h3>"
        f"<p class='note'>Other backbones and a long schedule, for orientation only; not "
        f"measured here. {escape(paper.PAPER_SOURCE)}.</p>{_table_html(df)}"
    )


def _header(
    name: str, meta: dict[str, Any], status_counts: dict[str, int], running: bool
) -> list[str]:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>selab report: "
        f"{escape(name)}</title><style>{CSS}</style></head><body>",
        f"<h1>selab report: {escape(name)}</h1>",
    ]
    meta_rows = "".join(
        f"<tr><th class='l'>{escape(k)}</th><td class='l'>{escape(str(v))}</td></tr>"
        for k, v in meta.items()
    )
    counts = ", ".join(f"{n} {s}" for s, n in status_counts.items()) or "no trials yet"
    parts.append(
        f"<table>{meta_rows}<tr><th class='l'>trials</th><td class='l'>"
        f"{escape(counts)}</td></tr></table>"
    )
    if running:
        parts.append(
            "<p class='warn'>The sweep is still running (or its driver stopped "
            "without closing it): this report covers the trials finished so far.</p>"
        )
    not_done = sum(n for s, n in status_counts.items() if s != "finished")
    if not_done:
        parts.append(
            f"<p class='warn'>{not_done} trial(s) did not finish ({escape(counts)}). "
            "They are listed below but excluded from means, tests, the Pareto front "
            "and the recommendation.</p>"
        )
    return parts


def _recommendation_html(rec: Recommendation | None) -> list[str]:
    """The verdict, the table it names, then every claim with its numbers (the same words as
    the terminal and recommendation.md)."""
    parts = ["<h2>Recommendation</h2>"]
    if rec is None:
        return [*parts, "<p>No recommendation: no SE configuration has a finished trial yet.</p>"]
    classes = ["pick" if "<- pick" in str(v) else "" for v in rec.table.get("vs best", [])]
    parts.append(f"<div class='rec'><p><b>{escape(rec.text)}</b></p>")
    parts.append(_table_html(rec.table, classes))
    parts.append(f"<p class='note'>{escape(verdict.TABLE_NOTE)}</p>")
    parts += [f"<p>{escape(line)}</p>" for line in rec.claims()]
    rule = "<br>".join(escape(line) for line in rec.rule.splitlines())
    parts.append(f"<p class='note'>{rule}</p></div>")
    return parts


def _tables_section(tables: dict[str, pd.DataFrame], dataset: str) -> list[str]:
    parts = ["<h2>Ablation tables</h2>"]
    if not tables:
        parts.append("<p>No table: no varied axis with at least two values has trials.</p>")
    for axis, table in tables.items():
        parts.append(f"<h3>{escape(axis_title(axis))} <code>{escape(axis)}</code></h3>")
        classes = ["base" if b else "" for b in table["baseline"]]
        parts.append(_table_html(format_table(table), classes))
        parts += [f"<p class='note'>{escape(line)}</p>" for line in row_notes(table)]
    if tables:
        parts.append(
            f"<p class='note'>{escape(TABLE_NOTE)} Paper source: {escape(paper.PAPER_SOURCE)}.</p>"
        )
    return [*parts, _cifar_html(dataset)]


def _fronts_section(fronts: dict[str, pd.DataFrame]) -> list[str]:
    parts = [
        "<h2>Pareto fronts</h2><p class='note'>Per-configuration means of finished "
        "trials; a configuration is on the front when no other is at least as accurate "
        "and at most as costly (and strictly better in one). Equal points are both "
        "kept and marked as ties.</p>"
    ]
    for cost, front in fronts.items():
        cols = [
            c
            for c in dict.fromkeys(
                (
                    "label",
                    "n",
                    "acc_mean",
                    "acc_ci_low",
                    "acc_ci_high",
                    "flops",
                    "params",
                    cost,
                    "pareto_tie",
                )
            )
            if c in front
        ]
        show = front[cols].copy()
        for c in ("acc_mean", "acc_ci_low", "acc_ci_high"):
            show[c] = show[c].map(lambda v: "—" if pd.isna(v) else f"{100 * v:.2f}")
        for c in ("flops", "params"):
            if c in show:
                show[c] = show[c].map(lambda v: "—" if pd.isna(v) else f"{v:,.0f}")
        if cost not in ("flops", "params"):  # measured time (reports.cost)
            show[cost] = show[cost].map(lambda v: "—" if pd.isna(v) else f"{v:.3g}")
        show = show.rename(
            columns={
                "n": "seeds",
                "acc_mean": "accuracy (%)",
                "acc_ci_low": "95% CI low",
                "acc_ci_high": "95% CI high",
                "pareto_tie": "tie",
            }
        )
        parts.append(f"<h3>accuracy vs {escape(cost)}</h3>{_table_html(show)}")
    return parts


def _cost_section(view: Any) -> list[str]:
    """FLOPs against measured time (reports.cost), in total and per stage."""
    from .cost import STAGE_NOTE, TIME_NOTE, display

    if view is None or not view.available:
        return []
    parts = [
        "<h2>What SE costs: FLOPs vs measured time</h2>",
        _table_html(display(view.totals), ["base" if b else "" for b in view.totals["baseline"]]),
        f"<p class='note'>{escape(TIME_NOTE)}</p>",
    ]
    if not view.stages.empty:
        parts += [
            "<h3>Per stage: FLOPs share and time share</h3>",
            _table_html(display(view.stages)),
            f"<p class='note'>{escape(STAGE_NOTE)}</p>",
        ]
    return parts


def _diagnostics_section(found: Any) -> list[str]:
    """Which knob mattered (search sweeps), and whether early epochs predict the last."""
    from .plots_search import correlation_display, importance_display

    parts = []
    imp, early = found.importance, found.early
    if imp is not None:
        parts.append("<h2>Which knob mattered</h2>")
        parts.append(f"<p>{escape(imp.summary())}</p>")
        if imp.available:
            parts.append(_table_html(importance_display(imp)))
            parts.append(
                "<p class='note'>Optuna's PED-ANOVA and fANOVA evaluators over the "
                "finished trials (importances sum to 1 per evaluator); the range "
                "and the share of first places come from resamples of 80% of the "
                "trials, drawn without replacement.</p>"
            )
    if early is not None:
        parts.append("<h2>Does the cheap run predict the full one?</h2>")
        parts.append(f"<p>{escape(early.summary())}</p>")
        if early.available:
            parts.append(_table_html(correlation_display(early)))
            parts.append(
                "<p class='note'>Rank correlation across configurations between the "
                "mean validation accuracy after each epoch and after the last (finished "
                "seeds that logged every epoch); 95% intervals by Fisher's z.</p>"
            )
    parts += [f"<h3>{escape(t)}</h3>{_img(p, t)}" for t, p in found.plots.items()]
    return parts


def _trials_section(trials: pd.DataFrame, varied: list[str], spec_text: str | None) -> list[str]:
    parts = [
        "<h2>All trials</h2><p class='note'>Every trial, whatever its status. "
        "val_acc is the last logged epoch; throughput is the median over epochs after "
        "the first.</p>"
    ]
    classes = ["" if s == "finished" else "bad" for s in trials.get("status", [])]
    parts.append(
        "<details open><summary>trials table</summary>"
        f"{_table_html(_trials_display(trials, varied), classes)}</details>"
    )
    parts.append("<h2>Spec that ran</h2>")
    if spec_text is None:
        parts.append("<p class='note'>The parent run has no <code>spec.yaml</code> artifact.</p>")
    else:
        parts.append(f"<pre>{escape(spec_text)}</pre>")
    return parts


def render(
    *,
    name: str,
    meta: dict[str, Any],
    status_counts: dict[str, int],
    running: bool,
    tables: dict[str, pd.DataFrame],
    recommendation: Recommendation | None,
    plots: dict[str, Path],
    fronts: dict[str, pd.DataFrame],
    trials: pd.DataFrame,
    varied: list[str],
    spec_text: str | None,
    dataset: str,
    excitation: dict[str, Path] | None = None,
    diagnostics: Any = None,
    cost: Any = None,
) -> str:
    """The whole page as a string (no external resources)."""
    parts = _header(name, meta, status_counts, running)
    parts += _recommendation_html(recommendation)
    parts += _tables_section(tables, dataset)
    parts.append("<h2>Plots</h2>")
    parts += [f"<h3>{escape(title)}</h3>{_img(path, title)}" for title, path in plots.items()]
    parts += _fronts_section(fronts)
    parts += _cost_section(cost)
    if diagnostics is not None:
        parts += _diagnostics_section(diagnostics)
    if excitation:
        parts.append(
            "<h2>Excitation analysis</h2><p class='note'>From <code>selab analyze"
            "</code> (the paper's Sec. 7.2), logged under <code>excitation/</code> of "
            "each trial's MLflow run with its CSV tables.</p>"
        )
        parts += [f"<h3>{escape(t)}</h3>{_img(p, t)}" for t, p in excitation.items()]
    parts += _trials_section(trials, varied, spec_text)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<p class='note'>Generated by selab reports, {stamp}.</p></body></html>")
    return "\n".join(p for p in parts if p)
