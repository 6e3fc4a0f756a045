"""selab's cost of the SENet paper's networks beside the paper's own figures (Tables 2 and 3).

`python -m search_space.paper_costs` prints the table. The paper counts multiply-adds of the
convolutions and FC layers (3.86 GFLOPs for ResNet-50 is the Caffe ResNet-50's multiply-adds),
and for the SE block, as Table 3's mobile networks show, its FC layers plus one multiply per
element it scales; `paper_convention` counts that way. selab's own count adds BN, activations,
poolings and additions (see cost.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ArchConfig
from .cost import count_flops, count_params
from .networks import build_model


@dataclass(frozen=True)
class PaperRow:
    label: str
    arch: dict[str, Any]
    paper_flops: tuple[float, float] | None  # plain, SE; GFLOPs (Table 2), MFLOPs (Table 3)
    paper_params: tuple[float, float] | None = None  # millions (Table 3)
    unit: float = 1e9


TABLE_2 = (
    PaperRow("ResNet-50", {"backbone": "resnet50", "layout": "caffe"}, (3.86, 3.87)),
    PaperRow("ResNet-101", {"backbone": "resnet101", "layout": "caffe"}, (7.58, 7.60)),
    PaperRow("ResNet-152", {"backbone": "resnet152", "layout": "caffe"}, (11.30, 11.32)),
    PaperRow("ResNeXt-50 (32x4d)", {"backbone": "resnext50"}, (4.24, 4.25)),
    PaperRow("ResNeXt-101 (32x4d)", {"backbone": "resnext101"}, (7.99, 8.00)),
    PaperRow("VGG-16 (BN)", {"backbone": "vgg16"}, (15.47, 15.48)),
    PaperRow("BN-Inception", {"backbone": "bn_inception"}, (2.03, 2.04)),
    PaperRow("Inception-ResNet-v2 (299 px)", {"backbone": "inception_resnet_v2"}, (11.75, 11.76)),
    PaperRow("SENet-154", {"backbone": "senet154"}, None),
)
TABLE_3 = (
    PaperRow("MobileNet v1", {"backbone": "mobilenet"}, (569, 572), (4.2, 4.7), unit=1e6),
    PaperRow(
        "ShuffleNet v1 (1x, g=3)", {"backbone": "shufflenet"}, (140, 142), (1.8, 2.4), unit=1e6
    ),
)


@dataclass(frozen=True)
class Counted:
    params: int
    flops: int  # selab's convention
    paper_flops: int  # the paper's convention


def paper_convention(by_operator: dict[str, int]) -> int:
    """Conv and FC multiply-adds, plus one per element an SE block scales.

    Every SE block squeezes exactly the map it scales, so its squeeze count (one per input
    element) is the number of scaled elements; the networks' global pooling is counted apart
    (`adaptive_avg_pool2d`).
    """
    squeezed = max(by_operator.get("mean", 0), by_operator.get("amax", 0))
    return by_operator.get("conv", 0) + by_operator.get("linear", 0) + squeezed


def count(arch: ArchConfig) -> Counted:
    model = build_model(arch)
    flops = count_flops(model, arch.in_channels, arch.input_size)
    return Counted(count_params(model), flops.total, paper_convention(flops.by_operator))


def _row(row: PaperRow) -> str:
    plain = count(ArchConfig.parse({**row.arch, "se": {"enabled": False}}))
    se = count(ArchConfig.parse(row.arch))
    u = row.unit
    digits = 3 if u == 1e9 else 1
    paper = (
        "-"
        if row.paper_flops is None
        else " -> ".join(f"{v:.2f}" if u == 1e9 else f"{v:.0f}" for v in row.paper_flops)
    )
    if row.paper_params:
        paper += f" ({row.paper_params[0]}M -> {row.paper_params[1]}M params)"
    return (
        f"| {row.label} | {plain.params:,} | {se.params:,} | "
        f"{plain.flops / u:.{digits}f} -> {se.flops / u:.{digits}f} | "
        f"{plain.paper_flops / u:.{digits}f} -> {se.paper_flops / u:.{digits}f} | {paper} |"
    )


def main() -> None:
    for title, rows in (("GFLOPs", TABLE_2), ("MFLOPs", TABLE_3)):
        print(
            f"| network | params | params SE (r=16) | {title} selab | {title} paper's"
            f" convention | paper |"
        )
        print("|---|---|---|---|---|---|")
        for row in rows:
            print(_row(row), flush=True)
        print()


if __name__ == "__main__":
    main()
