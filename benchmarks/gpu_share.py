"""Fractional GPUs: do several small trials on one GPU train more images per second?

Two sweeps of CIFAR-shaped `synthetic` data (3x32x32, 10 classes) on SE-ResNet-56 and the same
network without SE, through `run_sweep` (what `selab run` calls), one after the other:

- shared: `--shared-trials` trials (half SE, half plain) at gpus_per_trial `--share`, all at
  once on one GPU;
- alone: one SE and one plain trial at gpus_per_trial 1, one after the other.

Prints images/s per trial (the mean over its epochs after the first, which pays for cuDNN's
autotuning) and in total, the GPU's utilisation sampled through NVML every 0.2 s while each
sweep runs, the SE/plain throughput ratio of each sweep, and the latency and throughput
metrics the trials logged to MLflow. Needs a CUDA GPU.

    python -m benchmarks.gpu_share [--shared-trials 8] [--share 0.25] [--epochs 3]
        [--train-size 20000] [--batch-size 256] [--json OUT]

`--cpu` runs the same plumbing on a CPU with no GPU share and no NVML, to try the script out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.sweep_overhead import trial_results
from runners.spec.load import parse_spec


def spec_for(name: str, seeds: int, gpus: float, cpus: float, args: argparse.Namespace) -> Any:
    return parse_spec(
        {
            "name": name,
            "data": {
                "name": "synthetic",
                "image_size": 32,
                "num_classes": 10,
                "channels": 3,
                "train_size": args.train_size,
                "val_size": 2000,
            },
            "arch": {"backbone": "cifar_resnet56", "se": {"reduction": 16}},
            "train": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": 0.1,
                "amp": "auto",
                "channels_last": "auto",
            },
            "seeds": list(range(seeds)),
            "search": {"kind": "grid", "grid": {"arch.se.enabled": [True, False]}},
            "resources": {"cpus_per_trial": cpus, "gpus_per_trial": gpus},
        }
    )


class Utilisation:
    """GPU utilisation and memory in use, sampled through NVML in a thread."""

    def __init__(self, every_s: float = 0.2) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.every_s = every_s
        self.samples: list[tuple[float, int, float]] = []  # (time, util %, memory GiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu
            used = self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**30
            self.samples.append((time.monotonic(), int(util), used))
            self._stop.wait(self.every_s)

    def __enter__(self) -> Utilisation:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        """Mean and peak utilisation over the samples where the GPU did anything (the sweep's
        start-up and tear-down, with the GPU idle, left out), and peak memory in use."""
        busy = [u for _, u, _ in self.samples if u > 0] or [0]
        return {
            "util_mean_busy": statistics.mean(busy),
            "util_max": max(busy),
            "busy_fraction": len([u for _, u, _ in self.samples if u > 0])
            / max(1, len(self.samples)),
            "memory_max_gib": max((m for _, _, m in self.samples), default=0.0),
        }


class NoSampling(Utilisation):
    """--cpu: nothing to sample."""

    def __init__(self) -> None:
        self.samples = []

    def __enter__(self) -> NoSampling:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def per_trial(folder: Path) -> list[dict[str, Any]]:
    """Per trial: SE or plain, and its mean images/s over the epochs after the first."""
    out = []
    for rows in trial_results(Path(folder)):
        steady = [r["images_per_s"] for r in rows[1:]] or [rows[-1]["images_per_s"]]
        se = rows[0]["config"]["point"].get("arch.se.enabled", True)
        out.append({"se": bool(se), "images_per_s": statistics.mean(steady)})
    return out


def logged_timing(uri: str, experiment: str) -> dict[str, dict[str, float]]:
    """The latency/throughput metrics the trials logged, per label (SE or plain)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    timing: dict[str, dict[str, float]] = {}
    for run in client.search_runs([exp.experiment_id]):
        if run.data.tags.get("selab.role") != "trial":
            continue
        label = run.data.tags.get("selab.label", "?")
        timing[label] = {
            k: v for k, v in run.data.metrics.items() if "latency" in k or "throughput" in k
        }
    return timing


