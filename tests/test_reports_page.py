"""The HTML report as a reader sees it: its widest table laid out by a real browser (headless
Chromium) at 1,400 px, and the notes it leaves out when they would say nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from reports import html
from reports.frame import Sweep, point_key
from reports.recommend import recommend
from reports.report import race_note
from reports.tables import ablation_tables

BROWSER = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)
VARIED = ["arch.se.reduction", "arch.se.enabled"]
# After layout, write how wide the page and its widest table are where the test can read them.
MEASURE = """<script>
window.addEventListener('load', () => {
  const right = Math.max(...[...document.querySelectorAll('table')].map(
      t => t.getBoundingClientRect().right));
  document.body.insertAdjacentHTML('beforeend',
      `<pre id="measure">page=${document.documentElement.scrollWidth} table=${right}` +
      ` view=${window.innerWidth}</pre>`);
});
</script></body>"""


def trials(seeds: int = 3) -> pd.DataFrame:
    """An r ablation on ResNet-50 (so every row gets the paper's columns) plus no SE."""
    rows = []
    for r in (None, 2, 4, 8, 16, 32):
        point = {"arch.se.enabled": False} if r is None else {"arch.se.reduction": r}
        for seed in range(seeds):
            rows.append(
                {
                    "run_id": f"{r}-{seed}",
                    "trial_id": f"{r}-{seed}",
                    "seed": seed,
                    "label": "no SE" if r is None else f"r={r}",
                    "status": "finished",
                    "baseline": r is None,
                    "arch.se.reduction": r or 16,
                    "arch.se.enabled": r is not None,
                    "arch.backbone": "resnet50",
                    "arch.depth": 50,
                    "val_acc": 0.75 + 0.001 * seed + (0.01 if r else 0.0),
                    "val_top5": 0.92,
                    "flops": 3.86e9 + (1e7 / r if r else 0),
                    "params": 25.6e6 + (2e7 / r if r else 0),
                    "point": point,
                    "point_key": point_key(point),
                }
            )
    return pd.DataFrame(rows)


# CI sets SELAB_REQUIRE_BROWSER, so there this check fails without a browser instead of skipping.
@pytest.mark.skipif(
    BROWSER is None and not os.environ.get("SELAB_REQUIRE_BROWSER"),
    reason="needs a headless Chromium to lay the page out (Debian: apt install chromium)",
)
def test_the_widest_table_fits_a_1400_px_window(tmp_path):
    assert BROWSER is not None, "SELAB_REQUIRE_BROWSER is set but no chromium is on PATH"
    frame = trials()
    tables = ablation_tables(frame, VARIED)
    assert any(c.startswith("paper") for c in tables["arch.se.reduction"].columns)
    rec = recommend(frame, varied=VARIED)
    page = html.render(
        name="fit",
        meta={"sweep": "fit"},
        status_counts={"finished": 18},
        running=False,
        tables=tables,
        recommendation=rec,
        plots={},
        fronts={},
        trials=frame,
        varied=VARIED,
        spec_text=None,
        dataset="imagenet",
    )
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body>", MEASURE), encoding="utf-8")
    dom = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            # A closed network: no background connections, no profile left behind.
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1400,1000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    page_w, table_w, view_w = (
        float(x) for x in re.search(r"page=([\d.]+) table=([\d.]+) view=([\d.]+)", dom).groups()
    )
    assert view_w == 1400
    assert page_w <= view_w and table_w <= view_w  # nothing behind a horizontal scroll
    assert "p Holm (p, test)" in page and "[paper, ImageNet]" in page


def sweep_of(frame: pd.DataFrame) -> Sweep:
    return Sweep(
        name="s",
        tracking_uri="sqlite://",
        run_id="r",
        experiment_id="1",
        experiment_name="s",
        tags={},
        params={},
        status="FINISHED",
        start_time=None,
        trials=frame,
        varied=VARIED,
    )


def test_the_race_note_is_left_out_when_racing_saved_nothing():
    race = {"initial": 3, "max": 3, "margin": 1.0, "alpha": 0.05}
    assert race_note(sweep_of(trials(seeds=3)), race) is None  # every seed everywhere
    saved = race_note(sweep_of(trials(seeds=3)), race | {"max": 6})
    assert saved is not None and "18 trials instead of 36" in saved and "50% fewer" in saved
    assert race_note(sweep_of(trials()), None) is None  # not raced


def test_the_terminal_shows_the_verdict_with_its_table(tmp_path: Path):
    rec = recommend(trials(), varied=VARIED)
    lines = rec.lines()
    assert lines[0] == rec.text and lines[0].startswith("Pick ")
    table = lines[1].splitlines()
    assert table[0].split()[0] == "configuration" and set(table[1]) <= {"-", " "}
    assert len(table) == 2 + 6  # header, rule, one row per configuration
    assert "<- pick" in lines[1]
    text = rec.as_text()
    assert text.startswith(rec.text) and rec.rule in text


def test_analyze_prints_one_summary_row_per_trial():
    from reports.excitation import summary_table

    summary = pd.DataFrame(
        {
            "block": ["stage1.unit3", "stage2.unit3", "stage3.unit3"],
            "class_spread": [0.001, 0.02, 0.05],
            "saturated_high": [0.0, 0.1, 0.62],
            "saturated_low": [0, 0, 0],
        }
    )
    relu = summary.assign(saturated_high=float("nan"))
    table = summary_table(
        [("r=8 seed 0", summary), ("gate=relu seed 0", relu), ("empty", summary.iloc[:0])]
    )
    assert list(table["trial"]) == ["r=8 seed 0", "gate=relu seed 0"]
    row = table.iloc[0]
    assert row["class spread, first block"] == "0.0010 (stage1.unit3)"
    assert row["most class-specific"] == "stage3.unit3"
    assert row["last block near the top of the gate"] == "62.0%"
    assert table.iloc[1]["last block near the top of the gate"] == "n/a (unbounded gate)"
