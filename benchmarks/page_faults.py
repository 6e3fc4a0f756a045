"""What glibc's malloc setting does to a training step: page faults and time per step.

For each setting - glibc's malloc as it comes, and with freed memory kept
(`runners.trial.memory.keep_freed_memory`, as selab's trial workers run) - a fresh process trains
ResNet-50, SE-ResNet-50 and the same SE network with the fast block (batch 8, 224x224, SGD)
step by step in alternation, and prints per network the median step time and the median
number of minor page faults per step (memory the allocator gave back to the OS and the step
maps again, zeroed by the kernel).

    python -m benchmarks.page_faults [--steps 7] [--threads 2]

A fresh process per setting, because glibc's thresholds cannot be put back once set; so the
two settings' times are from different processes, the ratios within one process are paired.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def measure(steps: int, threads: int, keep: bool) -> dict[str, dict[str, float]]:
    """In this process: per network, median step time (ms) and minor faults per step."""
    import torch
    from se_overhead import our_row, training_step

    from runners.trial.memory import keep_freed_memory

    if keep and not keep_freed_memory():
        raise SystemExit("no glibc mallopt in this process")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    train = {
        name: training_step(model, torch.contiguous_format, 8)
        for name, model in our_row("avg", "standard", 16).items()
    }
    for step in train.values():  # warm-up: oneDNN primitives, the heap's first growth
        step()
        step()
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in train}
    names = list(train)
    for i in range(steps):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            train[name]()
            samples[name].append(
                (
                    time.perf_counter() - start,
                    resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
                )
            )
    return {
        name: {
            "ms": 1000 * statistics.median(s for s, _ in runs),
            "faults": statistics.median(f for _, f in runs),
        }
        for name, runs in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=7, help="steps per network")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=("default", "kept"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.steps, args.threads, args.child == "kept")))
        return
    print(f"training step, batch 8, {args.threads} threads, median of {args.steps} steps each")
    print(
        f"{'malloc':22s} {'network':8s} {'ms/step':>9s} {'/ plain':>8s} {'minor faults/step':>18s}"
    )
    for setting in ("default", "kept"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                setting,
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout
        result = json.loads(out.splitlines()[-1])
        label = "as it comes" if setting == "default" else "freed memory kept"
        for name, r in result.items():
            ratio = r["ms"] / result["plain"]["ms"]
            print(f"{label:22s} {name:8s} {r['ms']:9.0f} {ratio:8.3f} {r['faults']:18.0f}")


if __name__ == "__main__":
    main()
