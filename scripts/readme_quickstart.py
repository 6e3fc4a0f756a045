"""Regenerate the README's quickstart block and its figure from what the commands print.

Runs the README's commands (`selab run experiments/quickstart.yaml`, `selab report quickstart`,
then `selab analyze quickstart --trials "r=16 seed=0"`) in a fresh temporary folder, then
rewrites the block between the `quickstart:begin` and `quickstart:end` markers of README.md and
its figures in docs/images/, so that the README's table, plots, recommendation and excitation
figures cannot drift from what the same commands print.

    python scripts/readme_quickstart.py            # run, then rewrite README and image
    python scripts/readme_quickstart.py --check    # run, print the block, change nothing
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
IMAGE = ROOT / "docs" / "images" / "quickstart_acc_vs_r.png"
EXCITATION_IMAGES = {"per_class.png": ROOT / "docs" / "images" / "quickstart_excitation.png",
                     "summary.png": ROOT / "docs" / "images" / "quickstart_excitation_summary.png"}
ANALYZED = "r=16 seed=0"
SPEC = ROOT / "experiments" / "quickstart.yaml"
BEGIN = re.compile(r"<!-- quickstart:begin[^>]*-->")
END = "<!-- quickstart:end -->"
# Columns of the report's table that the README keeps (the paper's columns stay in the report).
KEEP = ("reduction r", "setting", "seeds", "top-1 err (%) [95% CI]", "params (k)",
        "Δparams vs no SE", "MFLOPs", "Δ top-1 err vs no SE (pp)", "p Holm (p, test)")


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
    out = ["| " + " | ".join(header[i] for i in keep) + " |",
           "|" + "|".join("---" for _ in keep) + "|"]
    out += ["| " + " | ".join(row[i] for i in keep) + " |" for row in cells[2:]]
    return "\n".join(out)


def excitation_text(summary_csv: str, storage_mb: float) -> str:
    """The analysis paragraph: what `selab analyze` measured per block, and the footprint."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(summary_csv)))
    lines = ["| block | channels | mean excitation | spread across classes | near 1 (share) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['block']} | {r['channels']} | {float(r['mean']):.3f} | "
              f"{float(r['class_spread']):.3f} | {float(r['saturated_high']):.2f} |"
              for r in rows]
    table = "\n".join(lines)
    return f"""`selab analyze quickstart --trials "{ANALYZED}"` (the paper's Sec. 7.2 on the
trained r=16 network; the last gated unit of each stage, over the validation split):

{table}

![per-class mean excitations](docs/images/quickstart_excitation.png)
![class spread and saturation per block](docs/images/quickstart_excitation_summary.png)

The sweep's storage folder (`selab_runs/quickstart`: Ray's state and one final checkpoint per
finished trial, which holds its trained network) takes {storage_mb:.1f} MB."""


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def block(report_out: str, table: str, run_s: float, spec_text: str, analysis: str) -> str:
    lines = [line for line in report_out.splitlines()
             if line.startswith(("Which configuration", "Does SE help", "Seeds were raced",
                                 "Stopped early"))]
    rule_lines = report_out[report_out.index("Decision rule"):].splitlines()
    rule = "\n".join(line for line in rule_lines
                     if line.startswith("Decision rule") or re.match(r"\d\. ", line))
    seeds = re.search(r"^seeds:.*$", spec_text, re.M)
    epochs = re.search(r"^\s*epochs:\s*(\d+)", spec_text, re.M)
    quoted = "\n".join(f"> {line}\n>" for line in lines).rstrip(">\n")
    seeds_text = seeds.group(0).split("#")[0].strip() if seeds else "seeds"
    epochs_text = epochs.group(1) if epochs else "?"
    return f"""`selab run` prints Ray Tune's progress table and ends with a summary;
`selab report quickstart` writes `selab_reports/quickstart/` (`report.html`, PNG plots, CSV
and Markdown tables, `recommendation.md`) and logs the same files under `report/` of the
sweep's parent run. The quickstart trains {epochs_text} epochs per trial with `{seeds_text}`;
`selab run` took {run_s:.0f} s here (2 CPU cores). The table for the varied axis (from
`table_arch_se_reduction.md`, trimmed to the measured columns):

{table}

The recommendation, as `selab report quickstart` prints it:

{quoted}

![accuracy vs r](docs/images/quickstart_acc_vs_r.png)

{analysis}

How the report decides (printed with every report):

```text
{rule}
```

This block, the tables and the figures are written by `python scripts/readme_quickstart.py`
from what the commands print."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the block, change nothing")
    args = parser.parse_args()
    selab = shutil.which("selab") or sys.exit("selab is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "experiments", work / "experiments")
        _, run_s = run([selab, "run", "experiments/quickstart.yaml"], work)
        report_out, _ = run([selab, "report", "quickstart"], work)
        run([selab, "analyze", "quickstart", "--trials", ANALYZED], work)
        out = work / "selab_reports" / "quickstart"
        analyzed = out / "excitation" / ANALYZED.replace("=", "").replace(" ", "_")
        table = trimmed_table((out / "table_arch_se_reduction.md").read_text(encoding="utf-8"))
        analysis = excitation_text((analyzed / "summary.csv").read_text(encoding="utf-8"),
                                   folder_mb(work / "selab_runs" / "quickstart"))
        text = block(report_out, table, run_s, SPEC.read_text(encoding="utf-8"), analysis)
        if args.check:
            print(text)
            return 0
        IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "acc_vs_r.png", IMAGE)
        for name, target in EXCITATION_IMAGES.items():
            shutil.copyfile(analyzed / name, target)
    readme = README.read_text(encoding="utf-8")
    begin = BEGIN.search(readme)
    end = readme.index(END)
    if begin is None or end < begin.end():
        sys.exit("README.md has no quickstart:begin ... quickstart:end block")
    README.write_text(readme[:begin.end()] + "\n" + text + "\n" + readme[end:], encoding="utf-8")
    print(f"rewrote the quickstart block of {README} and {IMAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
