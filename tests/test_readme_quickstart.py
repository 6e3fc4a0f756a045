"""scripts/readme_quickstart.py quotes the report's answer from recommendation.md: checked on a
recommendation.md as reports writes it (reports.recommend, then the file's Markdown), so the
README generator fails here, not in the lead's regeneration, when that layout changes."""

from __future__ import annotations

import sys
from pathlib import Path

import reports
from tests.test_reports_stats import BEST, NEAR_BEST, NO_SE, VARIED, frame, trial_rows

sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
import readme_quickstart  # noqa: E402  (a script, not a package)


def test_the_pages_quote_the_verdict_its_table_and_the_se_claim():
    trials = frame(trial_rows(None, NO_SE), trial_rows(4, BEST), trial_rows(16, NEAR_BEST))
    rec = reports.recommend(trials, varied=VARIED, margin=0.01)
    markdown = rec.as_markdown("Recommendation for quickstart")  # recommendation.md
    results = readme_quickstart.Results(
        report_out="",
        recommendation_md=markdown,
        table="",
        run_s=0.0,
        spec_text="",
        summary_csv="",
        storage_mb=0.0,
    )
    quote = readme_quickstart.recommendation(results).splitlines()
    assert quote[0] == f"> {rec.text}"
    assert rec.text.startswith("Pick r=16: within ±1.00 pp of the best (r=4)")
    assert quote[2].startswith("> | configuration | seeds | acc % [95% CI] |")
    rows = [line for line in quote if line.startswith("> |")]
    assert len(rows) == 2 + 3  # header, rule and one row per configuration
    assert any("within ±1.00 pp <- pick" in row for row in rows)
    se_claim = [line for line in quote if line.startswith("> Does SE help:")]
    assert se_claim == [f"> {rec.se_text}"]
    assert all(line.startswith(">") for line in quote)  # one Markdown quote
