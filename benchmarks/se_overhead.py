"""What the SE block costs in wall time: SE-ResNet-50 vs the plain ResNet-50 of the same code.

CPU, two measurements, each paired: the two networks run alternately, round after round, and
the ratio SE/plain is taken within each round, so load that drifts during the run hits both.

- inference: batch 1 at 224x224, eval mode, no autograd;
- training step: batch 8 at 224x224, forward + backward + SGD step.

    python benchmarks/se_overhead.py [--rounds 15] [--threads N] [--json]

Two instances of the same network can differ by several percent on a CPU (where their
weights land in memory), more than SE costs. So each plain network here shares its weight
tensors with an SE network (`share_weights`): the pair differs by the SE blocks alone. Each side
is several such instances and a round compares the median over SE instances with the median
over plain ones; the spread among the plain instances is printed as the noise floor.

Prints the median ratio and its spread over rounds (interquartile range). References: timm's
SE-ResNet-50 measured 1.095 (inference) and 1.10 (training step) on this kind of machine; the
paper's CPU inference figure is 167/164 ms = 1.018.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from search_space import ArchConfig, build_model


def share_weights(plain: nn.Module, se: nn.Module) -> None:
    """Point every parameter and buffer of `plain` at the same-named tensor of `se`."""
    se_tensors = dict(se.named_parameters()) | dict(se.named_buffers())
    for module_name, module in plain.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for store in (module._parameters, module._buffers):
            for name in store:
                if store[name] is not None:
                    store[name] = se_tensors[prefix + name]


def make_models(reduction: int, instances: int) -> tuple[list[nn.Module], list[nn.Module]]:
    se_config = ArchConfig.parse({"backbone": "resnet50", "se": {"reduction": reduction}})
    plain_config = ArchConfig.parse({"backbone": "resnet50", "se": {"enabled": False}})
    se, plain = [], []
    for _ in range(instances):
        se.append(build_model(se_config))
        plain.append(build_model(plain_config))
        share_weights(plain[-1], se[-1])
    return se, plain


def inference_step(model: torch.nn.Module) -> Callable[[], None]:
    model.eval()
    x = torch.randn(1, 3, 224, 224)

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def training_step(model: torch.nn.Module, batch: int = 8) -> Callable[[], None]:
    model.train()
    x = torch.randn(batch, 3, 224, 224)
    y = torch.randint(0, 1000, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def timed(step: Callable[[], None], repeats: int) -> float:
    """The median of `repeats` timings of one step, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


Step = Callable[[], None]


def paired_ratio(
    se_steps: list[Step], plain_steps: list[Step], rounds: int, repeats: int
) -> dict[str, float]:
    for step in se_steps + plain_steps:  # warm-up: allocator, oneDNN primitives
        timed(step, 2)
    ratios, se_times, plain_times, plain_spread = [], [], [], []
    for i in range(rounds):
        # Alternate which side goes first, so neither always runs on a warmer cache.
        first, second = (se_steps, plain_steps) if i % 2 == 0 else (plain_steps, se_steps)
        measured = {id(step): timed(step, repeats) for step in first + second}
        se_t = statistics.median(measured[id(step)] for step in se_steps)
        plain_each = [measured[id(step)] for step in plain_steps]
        plain_t = statistics.median(plain_each)
        se_times.append(se_t)
        plain_times.append(plain_t)
        ratios.append(se_t / plain_t)
        plain_spread.append(max(plain_each) / min(plain_each))
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_q1": q1,
        "ratio_q3": q3,
        "se_ms": 1000 * statistics.median(se_times),
        "plain_ms": 1000 * statistics.median(plain_times),
        "plain_instance_spread": statistics.median(plain_spread),
        "rounds": rounds,
    }


def se_blocks_alone(se_model: nn.Module, repeats: int = 200) -> dict[str, float]:
    """The direct cost of the SE blocks at inference, batch 1: every SE block of the network
    run alone on a map of its shape (squeeze, FCs, gate, fused scale + residual add), minus
    the plain residual add it replaces, summed over the network, in ms."""
    from search_space.se import SqueezeExcite

    shapes: list[tuple[SqueezeExcite, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append((m, tuple(i[0].shape))))
             for m in se_model.modules() if isinstance(m, SqueezeExcite)]
    with torch.inference_mode():
        se_model.eval()(torch.randn(1, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    se_ms = add_ms = 0.0
    with torch.inference_mode():
        for block, shape in shapes:
            x, residual = torch.randn(shape), torch.randn(shape)
            se_ms += 1000 * timed(lambda b=block, x=x, r=residual: b(x, r), repeats)
            add_ms += 1000 * timed(lambda x=x, r=residual: r + x, repeats)
    return {"blocks": len(shapes), "se_ms": se_ms, "add_ms": add_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--instances", type=int, default=2, help="networks built per side")
    parser.add_argument("--reduction", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    se, plain = make_models(args.reduction, args.instances)
    results = {
        "inference_b1": paired_ratio([inference_step(m) for m in se],
                                     [inference_step(m) for m in plain], args.rounds, 5),
        "train_step_b8": paired_ratio([training_step(m) for m in se],
                                      [training_step(m) for m in plain], args.rounds, 1),
    }
    alone = se_blocks_alone(se[0])
    alone["extra_over_plain"] = (alone["se_ms"] - alone["add_ms"]) / results["inference_b1"][
        "plain_ms"]
    results["se_blocks_alone_b1"] = alone
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"SE-ResNet-50 (r={args.reduction}) vs ResNet-50, CPU, {torch.get_num_threads()} "
          f"threads, {args.instances} instances per side, torch {torch.__version__}")
    for name, r in results.items():
        if name == "se_blocks_alone_b1":
            continue
        print(f"{name:14s} SE {r['se_ms']:8.1f} ms  plain {r['plain_ms']:8.1f} ms  "
              f"ratio SE/plain {r['ratio_median']:.3f} (IQR {r['ratio_q1']:.3f}-"
              f"{r['ratio_q3']:.3f}, {r['rounds']} paired rounds); plain vs plain "
              f"{r['plain_instance_spread']:.3f}")

    print(f"SE blocks alone, batch 1: {alone['blocks']} blocks take {alone['se_ms']:.2f} ms "
          f"where the plain residual adds take {alone['add_ms']:.2f} ms: "
          f"+{100 * alone['extra_over_plain']:.1f}% of the plain network's inference time")


if __name__ == "__main__":
    main()
