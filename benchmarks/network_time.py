"""FLOPs against measured time for one network: what a trial logs (search_space.timing), printed.

Builds the network of `--backbone` (SE on at `--reduction`, or `--attention`), counts its FLOPs
with fvcore (search_space.cost) and times it beside the plain network of the same shape, as a
trial does: latency at batch 1 and `--batch`, training throughput at `--train-batch`, per-stage
time at `--batch`, each network/plain ratio taken per round. Prints the totals and, per stage,
the share of FLOPs and of time, and what SE adds to each in FLOPs and in time.

    python -m benchmarks.network_time [--backbone cifar_resnet20 --input-size 8 --in-channels 1]
        [--batch 32] [--train-batch 64] [--budget-s 10] [--rounds 41] [--threads 2]
        [--device cpu|cuda] [--amp auto|on|off] [--channels-last auto|on|off] [--json OUT]

`--amp` and `--channels-last` follow `train.amp` and `train.channels_last` (auto: on for CUDA),
so on a GPU the default is what a trial trains in: bf16 autocast (fp16 before compute
capability 8.0) and channels-last. Example on a GPU: `python -m benchmarks.network_time
--backbone resnet50 --input-size 224 --num-classes 1000 --batch 256 --train-batch 256
--device cuda`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from search_space import ArchConfig
from search_space.cost import count_cost
from search_space.timing import Timing, TimingPlan, time_arch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="cifar_resnet20")
    parser.add_argument("--attention", default="se")
    parser.add_argument("--reduction", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=8)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32, help="the deployment batch")
    parser.add_argument("--train-batch", type=int, default=64, help="0: no training measure")
    parser.add_argument("--budget-s", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--amp", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    return parser.parse_args()


def plan_for(args: argparse.Namespace) -> TimingPlan:
    """The plan a trial with train.amp / train.channels_last = the flags would use."""
    from runners.trial.training import autocast_dtype

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # as the trial's Trainer sets it
    amp = args.amp == "on" or (args.amp == "auto" and cuda)
    capability = torch.cuda.get_device_capability(device) if cuda else None
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and cuda)
    return TimingPlan(
        device=device,
        batch_sizes=(1, args.batch) if args.batch > 1 else (1,),
        train_batch_size=args.train_batch or None,
        autocast_dtype=autocast_dtype(device.type, capability) if amp else None,
        memory_format=torch.channels_last if channels_last else torch.contiguous_format,
        budget_s=args.budget_s,
        max_rounds=args.rounds,
    )


def stage_rows(cost: dict[str, float], timing: dict[str, float]) -> list[dict[str, float]]:
    """Per stage: share of FLOPs and of stage time; SE's addition in FLOPs and in time."""
    stages = sorted({int(k[5:].split(".")[0]) for k in timing if k.endswith(".latency_ms")})
    total_ms = sum(timing[f"stage{s}.latency_ms"] for s in stages)
    rows = []
    for s in stages:
        flops, se_flops = cost[f"stage{s}.flops"], cost[f"stage{s}.se_flops"]
        ms, se_ms = timing[f"stage{s}.latency_ms"], timing[f"stage{s}.se_latency_ms"]
        rows.append(
            {
                "stage": s,
                "flops_share": flops / cost["flops"],
                "time_share": ms / total_ms,
                "se_flops_pct": 100 * se_flops / max(flops - se_flops, 1),
                "se_time_pct": 100 * se_ms / (ms - se_ms),
            }
        )
    return rows


def report(arch: ArchConfig, plan: TimingPlan, timing: Timing) -> dict[str, Any]:
    cost = count_cost(arch).as_metrics()
    metrics = timing.as_metrics()
    where = (
        torch.cuda.get_device_name(plan.device)
        if plan.device.type == "cuda"
        else (f"CPU, {torch.get_num_threads()} threads")
    )
    print(
        f"{arch.backbone}{arch.depth or ''} {arch.attention} r={arch.se.reduction} at "
        f"{arch.input_size}px, "
        f"{where}, dtype {plan.autocast_dtype or 'fp32'}, {plan.memory_format}, "
        f"{timing.rounds} rounds in {timing.seconds:.1f} s"
    )
    plain_flops = cost["flops"] - cost["se_flops"]
    plain_params = cost["params"] - cost["se_params"]
    print(
        f"FLOPs: {cost['flops'] / 1e6:.3f} M, +{100 * cost['se_flops'] / plain_flops:.2f}% "
        f"over plain; params +{100 * cost['se_params'] / plain_params:.1f}%"
    )
    for b in plan.batch_sizes:
        m = {
            k.replace(f"_b{b}", ""): v
            for k, v in metrics.items()
            if f"_b{b}_" in k or k.endswith(f"_b{b}")
        }
        print(
            f"latency batch {b:4d}: {m['latency_ms']:9.3f} ms (plain "
            f"{m['plain_latency_ms']:.3f}), ratio {m['latency_ratio']:.3f} (IQR "
            f"{m['latency_ratio_iqr']:.3f}), noise floor {m['latency_noise']:.3f}"
        )
    if "throughput_train_img_s" in metrics:
        print(
            f"training batch {plan.train_batch_size}: {metrics['throughput_train_img_s']:,.0f} "
            f"img/s (plain {metrics['plain_throughput_train_img_s']:,.0f}), ratio "
            f"{metrics['throughput_train_ratio']:.3f} (IQR "
            f"{metrics['throughput_train_ratio_iqr']:.3f}), noise floor "
            f"{metrics['throughput_train_noise']:.3f}"
        )
    rows = stage_rows(cost, metrics)
    print(
        f"per stage at batch {plan.deploy_batch}: FLOPs share, time share, SE +FLOPs %, SE +time %"
    )
    for r in rows:
        print(
            f"  stage {r['stage']}: {100 * r['flops_share']:5.1f}%  {100 * r['time_share']:5.1f}%"
            f"  {r['se_flops_pct']:+6.2f}%  {r['se_time_pct']:+6.1f}%"
        )
    return {
        "arch": arch.to_dict(),
        "device": where,
        "cost": cost,
        "timing": metrics,
        "stages": rows,
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kind = {"attention": args.attention} if args.attention != "se" else {}
    arch = ArchConfig.parse(
        {
            "backbone": args.backbone,
            "num_classes": args.num_classes,
            "in_channels": args.in_channels,
            "input_size": args.input_size,
            **kind,
            "se": {"reduction": args.reduction},
        }
    )
    plan = plan_for(args)
    result = report(arch, plan, time_arch(arch, plan))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
