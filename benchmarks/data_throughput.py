"""How fast each data path feeds a training step, in images/s, beside the rate the step eats.

- in memory: CIFAR-shaped uint8 batches on the device (gather, random crop + flip, normalise),
  what every dataset below `data.memory_budget_mb` takes;
- streamed: a 224 px JPEG image folder read through torchvision (decode, random-resized crop,
  flip) by 1, 2 and N DataLoader worker processes, what an ImageNet-size folder takes;
- consumed: training steps of SE-ResNet-56 at 32 px and SE-ResNet-50 at 224 px on the same
  device (forward, backward, SGD step), the rate a data path must sustain.

    python -m benchmarks.data_throughput [--images 768] [--rounds 3] [--workers 1 2 4]
        [--device cuda] [--json]

Each rate is the median over rounds, with its spread (min-max). A worker's streamed rate
divides the step's rate to give the cores one GPU needs: an A100 trains ResNet-50 at roughly
2,500-3,000 images/s in bf16, so at ~150 images/s per worker it needs about 17-20 workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from runners.spec.data import DataConfig
from runners.trial.data.load import load_splits
from runners.trial.data.splits import DataSplits
from search_space import ArchConfig, build_model

A100_RESNET50_BF16 = (2500, 3000)  # images/s, for the cores-per-GPU estimate


def rate(run_epoch: Callable[[], int], rounds: int) -> tuple[float, float, float]:
    """(median, min, max) images/s over `rounds` timed calls, after one warm-up call."""
    run_epoch()
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        images = run_epoch()
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates), min(rates), max(rates)


def drain(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> int:
    images = 0
    for x, _ in batches:
        images += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images


def in_memory(device: torch.device, rounds: int, batch: int = 128) -> tuple[float, float, float]:
    g = torch.Generator().manual_seed(0)
    n = 50_000
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    splits = DataSplits(
        train_x=x.to(device),
        train_y=torch.randint(0, 10, (n,)).to(device),
        val_x=x[:10].to(device),
        val_y=torch.zeros(10, dtype=torch.int64, device=device),
        num_classes=10,
        in_channels=3,
        image_size=32,
        classes=[str(i) for i in range(10)],
        pad=4,
        flip=True,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )
    gen = torch.Generator(device=device).manual_seed(0)
    return rate(lambda: drain(splits.train_batches(batch, gen, True), device), rounds)


def write_jpegs(root: Path, images: int, classes: int = 8) -> None:
    """ImageNet-like files: 500x375 JPEGs (quality 90) of smooth noise."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (47, 63, 3), dtype=np.uint8)
    for i in range(images):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        shifted = np.roll(base, i, axis=1)
        im = Image.fromarray(shifted).resize((500, 375), Image.Resampling.BILINEAR)
        im.save(folder / f"{i}.jpg", quality=90)


def streamed(
    root: Path, workers: int, device: torch.device, rounds: int, batch: int = 64
) -> tuple[float, float, float]:
    cfg = DataConfig(
        name="imagefolder",
        root=str(root),
        image_size=224,
        memory_budget_mb=0,
        val_fraction=0.05,
        loader_workers=workers,
    )
    splits = load_splits(cfg, device)
    gen = torch.Generator(device=device).manual_seed(0)
    return rate(lambda: drain(splits.train_batches(batch, gen, True), device), rounds)


def consumed(
    backbone: str, size: int, batch: int, device: torch.device, rounds: int
) -> tuple[float, float, float]:
    arch = ArchConfig.parse(
        {"backbone": backbone, "input_size": size, "num_classes": 10 if size <= 32 else 1000}
    )
    model = build_model(arch).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, arch.num_classes, (batch,), device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    steps = 3 if device.type == "cpu" else 20

    def run() -> int:
        for _ in range(steps):
            with torch.autocast(
                device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None
            ):
                loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return steps * batch

    return rate(run, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=768, help="JPEGs in the streamed folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=sorted({1, 2, os.cpu_count() or 1})
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows: dict[str, tuple[float, float, float]] = {}
    rows["in memory, CIFAR-shaped uint8, batch 128"] = in_memory(device, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp), args.images)
        for workers in args.workers:
            rows[f"streamed 224 px JPEG, {workers} worker(s), batch 64"] = streamed(
                Path(tmp), workers, device, args.rounds
            )
    rows["consumed: SE-ResNet-56 train step, 32 px, batch 128"] = consumed(
        "cifar_resnet56", 32, 128, device, args.rounds
    )
    rows["consumed: SE-ResNet-50 train step, 224 px, batch 32"] = consumed(
        "resnet50", 224, 32 if device.type == "cuda" else 8, device, args.rounds
    )
    if args.json:
        print(
            json.dumps(
                {k: {"median": v[0], "min": v[1], "max": v[2]} for k, v in rows.items()}, indent=2
            )
        )
        return
    print(f"device: {device} ({torch.get_num_threads()} threads, {os.cpu_count()} cores)")
    print(f"| path | images/s (median over {args.rounds}) | min-max |\n|---|---|---|")
    for name, (median, lo, hi) in rows.items():
        print(f"| {name} | {median:,.0f} | {lo:,.0f}-{hi:,.0f} |")
    one = rows[f"streamed 224 px JPEG, {min(args.workers)} worker(s), batch 64"][0]
    per_worker = one / min(args.workers)
    lo, hi = (round(r / per_worker) for r in A100_RESNET50_BF16)
    print(
        f"\nAt {per_worker:,.0f} images/s per worker, an A100 training ResNet-50 in bf16 "
        f"({A100_RESNET50_BF16[0]:,}-{A100_RESNET50_BF16[1]:,} images/s) needs about "
        f"{lo}-{hi} such worker cores."
    )


if __name__ == "__main__":
    main()
