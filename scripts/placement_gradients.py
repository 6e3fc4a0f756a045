"""Print, per SE placement, the gradient that reaches the stem of a CIFAR ResNet at init.

The figures of docs/placements.md: for each placement, the norm of the loss gradient at the stem
conv's weight, on a batch of scikit-learn's digits (8x8, train mode), at the default init and
with the gates started near 1 (`arch.se.gate_init`), with and without `zero_init_residual`,
beside the network without SE; and the product of the initial gates along the identity path.

    python scripts/placement_gradients.py                          # ResNet-20, -56, -164
    python scripts/placement_gradients.py --backbones cifar_preact_resnet164 --seeds 0 1
    python scripts/placement_gradients.py --backbones resnet50 --size 64 --batch 16
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from search_space import ArchConfig, build_model
from search_space.identity_path import gated_units, identity_path_gain

PLACEMENTS = ("none", "standard", "pre", "post", "identity", "after_3x3")


def stem_gradient(arch: ArchConfig, batch: int, seed: int) -> float:
    digits = load_digits()
    x = torch.tensor(digits.images[:batch], dtype=torch.float32)[:, None]
    x, y = (x - x.mean()) / x.std(), torch.tensor(digits.target[:batch])
    if arch.input_size != 8:  # the ImageNet networks: the digits scaled up
        x = F.interpolate(x, size=arch.input_size, mode="bilinear", align_corners=False)
    torch.manual_seed(seed)
    model = build_model(arch).train()
    F.cross_entropy(model(x), y).backward()
    return model.stem[0].weight.grad.norm().item()


def arch_for(
    backbone: str, placement: str, gate_init: float | None, zero: bool, size: int = 8
) -> ArchConfig:
    se = {
        "enabled": placement != "none",
        "reduction": 16,
        "gate_init": gate_init,
        "placement": "standard" if placement == "none" else placement,
    }
    return ArchConfig.parse(
        {
            "backbone": backbone,
            "num_classes": 10,
            "in_channels": 1,
            "input_size": size,
            "se": se,
            "zero_init_residual": zero,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backbones", nargs="+", default=["cifar_resnet20", "cifar_resnet56", "cifar_resnet164"]
    )
    parser.add_argument("--gate-init", type=float, default=0.9975)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--size", type=int, default=8, help="input size (digits are 8x8)")
    args = parser.parse_args()
    print(
        f"stem gradient norm at init, median of seeds {args.seeds}, {args.batch} digits;"
        " ratio to the network without SE in brackets"
    )
    for backbone in args.backbones:
        for zero in (False, True):
            plain = None
            for placement in PLACEMENTS:
                plan = arch_for(backbone, "none", None, zero, args.size).plan
                if placement == "after_3x3" and not plan.has_bottleneck:
                    continue
                probe = arch_for(backbone, placement, None, zero, args.size)
                cells = []
                for gate_init in (None, args.gate_init):
                    arch = arch_for(backbone, placement, gate_init, zero, args.size)
                    value = statistics.median(
                        stem_gradient(arch, args.batch, s) for s in args.seeds
                    )
                    plain = value if placement == "none" else plain
                    cells.append(f"{value:9.3g} ({value / plain:8.2g})")
                    if placement == "none":
                        break
                units = gated_units(probe)
                gain = math.log10(identity_path_gain(probe)) if units else 0.0
                print(
                    f"{backbone:24s} zero_init={str(zero):5s} {placement:9s} "
                    f"default {cells[0]}  gate_init {cells[-1]}  "
                    f"gates along the identity path: 10^{gain:.1f} ({units} units)"
                )


if __name__ == "__main__":
    main()
