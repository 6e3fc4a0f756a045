"""Regenerate the quickstart's results in the README and the docs from what the commands print.

Runs the quickstart's commands (`selab run experiments/quickstart.yaml`, `selab report
quickstart`, then `selab analyze quickstart --trials "r=16 seed=0"`) in a fresh temporary
folder, then rewrites the block between the `quickstart:begin` and `quickstart:end` markers of
two pages, and the figures in docs/images/, so that neither page can drift from what the same
commands print:

- README.md: the short block (the run time, the recommendation, the table, the accuracy plot);
- docs/quickstart.md: the whole block (the same, plus the excitation analysis, the storage
  footprint and the decision rule).

    python scripts/readme_quickstart.py            # run, then rewrite both pages and the images
    python scripts/readme_quickstart.py --check    # run, print both blocks, change nothing
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICKSTART_PAGE = ROOT / "docs" / "quickstart.md"
IMAGES = ROOT / "docs" / "images"
ACC_IMAGE = "quickstart_acc_vs_r.png"
# The analysis' figures, by the name `selab analyze` gives them -> the name in docs/images/.
EXCITATION_IMAGES = {
    "per_class.png": "quickstart_excitation.png",
    "summary.png": "quickstart_excitation_summary.png",
}
ANALYZED = "r=16 seed=0"
SPEC = ROOT / "experiments" / "quickstart.yaml"
BEGIN = re.compile(r"<!-- quickstart:begin[^>]*-->")
END = "<!-- quickstart:end -->"
# Columns of the report's table that the pages keep (the paper's columns stay in the report).
KEEP = (
    "reduction r",
    "setting",
    "seeds",
    "top-1 err (%) [95% CI]",
    "params (k)",
    "Δparams vs no SE",
    "MFLOPs",
    "Δ top-1 err vs no SE (pp)",
    "p Holm (p, test)",
)
# The claims of recommendation.md that the pages quote after its verdict and decision table.
QUOTED = ("Does SE help", "Seeds were raced", "Stopped early")


@dataclass
class Results:
    """What the commands printed and wrote, as the two blocks need it."""

    report_out: str  # what `selab report quickstart` printed
    recommendation_md: str  # the report's recommendation.md
    table: str  # the varied axis' table, trimmed to KEEP
    run_s: float  # wall time of `selab run`
    spec_text: str  # experiments/quickstart.yaml
    summary_csv: str  # `selab analyze`'s summary.csv of the analysed trial
    storage_mb: float  # size of the sweep's storage folder


def run(args: list[str], cwd: Path) -> tuple[str, float]:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout, time.perf_counter() - start


def trimmed_table(markdown: str) -> str:
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
    header = cells[0]
    keep = [header.index(c) for c in KEEP if c in header]
    out = [
        "| " + " | ".join(header[i] for i in keep) + " |",
        "|" + "|".join("---" for _ in keep) + "|",
    ]
    out += ["| " + " | ".join(row[i] for i in keep) + " |" for row in cells[2:]]
    return "\n".join(out)


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def recommendation(results: Results) -> str:
    """The report's answer as a Markdown quote: the verdict of recommendation.md (its bold
    line), its decision table, then the claims in QUOTED."""
    lines = results.recommendation_md.splitlines()
    verdict = next(
        (line.strip("*") for line in lines if line.startswith("**") and line.endswith("**")), None
    )
    if verdict is None:
        sys.exit("recommendation.md has no verdict (a **bold** line): has its layout changed?")
    table = [line for line in lines if line.startswith("|")]
    claims = [line[2:] for line in lines if line.startswith("- ") and line[2:].startswith(QUOTED)]
    quoted = [f"> {verdict}", ">", *(f"> {row}" for row in table)]
    for claim in claims:
        quoted += [">", f"> {claim}"]
    return "\n".join(quoted)


def decision_rule(results: Results) -> str:
    out = results.report_out
    lines = out[out.index("Decision rule") :].splitlines()
    return "\n".join(
        line for line in lines if line.startswith("Decision rule") or re.match(r"\d\. ", line)
    )


def run_settings(results: Results) -> str:
    """'8 epochs per trial with `seeds: {...}`', read from the spec."""
    seeds = re.search(r"^seeds:.*$", results.spec_text, re.M)
    epochs = re.search(r"^\s*epochs:\s*(\d+)", results.spec_text, re.M)
    seeds_text = seeds.group(0).split("#")[0].strip() if seeds else "seeds"
    return f"{epochs.group(1) if epochs else '?'} epochs per trial with `{seeds_text}`"


def excitation_text(results: Results, images: str) -> str:
    """The analysis paragraph: what `selab analyze` measured per block, and the footprint."""
    rows = list(csv.DictReader(io.StringIO(results.summary_csv)))
    lines = [
        "| block | channels | mean excitation | spread across classes | near 1 (share) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['block']} | {r['channels']} | {float(r['mean']):.3f} | "
        f"{float(r['class_spread']):.3f} | {float(r['saturated_high']):.2f} |"
        for r in rows
    ]
    table = "\n".join(lines)
    return f"""`selab analyze quickstart --trials "{ANALYZED}"` (the paper's Sec. 7.2 on the
trained r=16 network; the last gated unit of each stage, over the validation split):

