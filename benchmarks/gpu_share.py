"""Fractional GPUs: do several small trials on one GPU train more images per second?

Runs two sweeps of CIFAR-shaped `synthetic` data (3x32x32, 10 classes) on SE-ResNet-56 through
`run_sweep`, one after the other in one invocation:

- shared: 4 trials at gpus_per_trial 0.25, all at once on one GPU;
- alone: 1 trial at gpus_per_trial 1.

Prints images/s per trial and in total for each (the mean over epochs after the first, which
pays for cuDNN autotuning), and the ratio total shared / alone. Needs a CUDA GPU.

    python benchmarks/gpu_share.py [--epochs 4] [--train-size 20000] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from sweep_overhead import trial_results  # this folder's sibling script

from runners.spec.load import parse_spec


def spec_for(trials: int, gpus: float, args: argparse.Namespace) -> Any:
    return parse_spec({
        "name": f"gpu-share-{trials}x{gpus:g}",
        "data": {"name": "synthetic", "image_size": 32, "num_classes": 10, "channels": 3,
                 "train_size": args.train_size, "val_size": 2000},
        "arch": {"backbone": "cifar_resnet56", "se": {"reduction": 16}},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": 0.1,
                  "amp": "auto", "channels_last": "auto"},
        "seeds": list(range(trials)),
        "search": {"kind": "grid", "grid": {}},
        "resources": {"cpus_per_trial": 2, "gpus_per_trial": gpus},
    })


def images_per_s(folder: Path) -> list[float]:
    """Per trial, the mean images/s over its epochs after the first."""
    per_trial = []
    for rows in trial_results(folder):
        steady = [r["images_per_s"] for r in rows[1:]] or [rows[-1]["images_per_s"]]
        per_trial.append(statistics.mean(steady))
    return per_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    import ray
    import torch

    from runners.sweep.run import run_sweep

    if not torch.cuda.is_available():
        raise SystemExit("gpu_share: no CUDA GPU here")
    ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, trials, gpus in (("shared", 4, 0.25), ("alone", 1, 1.0)):
            spec = spec_for(trials, gpus, args)
            result = run_sweep(spec, tracking_uri=f"sqlite:///{tmp}/mlflow.db",
                               storage=f"{tmp}/runs")
            results[label] = {"per_trial": images_per_s(result.folder),
                              "statuses": dict(result.statuses)}
    ray.shutdown()
    print(f"\nSE-ResNet-56, synthetic 3x32x32, batch {args.batch_size}, "
          f"{torch.cuda.get_device_name()}")
    for label, r in results.items():
        total = sum(r["per_trial"])
        per = ", ".join(f"{v:,.0f}" for v in r["per_trial"])
        print(f"{label:7s} {len(r['per_trial'])} trial(s): {per} images/s each, "
              f"{total:,.0f} in total ({r['statuses']})")
    ratio = sum(results["shared"]["per_trial"]) / sum(results["alone"]["per_trial"])
    print(f"total images/s, 4 x 0.25 GPU / 1 x 1 GPU: {ratio:.2f}")


if __name__ == "__main__":
    main()
