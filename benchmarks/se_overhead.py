"""What the SE block costs in wall time: SE-ResNet-50 vs the plain ResNet-50 of the same code.

CPU, two measurements, each paired: the networks of a row run alternately, step after step,
and the ratio SE/plain is taken within each round, so load that drifts during the run hits
every side alike.

- inference: batch 1 at 224x224, eval mode, no autograd;
- training step: batch 8 at 224x224, forward + backward + SGD step.

    python -m benchmarks.se_overhead [--rounds 15] [--train-rounds 7] [--allocator both] [--json]

Rows: every squeeze kind at the standard placement, every placement with the avg squeeze,
the same network with both sides channels-last, and timm's `seresnet50` against its
`resnet50`. Each row times three sides: the plain network, the SE network with the plain
`SqueezeExcite` and the same SE network with `FastSqueezeExcite` (search_space.se_fast). Two
instances of one network can differ by several percent on a CPU (where their weights land in
memory), more than SE costs, so every plain network shares its weight tensors with the SE
network of its row (`share_weights`): the pair differs by the SE blocks alone.

Every row is measured twice (`--allocator both`): first with glibc's malloc as it comes, then
with freed memory kept in the process (`runners.trial.memory.keep_freed_memory`, which selab's
trials set), since the default returns memory to the OS that an SE network's training step then
page-faults back in.

Prints the median ratio and its spread over rounds (interquartile range), next to the goals
(1.02 inference, 1.04 training step) and the references: the paper's CPU inference
167/164 ms = 1.018 and its FLOP ratio 3.87/3.86 = 1.003. `--compile` adds `torch.compile` of
every unit (both sides), with its compile time.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from torch import nn

from runners.trial.memory import keep_freed_memory
from search_space import ArchConfig, build_model
from search_space.se import SqueezeExcite
from search_space.se_fast import use_fast_se

Step = Callable[[], None]
GOALS = {"inference_b1": 1.02, "train_step_b8": 1.04}
PAPER = {"inference_b1": 167 / 164, "flops": 3.87 / 3.86}
SQUEEZE_ROWS = [
    ("avg", "standard"),
    ("max", "standard"),
    ("avgmax", "standard"),
    ("none", "standard"),
]
KEPT_SUFFIX = " [freed memory kept]"
PLACEMENT_ROWS = [("avg", "pre"), ("avg", "post"), ("avg", "identity"), ("avg", "after_3x3")]


def attention_classes() -> tuple[type[nn.Module], ...]:
    from search_space.se import NoSqueezeExcite
    from search_space.se_fast import FastSqueezeExcite

    classes: list[type[nn.Module]] = [SqueezeExcite, NoSqueezeExcite, FastSqueezeExcite]
    try:
        from timm.layers.squeeze_excite import SEModule

        classes.append(SEModule)
    except ImportError:
        pass
    return tuple(classes)


def share_weights(plain: nn.Module, se: nn.Module) -> None:
    """Point every parameter and buffer of `plain` at the matching tensor of `se`: the tensors
    of `se` outside its SE blocks, in order (SE inside a branch shifts the layer names)."""
    skip = tuple(f"{name}." for name, m in se.named_modules() if isinstance(m, attention_classes()))
    se_tensors = [
        t for name, t in [*se.named_parameters(), *se.named_buffers()] if not name.startswith(skip)
    ]
    slots = [
        (store, name)
        for module in plain.modules()
        for store in (module._parameters, module._buffers)
        for name in store
        if store[name] is not None
    ]
    # named_parameters() lists every parameter before any buffer: order the slots the same way.
    slots.sort(key=lambda slot: not isinstance(slot[0][slot[1]], nn.Parameter))
    if len(slots) != len(se_tensors):
        raise ValueError(f"{len(slots)} plain tensors vs {len(se_tensors)} outside SE blocks")
    for (store, name), tensor in zip(slots, se_tensors, strict=True):
        if store[name].shape != tensor.shape:
            raise ValueError(f"shape mismatch at {name}: {store[name].shape} vs {tensor.shape}")
        store[name] = tensor


def our_row(squeeze: str, placement: str, reduction: int) -> dict[str, nn.Module]:
    """The plain network, the SE network and, for pooled squeezes, its fast twin."""
    se_net = build_model(
        ArchConfig.parse(
            {
                "backbone": "resnet50",
                "se": {"reduction": reduction, "squeeze": squeeze, "placement": placement},
            }
        )
    )
    plain = build_model(ArchConfig.parse({"backbone": "resnet50", "se": {"enabled": False}}))
    share_weights(plain, se_net)
    sides = {"plain": plain, "se": se_net}
    if any(type(m) is SqueezeExcite for m in se_net.modules()):
        fast = use_fast_se(copy.deepcopy(se_net))
        share_weights_by_name(fast, se_net)
        sides["fast"] = fast
    return sides


def share_weights_by_name(target: nn.Module, source: nn.Module) -> None:
    """Point every tensor of `target` at the same-named tensor of `source`."""
    tensors = dict(source.named_parameters()) | dict(source.named_buffers())
    for module_name, module in target.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for store in (module._parameters, module._buffers):
            for name in store:
                if store[name] is not None:
                    store[name] = tensors[prefix + name]


def timm_row() -> dict[str, nn.Module]:
    import timm

    se_net, plain = timm.create_model("seresnet50"), timm.create_model("resnet50")
    share_weights(plain, se_net)
    return {"plain": plain, "se": se_net}


def inference_step(model: nn.Module, memory_format: torch.memory_format) -> Step:
    model.eval()
    x = torch.randn(1, 3, 224, 224).to(memory_format=memory_format)

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def training_step(model: nn.Module, memory_format: torch.memory_format, batch: int = 8) -> Step:
    model.train()
    x = torch.randn(batch, 3, 224, 224).to(memory_format=memory_format)
    y = torch.randint(0, 1000, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def paired_rounds(steps: dict[str, Step], rounds: int, repeats: int) -> dict[str, list[float]]:
    """Per round and side, the median of `repeats` timings (s); the sides alternate step by
    step, in an order that rotates from round to round, so none always runs first."""
    names = list(steps)
    for name in names:  # warm-up: allocator, oneDNN primitives
        steps[name]()
        steps[name]()
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        order = names[i % len(names) :] + names[: i % len(names)]
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(repeats):
            for name in order:
                start = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - start)
        for name in names:
            per_round[name].append(statistics.median(times[name]))
    return per_round


def ratios(per_round: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """For each side but plain: its ms and its ratio to plain (median and IQR over rounds)."""
    plain = per_round["plain"]
    out = {"plain": {"ms": 1000 * statistics.median(plain)}}
    for name, times in per_round.items():
        if name == "plain":
            continue
        r = [t / p for t, p in zip(times, plain, strict=True)]
        q1, median, q3 = statistics.quantiles(r, n=4) if len(r) > 1 else (r[0],) * 3
        out[name] = {
            "ms": 1000 * statistics.median(times),
            "ratio": statistics.median(r),
            "q1": q1,
            "q3": q3,
            "rounds": len(r),
        }
        del median  # the interpolated middle quartile; the plain median is reported
    return out


def measure_row(
    sides: dict[str, nn.Module],
    args: argparse.Namespace,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> dict[str, dict[str, dict[str, float]]]:
    if memory_format is torch.channels_last:
        sides = {name: m.to(memory_format=memory_format) for name, m in sides.items()}
    inference = {n: inference_step(m, memory_format) for n, m in sides.items()}
    result = {"inference_b1": ratios(paired_rounds(inference, args.rounds, 3))}
    if args.train_rounds:
        train = {n: training_step(m, memory_format, args.train_batch) for n, m in sides.items()}
        result["train_step_b8"] = ratios(paired_rounds(train, args.train_rounds, 1))
    return result


def compiled_row(reduction: int, rounds: int) -> dict[str, object]:
    """torch.compile of every unit (inference), both sides: compile time and the ratios."""
    sides = our_row("avg", "standard", reduction)
    sides = {"plain": sides["plain"], "se": sides["se"]}
    eager = {f"{n}_eager": m for n, m in sides.items()}
    compiled, seconds = {}, {}
    x = torch.randn(1, 3, 224, 224)
    # Every unit runs the same Unit.forward: one graph per unit shape and network, more than
    # the default limit of 8, past which dynamo would quietly run the rest eagerly.
    torch._dynamo.config.recompile_limit = 64
    # A fresh inductor cache: the compile time printed is a first compile's, not a cache hit.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="selab-inductor-")
    for name, model in sides.items():
        model = copy.deepcopy(model).eval()
        for stage in model.stages:
            for i, unit in enumerate(stage):
                stage[i] = torch.compile(unit)
        start = time.perf_counter()
        with torch.inference_mode():
            model(x)
        seconds[name] = time.perf_counter() - start
        compiled[name] = model
    steps = {
        n: inference_step(m, torch.contiguous_format)
        for n, m in {
            "plain": compiled["plain"],
            "se": compiled["se"],
            "se_eager": eager["se_eager"],
            "plain_eager": eager["plain_eager"],
        }.items()
    }
    return {"compile_s": seconds, "inference_b1": ratios(paired_rounds(steps, rounds, 3))}


def block_inputs(se_model: nn.Module) -> list[tuple[SqueezeExcite, tuple[int, ...]]]:
    """Every SE block of the network with the shape of the map it gets at batch 1."""
    shapes: list[tuple[SqueezeExcite, tuple[int, ...]]] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: shapes.append((m, tuple(i[0].shape))))
        for m in se_model.modules()
        if isinstance(m, SqueezeExcite)
    ]
    with torch.inference_mode():
        se_model.eval()(torch.randn(1, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    return shapes


def se_blocks_alone(se_model: nn.Module, repeats: int = 200) -> dict[str, float]:
    """The direct cost of the SE blocks at inference, batch 1: every SE block of the network
    run alone on a map of its shape (squeeze, FCs, gate, fused scale + residual add), minus
    the plain residual add it replaces, summed over the network, in ms. Each block runs on a
    warm cache here, which the whole network does not give it."""
    se_ms = add_ms = 0.0
    shapes = block_inputs(se_model)
    with torch.inference_mode():
        for block, shape in shapes:
            x, residual = torch.randn(shape), torch.randn(shape)
            se_ms += 1000 * timed(lambda b=block, x=x, r=residual: b(x, r), repeats)
            add_ms += 1000 * timed(lambda x=x, r=residual: r + x, repeats)
    return {"blocks": len(shapes), "se_ms": se_ms, "add_ms": add_ms}


def timed(step: Step, repeats: int) -> float:
    """The median of `repeats` timings of one step, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, object] = {}
    modes = ["default", "kept"] if args.allocator == "both" else [args.allocator]
    for mode in modes:  # kept last: glibc's thresholds cannot be put back in this process
        suffix = "" if mode == "default" else KEPT_SUFFIX
        if mode == "kept" and not keep_freed_memory():
            print("freed memory kept: not measured (no glibc mallopt here)")
            continue
        results |= {row + suffix: measured for row, measured in measure_rows(args).items()}
    if args.compile:
        results["compiled units avg/standard"] = compiled_row(args.reduction, args.rounds)
    se_net = our_row("avg", "standard", args.reduction)
    alone = se_blocks_alone(se_net["se"])
    main_row = next(row for row in results if row.startswith("avg/standard"))
    plain_ms = results[main_row]["inference_b1"]["plain"]["ms"]  # type: ignore[index]
    alone["extra_over_plain"] = (alone["se_ms"] - alone["add_ms"]) / plain_ms
    results["se_blocks_alone_b1"] = alone
    return results


