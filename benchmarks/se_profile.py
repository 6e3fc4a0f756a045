"""Where SE-ResNet-50's extra time goes at batch 1 on a CPU, op by op, inside the whole network.

`se_overhead.py` says how much slower the SE network is; this says where: it profiles the
plain network, the SE network and the same network with the fast SE block (inference, batch 1,
224x224) in alternation, one forward per round under `torch.profiler`, and prints per op kind
the median over rounds of the summed time of its top-level aten ops, with SE minus plain.
Then it times the 16 SE blocks of the network alone - squeeze, excitation (the two FCs and
the gate) and the whole block - on a warm cache and on a cold one (a buffer twice the size of
the last-level cache written before each call), to show what the network's convs between two
SE blocks do to them.

    python -m benchmarks.se_profile [--rounds 30] [--train-rounds 9] [--keep-freed-memory]

It also counts the minor page faults of each step: memory the allocator gave back to the OS
and the step maps again (see runners/trial/memory.py).

The profiler adds a fixed cost per op call, so the op times overstate small ops; read the SE -
plain difference of each op kind, and the wall time of the profiled forward against the ops'.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import torch
from se_overhead import block_inputs, inference_step, our_row, training_step
from torch import nn
from torch.profiler import ProfilerActivity, profile

from runners.trial.memory import keep_freed_memory
from search_space.se import squeeze

# Op kinds, by the top-level op (inclusive time, so mean's sum and div count as the squeeze,
# linear's addmm as the FCs) or, in backward, by the autograd node that runs it.
KINDS = {
    "convolution": ("conv2d", "ConvolutionBackward"),
    "batch norm": ("batch_norm", "NativeBatchNormBackward"),
    "relu": ("relu", "relu_", "ReluBackward"),
    "residual add / scale": (
        "add",
        "add_",
        "addcmul",
        "mul",
        "AddBackward",
        "MulBackward",
        "AddcmulBackward",
    ),
    "squeeze (mean, amax)": ("mean", "amax", "MeanBackward", "AmaxBackward"),
    "excitation FCs": ("linear", "AddmmBackward", "TBackward"),
    "gate": ("sigmoid", "hardsigmoid", "SigmoidBackward"),
    "fast SE block's backward": ("_SqueezeScaleBackward",),
    "gradient accumulation": ("torch::autograd::AccumulateGrad",),
    "optimizer step": ("_foreach_add_", "_foreach_mul_", "_foreach_add", "_foreach_mul"),
}
OTHER = "other (pooling, loss, views, copies)"
AUTOGRAD_NODE = "autograd::engine::evaluate_function: "


def op_kind(name: str) -> str:
    op = name.removeprefix("aten::").removeprefix(AUTOGRAD_NODE).rstrip("0123456789")
    return next((kind for kind, ops in KINDS.items() if op in ops), OTHER)


def is_top_level(event: object) -> bool:
    """An aten op or autograd node that no other op or autograd node called."""
    if not event.name.startswith(("aten::", AUTOGRAD_NODE)):  # type: ignore[attr-defined]
        return False
    parent = event.cpu_parent  # type: ignore[attr-defined]
    while parent is not None:
        if parent.name.startswith(("aten::", "autograd::")):
            return False
        parent = parent.cpu_parent
    return True


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Kineto writes two lines to the process's stderr per profiled run: keep them off."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def profiled_ms(step: Callable[[], None]) -> dict[str, float]:
    """One step under the profiler: per op kind the summed time of its top-level ops, the
    number of such calls, and the wall time of the step, in ms."""
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        step()
        wall_ms = 1000 * (time.perf_counter() - start)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    per_kind: dict[str, float] = defaultdict(float)
    calls = 0
    for event in prof.events():
        if is_top_level(event):
            per_kind[op_kind(event.name)] += event.cpu_time_total / 1000
            calls += 1
    per_kind["ops"] = sum(per_kind.values())
    per_kind["op calls"] = calls
    per_kind["wall (profiled)"] = wall_ms
    per_kind["minor page faults"] = faults
    return per_kind


def network_profile(
    steps: dict[str, Callable[[], None]], rounds: int
) -> dict[str, dict[str, float]]:
    """Per side, the median over rounds of each op kind's time; sides alternate in rotating
    order so that drifting load hits all alike."""
    names = list(steps)
    for step in steps.values():
        profiled_ms(step)  # warm-up: oneDNN primitives, allocator
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            samples[name].append(profiled_ms(steps[name]))
    medians = {}
    for name, runs in samples.items():
        kinds = {kind for run in runs for kind in run}
        medians[name] = {
            kind: statistics.median(run.get(kind, 0.0) for run in runs) for kind in kinds
        }
    return medians


def timed_ms(step: Callable[[], object], repeats: int, evict: Callable[[], None] | None) -> float:
    """Median time of `step` in ms; `evict` (untimed) runs before each call."""
    times = []
    for _ in range(repeats):
        if evict is not None:
            evict()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def blocks_alone(se_model: nn.Module, cache_mb: int, repeats: int) -> dict[str, dict[str, float]]:
    """Summed over the SE blocks: squeeze, excitation, whole block and the plain residual add
    it replaces, each timed on a warm and on a cold cache (ms)."""
    flush = torch.zeros(2 * cache_mb * 2**20 // 4)

    def evict() -> None:
        flush.add_(1.0)  # writes every line of a buffer twice the last-level cache

    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"warm": 0.0, "cold": 0.0})
    with torch.inference_mode():
        for block, shape in block_inputs(se_model):
            x, residual = torch.randn(shape), torch.randn(shape)
            pooled = squeeze(x, block.squeeze)
            parts: dict[str, Callable[[], object]] = {
                "squeeze": lambda b=block, x=x: squeeze(x, b.squeeze),
                "excitation (2 FCs + gate)": lambda b=block, p=pooled: b.gate(
                    b.fc2(b.act(b.fc1(p)))
                ),
                "whole SE block (with its residual add)": lambda b=block, x=x, r=residual: b(x, r),
                "plain residual add": lambda x=x, r=residual: r + x,
            }
            for part, step in parts.items():
                totals[part]["warm"] += timed_ms(step, repeats, None)
                totals[part]["cold"] += timed_ms(step, repeats, evict)
    return dict(totals)


def print_profile(medians: dict[str, dict[str, float]], rounds: int, what: str) -> None:
    print(
        f"\nSE-ResNet-50 (r=16) vs ResNet-50, {what}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}: time of the top-level aten ops per kind under "
        f"torch.profiler, median of {rounds} alternated rounds (ms)"
    )
    sides = list(medians)
    print(
        f"{'op kind':40s}"
        + "".join(f"{s:>10s}" for s in sides)
        + "".join(f"{s + '-plain':>14s}" for s in sides[1:])
    )
    kinds = [k for k in [*KINDS, OTHER] if any(m.get(k) for m in medians.values())]
    for kind in [*kinds, "ops", "wall (profiled)", "op calls", "minor page faults"]:
        values = [m.get(kind, 0.0) for m in medians.values()]
        fmt = "{:10.0f}" if kind in ("op calls", "minor page faults") else "{:10.2f}"
        deltas = "".join(f"{v - values[0]:+14.2f}" for v in values[1:])
        print(f"{kind:40s}" + "".join(fmt.format(v) for v in values) + deltas)


def print_alone(totals: dict[str, dict[str, float]], blocks: int, cache_mb: int) -> None:
    print(
        f"\nThe {blocks} SE blocks alone, batch 1, summed (ms); cold = a {2 * cache_mb} MB "
        "buffer written before each call"
    )
    print(f"{'part':42s}{'warm':>8s}{'cold':>8s}")
    for part, t in totals.items():
        print(f"{part:42s}{t['warm']:8.2f}{t['cold']:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="inference rounds")
    parser.add_argument("--train-rounds", type=int, default=9, help="0 skips training")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50, help="timings per block part")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-mb", type=int, default=32, help="last-level cache size")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="glibc malloc set as in selab's trials (runners.trial.memory)",
    )
    args = parser.parse_args()
    if args.keep_freed_memory and not keep_freed_memory():
        parser.error("--keep-freed-memory: no glibc mallopt in this process")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sides = our_row("avg", "standard", 16)
    fmt = torch.contiguous_format
    inference = {name: inference_step(model, fmt) for name, model in sides.items()}
    print_profile(network_profile(inference, args.rounds), args.rounds, "inference, batch 1")
    if args.train_rounds:
        train = {name: training_step(model, fmt, args.train_batch) for name, model in sides.items()}
        print_profile(
            network_profile(train, args.train_rounds),
            args.train_rounds,
            f"training step (forward, backward, SGD), batch {args.train_batch}",
        )
        for model in sides.values():
            model.eval()
    print_alone(
        blocks_alone(sides["se"], args.cache_mb, args.repeats),
        len(block_inputs(sides["se"])),
        args.cache_mb,
    )


if __name__ == "__main__":
    main()
