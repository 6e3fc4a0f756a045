"""How long a user waits for each `selab` command that does not train, median of several runs.

    python -m benchmarks.cli_latency [--repeats 5]

Each command runs as a fresh process, as a user types it, from the repository root. The
reference column is what the same command took before start-up was made lazy (the same kind of
2-core machine, idle), so the ratio shows what changed.
"""

from __future__ import annotations

import argparse
import glob
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELAB = [sys.executable, "-m", "runners.cli"]

# (label, arguments, seconds before the change or None)
COMMANDS: list[tuple[str, list[str], float | None]] = [
    ("selab --help", ["--help"], 2.6),
    ("selab run --help", ["run", "--help"], None),
    (
        "selab validate experiments/*.yaml",
        ["validate", *sorted(glob.glob("experiments/*.yaml"))],
        3.0,
    ),
    ("selab cost --backbone resnet50 --se", ["cost", "--backbone", "resnet50", "--se"], 7.6),
    (
        "selab cost --backbone cifar_resnet20 --se",
        ["cost", "--backbone", "cifar_resnet20", "--se"],
        None,
    ),
]


def time_command(args: list[str], repeats: int) -> tuple[list[float], int]:
    times, code = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run(SELAB + args, cwd=ROOT, capture_output=True)
        times.append(time.perf_counter() - start)
        code = code or result.returncode
    return times, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'command':<44} {'median s':>9} {'IQR s':>13} {'before s':>9} {'ratio':>6}")
    for label, command, before in COMMANDS:
        times, code = time_command(command, args.repeats)
        quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
        median = statistics.median(times)
        ref = f"{before:.1f}" if before else "-"
        ratio = f"{median / before:.2f}" if before else "-"
        note = "" if code in (0, 2) else f"  (exit {code})"
        print(
            f"{label:<44} {median:>9.2f} {quartiles[0]:>6.2f}-{quartiles[2]:<6.2f} "
            f"{ref:>9} {ratio:>6}{note}"
        )


if __name__ == "__main__":
    main()