{table}

![per-class mean excitations]({images}{EXCITATION_IMAGES["per_class.png"]})
![class spread and saturation per block]({images}{EXCITATION_IMAGES["summary.png"]})

The sweep's storage folder (`selab_runs/quickstart`: Ray's state and one final checkpoint per
finished trial, which holds its trained network) takes {results.storage_mb:.1f} MB."""


def docs_block(results: Results, images: str = "images/") -> str:
    """The whole block, for docs/quickstart.md."""
    return f"""`selab run` prints Ray Tune's progress table and ends with a summary;
`selab report quickstart` writes `selab_reports/quickstart/` (`report.html`, PNG plots, CSV
and Markdown tables, `recommendation.md`) and logs the same files under `report/` of the
sweep's parent run. The quickstart trains {run_settings(results)};
`selab run` took {results.run_s:.0f} s here (2 CPU cores). The table for the varied axis (from
`table_arch_se_reduction.md`, trimmed to the measured columns):

{results.table}

The recommendation, as `selab report quickstart` prints it (and writes it to
`recommendation.md`):

{recommendation(results)}

![accuracy vs r]({images}{ACC_IMAGE})

{excitation_text(results, images)}

How the report decides (printed with every report):

```text
{decision_rule(results)}
```

This block, the tables and the figures are written by `python scripts/readme_quickstart.py`
from what the commands print."""


def readme_block(results: Results, images: str = "docs/images/") -> str:
    """The short block, for README.md: the answer, the table, the plot."""
    return f"""The quickstart trains {run_settings(results)};
`selab run` took {results.run_s:.0f} s here (2 CPU cores). `selab report quickstart` writes
`selab_reports/quickstart/` (`report.html`, PNG plots, CSV and Markdown tables) and prints
its answer:

{recommendation(results)}

{results.table}

![accuracy vs r]({images}{ACC_IMAGE})

Written by `python scripts/readme_quickstart.py` from what the commands print."""


def replace_block(page: Path, text: str) -> None:
    """Put text between the page's quickstart:begin and quickstart:end markers."""
    content = page.read_text(encoding="utf-8")
    begin = BEGIN.search(content)
    end = content.find(END)
    if begin is None or end < begin.end():
        sys.exit(f"{page} has no quickstart:begin ... quickstart:end block")
    page.write_text(content[: begin.end()] + "\n" + text + "\n" + content[end:], encoding="utf-8")


def run_quickstart(work: Path) -> tuple[Results, dict[Path, Path]]:
    """Run the three commands in work; the results and {figure made: its docs/images/ path}."""
    selab = shutil.which("selab") or sys.exit("selab is not installed (pip install -e .)")
    shutil.copytree(ROOT / "experiments", work / "experiments")
    _, run_s = run([selab, "run", "experiments/quickstart.yaml"], work)
    report_out, _ = run([selab, "report", "quickstart"], work)
    run([selab, "analyze", "quickstart", "--trials", ANALYZED], work)
    out = work / "selab_reports" / "quickstart"
    analyzed = out / "excitation" / ANALYZED.replace("=", "").replace(" ", "_")
    results = Results(
        report_out=report_out,
        recommendation_md=(out / "recommendation.md").read_text(encoding="utf-8"),
        table=trimmed_table((out / "table_arch_se_reduction.md").read_text(encoding="utf-8")),
        run_s=run_s,
        spec_text=SPEC.read_text(encoding="utf-8"),
        summary_csv=(analyzed / "summary.csv").read_text(encoding="utf-8"),
        storage_mb=folder_mb(work / "selab_runs" / "quickstart"),
    )
    figures = {out / "acc_vs_r.png": IMAGES / ACC_IMAGE}
    figures.update({analyzed / made: IMAGES / kept for made, kept in EXCITATION_IMAGES.items()})
    return results, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the blocks, change nothing")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="run in this new folder and keep it (its runs, MLflow store and "
        "report), e.g. to browse them with `selab ui` there",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            work = args.keep.resolve()
        results, figures = run_quickstart(work)
        if args.check:
            print(
                f"README.md:\n\n{readme_block(results)}\n\n"
                f"docs/quickstart.md:\n\n{docs_block(results)}"
            )
            return 0
        IMAGES.mkdir(parents=True, exist_ok=True)
        for made, kept in figures.items():
            shutil.copyfile(made, kept)
    replace_block(README, readme_block(results))
    replace_block(QUICKSTART_PAGE, docs_block(results))
    print(f"rewrote the quickstart blocks of {README} and {QUICKSTART_PAGE}, and {IMAGES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