def run_phase(
    label: str, seeds: int, gpus: float, args: argparse.Namespace, tmp: str
) -> dict[str, Any]:
    from runners.sweep.run import run_sweep

    cpus = max(1, (os.cpu_count() or 2) // max(1, 2 * seeds)) if gpus < 1 else 2
    spec = spec_for(f"gpu-share-{label}", seeds, 0.0 if args.cpu else gpus, cpus, args)
    uri = f"sqlite:///{tmp}/mlflow.db"
    began = time.perf_counter()
    with NoSampling() if args.cpu else Utilisation() as util:
        result = run_sweep(spec, tracking_uri=uri, storage=f"{tmp}/runs")
    trials = per_trial(Path(result.folder))
    return {
        "trials": trials,
        "gpus_per_trial": gpus,
        "cpus_per_trial": cpus,
        "statuses": dict(result.statuses),
        "wall_s": time.perf_counter() - began,
        "gpu": util.summary(),
        "timing": logged_timing(uri, spec.name),
    }


def describe(label: str, phase: dict[str, Any]) -> list[str]:
    trials = phase["trials"]
    se = [t["images_per_s"] for t in trials if t["se"]]
    plain = [t["images_per_s"] for t in trials if not t["se"]]
    together = "at once" if phase["gpus_per_trial"] < 1 else "one after the other"
    lines = [
        f"{label}: {len(trials)} trials at {phase['gpus_per_trial']:g} GPU, {together} "
        f"({phase['statuses']}, {phase['wall_s']:.0f} s)",
        f"  images/s per trial: SE {', '.join(f'{v:,.0f}' for v in se)}; plain "
        f"{', '.join(f'{v:,.0f}' for v in plain)}",
        f"  SE/plain throughput: {statistics.mean(se) / statistics.mean(plain):.3f}",
        f"  GPU utilisation while busy {phase['gpu']['util_mean_busy']:.0f}% (max "
        f"{phase['gpu']['util_max']}%, busy {phase['gpu']['busy_fraction']:.0%} of the sweep), "
        f"memory up to {phase['gpu']['memory_max_gib']:.1f} GiB",
    ]
    if phase["gpus_per_trial"] < 1:
        lines.insert(2, f"  images/s in total, all trials at once: {sum(se) + sum(plain):,.0f}")
    for name, metrics in sorted(phase["timing"].items()):
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        lines.append(f"  logged by {name}: {shown or 'no latency/throughput metrics'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared-trials", type=int, default=8)
    parser.add_argument("--share", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--json", default=None)
    parser.add_argument("--cpu", action="store_true", help="try the plumbing on a CPU")
    args = parser.parse_args()

    import ray
    import torch

    if not torch.cuda.is_available() and not args.cpu:
        raise SystemExit("gpu_share: no CUDA GPU here (--cpu tries the script on a CPU)")
    ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    phases = {}
    with tempfile.TemporaryDirectory() as tmp:
        phases["shared"] = run_phase("shared", args.shared_trials // 2, args.share, args, tmp)
        phases["alone"] = run_phase("alone", 1, 1.0, args, tmp)
    ray.shutdown()
    where = "CPU" if args.cpu else torch.cuda.get_device_name()
    print(
        f"\nSE-ResNet-56 vs ResNet-56, synthetic 3x32x32, batch {args.batch_size}, "
        f"{args.epochs} epochs of {args.train_size} images, {where}"
    )
    for label, phase in phases.items():
        print("\n".join(describe(label, phase)))
    shared = sum(t["images_per_s"] for t in phases["shared"]["trials"])
    alone = statistics.mean(t["images_per_s"] for t in phases["alone"]["trials"])
    print(
        f"total images/s, {args.shared_trials} x {args.share:g} GPU / one trial at 1 GPU: "
        f"{shared / alone:.2f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"device": where, "phases": phases}, indent=2))


if __name__ == "__main__":
    main()
