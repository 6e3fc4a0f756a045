"""What the SE block costs in wall time: SE-ResNet-50 vs the plain ResNet-50 of the same code.

CPU, two measurements, each paired: the two networks run alternately, round after round, and
the ratio SE/plain is taken within each round, so load that drifts during the run hits both.

- inference: batch 1 at 224x224, eval mode, no autograd;
- training step: batch 8 at 224x224, forward + backward + SGD step.

    python benchmarks/se_overhead.py [--rounds 15] [--threads N] [--json]

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

from search_space import ArchConfig, build_model


def make_models(reduction: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    se = build_model(ArchConfig.parse({"backbone": "resnet50", "se": {"reduction": reduction}}))
    plain = build_model(ArchConfig.parse({"backbone": "resnet50", "se": {"enabled": False}}))
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


def paired_ratio(
    se_step: Callable[[], None], plain_step: Callable[[], None], rounds: int, repeats: int
) -> dict[str, float]:
    for step in (se_step, plain_step):  # warm-up: allocator, oneDNN primitives
        timed(step, 3)
    ratios, se_times, plain_times = [], [], []
    for i in range(rounds):
        # Alternate which goes first, so neither always runs on a warmer cache.
        order = (se_step, plain_step) if i % 2 == 0 else (plain_step, se_step)
        measured = {id(step): timed(step, repeats) for step in order}
        se_t, plain_t = measured[id(se_step)], measured[id(plain_step)]
        se_times.append(se_t)
        plain_times.append(plain_t)
        ratios.append(se_t / plain_t)
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_q1": q1,
        "ratio_q3": q3,
        "se_ms": 1000 * statistics.median(se_times),
        "plain_ms": 1000 * statistics.median(plain_times),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reduction", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    se, plain = make_models(args.reduction)
    results = {
        "inference_b1": paired_ratio(inference_step(se), inference_step(plain), args.rounds, 5),
        "train_step_b8": paired_ratio(training_step(se), training_step(plain), args.rounds, 2),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"SE-ResNet-50 (r={args.reduction}) vs ResNet-50, CPU, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}")
    for name, r in results.items():
        print(f"{name:14s} SE {r['se_ms']:8.1f} ms  plain {r['plain_ms']:8.1f} ms  "
              f"ratio SE/plain {r['ratio_median']:.3f} (IQR {r['ratio_q1']:.3f}-"
              f"{r['ratio_q3']:.3f}, {r['rounds']} paired rounds)")


if __name__ == "__main__":
    main()
