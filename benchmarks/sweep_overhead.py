"""What `selab run` costs on top of the training itself.

Runs one small grid sweep twice on the same machine, in one invocation:

1. bare: the same trainings back to back in this process (build the network, train, evaluate;
   no Ray, no MLflow, no cost counting), with all cores;
2. sweep: `run_sweep` on a fresh local Ray, `--concurrency` trials at a time, one core each,
   logging to a fresh SQLite MLflow store.

Prints the ratio of wall times (sweep / bare) and where the sweep's fixed cost goes: Ray start,
per-trial setup (network build, fvcore cost, dataset load; reported by the trials themselves),
time inside a trial not spent in epochs (checkpoints, reporting), and the driver's share.

    python benchmarks/sweep_overhead.py [--trials 4] [--epochs 6] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from runners.data import load_splits
from runners.points import grid_points, resolve_trial
from runners.spec import SweepSpec, parse_spec
from runners.training import Trainer
from search_space import build_model


def make_spec(trials: int, epochs: int, concurrency: int) -> SweepSpec:
    reductions = [2, 4, 8, 16, 1, 3, 5, 6][:trials]
    return parse_spec({
        "name": "overhead",
        "data": {"name": "digits"},
        "arch": {"backbone": "cifar_resnet20", "se": {"reduction": 16}},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 0.1, "schedule": "onecycle"},
        "seeds": [0],
        "search": {"kind": "grid", "grid": {"arch.se.reduction": reductions}},
        "resources": {"cpus_per_trial": 1, "max_concurrent": concurrency},
    })


def run_bare(spec: SweepSpec) -> float:
    """The sweep's trainings, back to back in this process; returns wall seconds."""
    start = time.perf_counter()
    for point in grid_points(spec):
        for seed in spec.seeds:
            settings = resolve_trial(spec, point.overrides, seed)
            torch.manual_seed(seed)
            model = build_model(settings.arch)
            splits = load_splits(settings.data, "cpu")
            trainer = Trainer(model, splits, settings.train, torch.device("cpu"), seed)
            while not trainer.done:
                trainer.run_epoch()
    return time.perf_counter() - start


def trial_results(folder: Path) -> list[list[dict[str, Any]]]:
    """Every trial's reported results, from the result.json files Ray wrote."""
    trials = []
    for path in sorted(folder.glob("*/result.json")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        trials.append(rows)
    return trials


def run_sweep_timed(spec: SweepSpec, workdir: Path, num_cpus: int) -> dict[str, Any]:
    import ray

    from runners.sweep import run_sweep

    start = time.perf_counter()
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
             logging_level="WARNING")
    ray_start = time.perf_counter() - start
    try:
        result = run_sweep(spec, tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
                           storage=str(workdir / "runs"))
    finally:
        ray.shutdown()
    wall = time.perf_counter() - start
    trials = trial_results(result.folder)
    setup = {key: statistics.mean(rows[0].get(f"setup.{key}_s", 0.0) for rows in trials)
             for key in ("build", "cost", "data")}
    in_trial = [rows[-1]["time_total_s"] - sum(r["epoch_time_s"] for r in rows)
                for rows in trials]
    return {
        "wall_s": wall,
        "ray_start_s": ray_start,
        "statuses": dict(result.statuses),
        "trials": len(trials),
        "setup_s": setup,
        "in_trial_overhead_s": statistics.mean(in_trial),
        "trial_time_s": statistics.mean(rows[-1]["time_total_s"] for rows in trials),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    spec = make_spec(args.trials, args.epochs, args.concurrency)

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    bare = run_bare(spec)
    with tempfile.TemporaryDirectory() as tmp:
        sweep = run_sweep_timed(spec, Path(tmp), num_cpus=args.concurrency)
    per_trial_bare = bare / args.trials
    report = {
        "bare_wall_s": bare,
        "bare_per_trial_s": per_trial_bare,
        "sweep": sweep,
        "ratio_sweep_over_bare": sweep["wall_s"] / bare,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    s = sweep
    print(f"\n{args.trials} trials x {args.epochs} epochs (SE-ResNet-20 on digits), "
          f"{cores} cores, sweep concurrency {args.concurrency}")
    print(f"bare loop            {bare:7.1f} s  ({per_trial_bare:.1f} s per trial, "
          f"{cores} threads)")
    print(f"selab run            {s['wall_s']:7.1f} s  ({s['statuses']})")
    print(f"ratio sweep / bare   {report['ratio_sweep_over_bare']:7.3f}")
    print("fixed cost:")
    print(f"  Ray start (once)                {s['ray_start_s']:6.2f} s")
    print(f"  per trial: build network        {s['setup_s']['build']:6.2f} s")
    print(f"  per trial: fvcore cost          {s['setup_s']['cost']:6.2f} s")
    print(f"  per trial: load dataset         {s['setup_s']['data']:6.2f} s")
    print(f"  per trial: in trial, not epochs {s['in_trial_overhead_s']:6.2f} s "
          f"(of {s['trial_time_s']:.1f} s; includes the setup above)")


if __name__ == "__main__":
    main()
