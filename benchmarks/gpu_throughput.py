"""SE-ResNet-50 against ResNet-50: training throughput on a GPU, eager and `torch.compile`d.

The paper's figure is a training step of 209 ms against 190 ms per 256-image minibatch (8 Titan
X, +10%); public tables put SE-ResNet-50 13% slower than ResNet-50 for inference on current
GPUs. This measures selab's networks the way a GPU trial trains them: batch 256 at 224x224,
bf16 autocast, channels-last, SGD with momentum, one optimizer step per batch, on random
images and labels already on the GPU (no data loading). Rows: selab's ResNet-50 and SE-ResNet-50
(r=16), and timm's `resnet50` / `seresnet50` as a reference, each eager and compiled.

Method: per row, the two networks are timed alternately, `--rounds` rounds of `--steps`
steps each after a warm-up (which also pays for cuDNN's autotuning and for compilation, whose
time is printed), with CUDA events around each round; the SE/plain ratio is taken per round
and its median and range printed, so clock drift hits both sides alike.

    python -m benchmarks.gpu_throughput [--batch-size 256] [--rounds 5] [--steps 10]
        [--rows selab,timm] [--modes eager,compiled] [--json OUT]

On a CPU (for trying it out) it runs the same code at `--batch-size 2 --image-size 64`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Step = Callable[[], None]


def selab_pair(num_classes: int, image_size: int) -> tuple[nn.Module, nn.Module]:
    from search_space import ArchConfig, build_model

    def net(se: bool) -> nn.Module:
        return build_model(
            ArchConfig.parse(
                {
                    "backbone": "resnet50",
                    "num_classes": num_classes,
                    "input_size": image_size,
                    "se": {"enabled": se, "reduction": 16},
                }
            )
        )

    return net(False), net(True)


def timm_pair(num_classes: int) -> tuple[nn.Module, nn.Module]:
    import timm

    return (
        timm.create_model("resnet50", num_classes=num_classes),
        timm.create_model("seresnet50", num_classes=num_classes),
    )


def train_step(
    model: nn.Module,
    batch: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    compiled: bool,
) -> Step:
    """One SGD step of `model` (bf16 autocast, channels-last) as a closure."""
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(forward(batch).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Step, steps: int, device: torch.device) -> float:
    """Seconds for `steps` steps (CUDA events on a GPU, a host clock after a sync elsewhere)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    _sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - began


def measure_pair(
    pair: tuple[nn.Module, nn.Module],
    args: argparse.Namespace,
    device: torch.device,
    compiled: bool,
) -> dict[str, Any]:
    """Images/s of plain and SE, alternated round by round, and the SE/plain time ratio."""
    torch.manual_seed(0)
    batch = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    batch = batch.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
    steps, warmup_s = {}, {}
    for name, model in zip(("plain", "se"), pair, strict=True):
        steps[name] = train_step(model, batch, labels, device, compiled)
        began = time.perf_counter()
        for _ in range(args.warmup):  # cuDNN autotuning, and compilation when compiled
            steps[name]()
        _sync(device)
        warmup_s[name] = time.perf_counter() - began
    seconds: dict[str, list[float]] = {"plain": [], "se": []}
    for _ in range(args.rounds):
        for name in ("plain", "se"):
            seconds[name].append(timed(steps[name], args.steps, device))
    ratios = [s / p for s, p in zip(seconds["se"], seconds["plain"], strict=True)]
    images = args.batch_size * args.steps
    return {
        "plain_img_s": images / statistics.median(seconds["plain"]),
        "se_img_s": images / statistics.median(seconds["se"]),
        "plain_step_ms": 1000 * statistics.median(seconds["plain"]) / args.steps,
        "se_step_ms": 1000 * statistics.median(seconds["se"]) / args.steps,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "warmup_s": warmup_s,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rows", default="selab,timm", help="selab, timm or both")
    parser.add_argument(
        "--modes", default="eager,compiled", help="eager, compiled or both (comma-separated)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    args.batch_size = args.batch_size or (256 if cuda else 2)
    args.image_size = args.image_size or (224 if cuda else 64)
    return args


def main() -> None:
    args = parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    modes = [mode == "compiled" for mode in args.modes.split(",")]
    rows = {}
    for source in args.rows.split(","):
        for compiled in modes:
            pair = (
                selab_pair(args.num_classes, args.image_size)
                if source == "selab"
                else timm_pair(args.num_classes)
            )
            label = f"{source} {'compiled' if compiled else 'eager'}"
            rows[label] = measure_pair(pair, args, device, compiled)
            r = rows[label]
            print(
                f"{label:15s} plain {r['plain_img_s']:8,.0f} img/s ({r['plain_step_ms']:.1f} "
                f"ms/step)  SE {r['se_img_s']:8,.0f} img/s ({r['se_step_ms']:.1f} ms/step)  "
                f"SE/plain time {r['ratio_median']:.3f} [{r['ratio_min']:.3f}, "
                f"{r['ratio_max']:.3f}]  warm-up {r['warmup_s']['plain']:.0f} s / "
                f"{r['warmup_s']['se']:.0f} s",
                flush=True,
            )
            del pair
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(
        f"\n{where}, torch {torch.__version__}, batch {args.batch_size} at "
        f"{args.image_size}x{args.image_size}, bf16 autocast, channels-last, SGD; "
        f"paper: 209/190 ms = 1.100 (training, 8 Titan X)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "device": where,
                    "torch": torch.__version__,
                    "batch": args.batch_size,
                    "rows": rows,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
