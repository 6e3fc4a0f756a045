"""What `selab run` costs on top of the training itself.

Runs one small grid sweep twice on the same machine, in one invocation:

1. bare: the same trainings back to back in this process (build the network, train, evaluate;
   no Ray, no MLflow, no cost counting), with all cores;
2. sweep: `run_sweep` on a fresh local Ray, `--concurrency` trials at a time, one core each,
   logging to a fresh SQLite MLflow store.

Prints the ratio of wall times (sweep / bare) and where the sweep's fixed cost goes: Ray start,
per-trial setup (network build, fvcore cost, dataset load; reported by the trials themselves),
time inside a trial not spent in epochs (checkpoints, reporting), and the driver's share.

    python -m benchmarks.sweep_overhead [--trials 4] [--epochs 6] [--concurrency 2]
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

from runners.spec.load import parse_spec
from runners.spec.points import grid_points, resolve_trial
from runners.spec.sweep import SweepSpec
from runners.trial.data.load import load_splits
from runners.trial.training import Trainer
from search_space import build_model


def make_spec(trials: int, epochs: int, concurrency: int) -> SweepSpec:
    reductions = [2, 4, 8, 16, 1, 3, 5, 6][:trials]
    return parse_spec(
        {
            "name": "overhead",
            "data": {"name": "digits"},
            "arch": {"backbone": "cifar_resnet20", "se": {"reduction": 16}},
            "train": {"epochs": epochs, "batch_size": 64, "lr": 0.1, "schedule": "onecycle"},
            "seeds": [0],
            "search": {"kind": "grid", "grid": {"arch.se.reduction": reductions}},
            "resources": {"cpus_per_trial": 1, "max_concurrent": concurrency},
        }
    )


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

    from runners.sweep.run import run_sweep
    from runners.tracking.schema import open_parent_run

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    start = time.perf_counter()
    # A new SQLite store creates its tables once (a user's store already has them): timed
    # apart, with a throwaway parent run.
    open_parent_run(spec, spec.to_yaml(), uri, str(workdir / "unused"))
    store_s = time.perf_counter() - start

    start = time.perf_counter()
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING")
    ray_start = time.perf_counter() - start
    fit_start = time.time()
    try:
        result = run_sweep(spec, tracking_uri=uri, storage=str(workdir / "runs"))
    finally:
        ray.shutdown()
    wall = time.perf_counter() - start
    trials = trial_results(result.folder)
    starts = [rows[0]["timestamp"] - rows[0]["time_this_iter_s"] for rows in trials]
    # Trials that found their worker warm (reused actor, dataset in memory) show the steady
    # per-trial cost; the first trial on each worker also pays its imports and data load.
    warm = [rows for rows in trials if rows[0].get("setup.data_s", 1.0) < 0.01] or trials
    return {
        "wall_s": wall,
        "store_create_s": store_s,
        "ray_start_s": ray_start,
        "first_trial_start_s": min(starts) - fit_start,
        "statuses": dict(result.statuses),
        "trials": len(trials),
        "setup_s": {
            key: statistics.mean(rows[0].get(f"setup.{key}_s", 0.0) for rows in trials)
            for key in ("build", "cost", "data")
        },
        "first_iteration_extra_s": statistics.mean(
            rows[0]["time_this_iter_s"] - rows[0]["epoch_time_s"]
            for rows in trials
            if rows not in warm
        )
        if len(warm) < len(trials)
        else 0.0,
        "warm_trial_overhead_s": statistics.mean(
            rows[-1]["time_total_s"] - sum(r["epoch_time_s"] for r in rows) for rows in warm
        ),
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
    print(
        f"\n{args.trials} trials x {args.epochs} epochs (SE-ResNet-20 on digits), "
        f"{cores} cores, sweep concurrency {args.concurrency}"
    )
    print(
        f"bare loop            {bare:7.1f} s  ({per_trial_bare:.1f} s per trial, {cores} threads)"
    )
    print(f"selab run            {s['wall_s']:7.1f} s  ({s['statuses']})")
    print(f"ratio sweep / bare   {report['ratio_sweep_over_bare']:7.3f}")
    print("fixed cost, once per sweep (in the sweep's wall time):")
    print(f"  Ray start                              {s['ray_start_s']:6.2f} s")
    print(
        f"  driver until the first trial starts    {s['first_trial_start_s']:6.2f} s "
        f"(imports, MLflow parent run, workers)"
    )
    print(
        f"  first trial per worker, beyond epochs  {s['first_iteration_extra_s']:6.2f} s "
        f"(imports, dataset load)"
    )
    print("fixed cost, per trial:")
    print(f"  build network                          {s['setup_s']['build']:6.2f} s")
    print(f"  fvcore cost                            {s['setup_s']['cost']:6.2f} s")
    print(
        f"  on a warm worker, all but the epochs   {s['warm_trial_overhead_s']:6.2f} s "
        f"(of {s['trial_time_s']:.1f} s per trial)"
    )
    print(f"once per new MLflow store (not in the sweep's time): {s['store_create_s']:.2f} s")


if __name__ == "__main__":
    main()