def measure_rows(args: argparse.Namespace) -> dict[str, object]:
    """Every row the arguments ask for, under the process's current allocator settings."""
    results: dict[str, object] = {}
    rows = SQUEEZE_ROWS if args.rows == "all" else SQUEEZE_ROWS[:1]
    rows = rows + (PLACEMENT_ROWS if args.rows == "all" else [])
    for squeeze, placement in rows:
        torch.manual_seed(0)
        results[f"{squeeze}/{placement}"] = measure_row(
            our_row(squeeze, placement, args.reduction), args
        )
        print(f"measured {squeeze}/{placement}", flush=True)
    if args.rows == "all":
        torch.manual_seed(0)
        results["avg/standard channels_last"] = measure_row(
            our_row("avg", "standard", args.reduction), args, torch.channels_last
        )
    if not args.no_timm:
        torch.manual_seed(0)
        results["timm seresnet50/resnet50"] = measure_row(timm_row(), args)
    return results


def print_table(results: dict[str, object], args: argparse.Namespace) -> None:
    print(
        f"\nSE-ResNet-50 (r={args.reduction}) / ResNet-50, CPU, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}; ratio SE/plain: median (IQR) over rounds"
    )
    print(
        f"{'row':50s} {'measure':14s} {'plain ms':>9s} {'SE block':>22s} {'fast SE block':>22s}"
        f"   reference"
    )
    for row, measures in results.items():
        if row in ("se_blocks_alone_b1",) or "compile_s" in measures:  # type: ignore[operator]
            continue
        for measure, sides in measures.items():  # type: ignore[union-attr]
            cells = [_cell(sides.get(side)) for side in ("se", "fast")]
            ref = f"goal <= {GOALS[measure]:.2f}"
            if measure == "inference_b1":
                ref += f", paper {PAPER['inference_b1']:.3f}"
            print(
                f"{row:50s} {measure:14s} {sides['plain']['ms']:9.1f} {cells[0]:>22s} "
                f"{cells[1]:>22s}   {ref}"
            )
    print(f"(FLOP ratio SE/plain, paper: {PAPER['flops']:.4f})")
    compiled = results.get("compiled units avg/standard")
    if compiled:
        secs = compiled["compile_s"]  # type: ignore[index]
        print(
            f"torch.compile of every unit: first call {secs['se']:.0f} s (SE net), "
            f"{secs['plain']:.0f} s (plain net)"
        )
        for side, r in compiled["inference_b1"].items():  # type: ignore[index]
            if side != "plain":
                print(f"  inference_b1 {side:12s} / compiled plain: {_cell(r)}")
    alone = results["se_blocks_alone_b1"]
    print(
        f"SE blocks alone, batch 1, warm cache: {alone['blocks']} blocks take "  # type: ignore
        f"{alone['se_ms']:.2f} ms where the plain residual adds take "  # type: ignore[index]
        f"{alone['add_ms']:.2f} ms: +{100 * alone['extra_over_plain']:.1f}% "  # type: ignore
        "of the plain network's inference time"
    )


def _cell(r: dict[str, float] | None) -> str:
    if r is None:
        return "n/a"
    return f"{r['ratio']:.3f} ({r['q1']:.3f}-{r['q3']:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="inference rounds per row")
    parser.add_argument("--train-rounds", type=int, default=7, help="0 skips training")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--reduction", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--rows", choices=("all", "main"), default="all", help="main: avg/standard and timm only"
    )
    parser.add_argument("--no-timm", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also torch.compile every unit")
    parser.add_argument(
        "--allocator",
        choices=("both", "default", "kept"),
        default="both",
        help="glibc malloc as it comes, with freed memory kept "
        "(runners.trial.memory, as selab's trials run), or both in turn",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results, args)


if __name__ == "__main__":
    main()
