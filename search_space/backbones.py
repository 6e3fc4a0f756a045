"""The layout of every backbone family, as data: stages, block kind, widths, strides.

The network builders and the config validation both read these plans, so a width is written
down once. A plan is pure Python (no torch), cheap enough to compute for every point of a sweep.
Its types (StagePlan, NetworkPlan, the unit kinds) are in plan_types.py, and importable from
here too.
"""

from __future__ import annotations

from .paper_plans import paper_plan
from .plan_types import (
    BASIC,
    BOTTLENECK,
    CONV,
    DW_SEPARABLE,
    INCEPTION,
    INCEPTION_RESNET,
    INVERTED,
    NetworkPlan,
    StagePlan,
)
from .plan_types import SENET_BOTTLENECK as SENET_BOTTLENECK  # re-exported for placement.py
from .plan_types import SHUFFLE as SHUFFLE

# family -> allowed depths; None means the family has one fixed depth.
RESNET_DEPTHS = {
    18: (BASIC, (2, 2, 2, 2)),
    34: (BASIC, (3, 4, 6, 3)),
    50: (BOTTLENECK, (3, 4, 6, 3)),
    101: (BOTTLENECK, (3, 4, 23, 3)),
    152: (BOTTLENECK, (3, 8, 36, 3)),
}
RESNEXT_DEPTHS = {50: (BOTTLENECK, (3, 4, 6, 3)), 101: (BOTTLENECK, (3, 4, 23, 3))}
# 6n+2 with basic blocks (8 and 14 are handy for smoke runs), 9n+2 with bottlenecks.
CIFAR_RESNET_DEPTHS = {d: BASIC for d in (8, 14, 20, 32, 44, 56, 110)} | {164: BOTTLENECK}
# The pre-activation CIFAR ResNets of He et al. 2016: ResNet-110 basic, -164 and -1001
# bottleneck, the same widths and unit counts as the post-activation ones.
CIFAR_PREACT_DEPTHS = CIFAR_RESNET_DEPTHS | {1001: BOTTLENECK}
VGG_DEPTHS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
# MobileNetV2 (t, c, n, s) rows, as in the paper and torchvision; each row is a stage.
MOBILENET_V2_ROWS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

FAMILY_DEPTHS: dict[str, tuple[int, ...] | None] = {
    "resnet": tuple(RESNET_DEPTHS),
    "resnext": tuple(RESNEXT_DEPTHS),
    "cifar_resnet": tuple(CIFAR_RESNET_DEPTHS),
    "cifar_preact_resnet": tuple(CIFAR_PREACT_DEPTHS),
    "mobilenet_v2": None,
    "vgg": tuple(VGG_DEPTHS),
    "bn_inception": None,
    "inception_resnet_v2": None,
    "mobilenet": None,  # v1, width 1.0
    "shufflenet": None,  # v1, 1x, g=3
    "senet154": None,
}
PAPER_FAMILIES = ("bn_inception", "inception_resnet_v2", "mobilenet", "shufflenet", "senet154")
# The input size a family is defined at, where it is not 224.
DEFAULT_INPUT_SIZE = {"inception_resnet_v2": 299}
DEFAULT_DEPTH = {
    "resnet": 50,
    "resnext": 50,
    "cifar_resnet": 20,
    "cifar_preact_resnet": 164,
    "vgg": 16,
}
FAMILIES = tuple(FAMILY_DEPTHS)


def plan_network(family: str, depth: int | None, in_channels: int = 3) -> NetworkPlan:
    """The plan of a (family, depth); the caller has validated both."""
    if family == "resnet":
        return _resnet_plan(family, depth, groups=1, width_per_group=64)
    if family == "resnext":  # 32x4d
        return _resnet_plan(family, depth, groups=32, width_per_group=4)
    if family in ("cifar_resnet", "cifar_preact_resnet"):
        return _cifar_resnet_plan(depth, preact=family == "cifar_preact_resnet")
    if family == "mobilenet_v2":
        return _mobilenet_v2_plan()
    if family == "vgg":
        return _vgg_plan(depth, in_channels)
    if family in PAPER_FAMILIES:
        return paper_plan(family)
    raise ValueError(f"unknown family {family!r}")


def _resnet_plan(family: str, depth: int, groups: int, width_per_group: int) -> NetworkPlan:
    block, counts = (RESNET_DEPTHS if family == "resnet" else RESNEXT_DEPTHS)[depth]
    expansion = 4 if block == BOTTLENECK else 1
    stages, in_ch = [], 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
        mid = int(planes * (width_per_group / 64.0)) * groups if block == BOTTLENECK else planes
        out = planes * expansion
        stages.append(StagePlan(block, n, in_ch, out, mid, 1 if i == 0 else 2, groups))
        in_ch = out
    return NetworkPlan(family, depth, "imagenet", 64, tuple(stages), in_ch)


def _cifar_resnet_plan(depth: int, preact: bool = False) -> NetworkPlan:
    block = CIFAR_PREACT_DEPTHS[depth]
    n = (depth - 2) // (9 if block == BOTTLENECK else 6)
    expansion = 4 if block == BOTTLENECK else 1
    stages, in_ch = [], 16
    for i, planes in enumerate((16, 32, 64)):
        out = planes * expansion
        stages.append(StagePlan(block, n, in_ch, out, planes, 1 if i == 0 else 2))
        in_ch = out
    family = "cifar_preact_resnet" if preact else "cifar_resnet"
    return NetworkPlan(family, depth, "cifar", 16, tuple(stages), in_ch, preact=preact)


def _mobilenet_v2_plan() -> NetworkPlan:
    stages, in_ch = [], 32
    for t, c, n, s in MOBILENET_V2_ROWS:
        stages.append(StagePlan(INVERTED, n, in_ch, c, round(in_ch * t), s, expansion=t))
        in_ch = c
    return NetworkPlan("mobilenet_v2", None, "mobilenet", 32, tuple(stages), 1280)


def _vgg_plan(depth: int, in_channels: int) -> NetworkPlan:
    stages, in_ch = [], in_channels
    for width, n in zip((64, 128, 256, 512, 512), VGG_DEPTHS[depth], strict=True):
        stages.append(StagePlan(CONV, n, in_ch, width, width, 2))  # stride = the max-pool after
        in_ch = width
    return NetworkPlan("vgg", depth, "none", 0, tuple(stages), 512)


def unit_channels(stage: StagePlan, index: int, first_in: int) -> tuple[int, int, int]:
    """(in, mid, out) widths of unit `index` of a stage; `first_in` is the stage's input width."""
    if stage.unit_out:
        in_ch = first_in if index == 0 else stage.unit_out[index - 1]
        return in_ch, stage.unit_out[index], stage.unit_out[index]
    in_ch = first_in if index == 0 else stage.out_channels
    if stage.block == DW_SEPARABLE:  # the depthwise 3x3 keeps the input width
        return in_ch, in_ch, stage.out_channels
    if stage.block == INVERTED:
        return in_ch, round(in_ch * stage.expansion), stage.out_channels
    return in_ch, stage.mid_channels, stage.out_channels


def residual_units(stage: StagePlan) -> int:
    """How many units of a stage add their input back (have an identity or projection path).

    MobileNetV2 has one only where the shape is kept; an Inception-ResNet stage opens with a
    module without one; a ShuffleNet stage opens with a unit that concatenates its pooled input.
    """
    if stage.block in (CONV, INCEPTION, DW_SEPARABLE):
        return 0
    if stage.block == INCEPTION_RESNET:
        return stage.blocks - 1
    if stage.block == INVERTED:
        return sum(
            1
            for u in range(stage.blocks)
            if u > 0 or (stage.stride == 1 and stage.in_channels == stage.out_channels)
        )
    return stage.blocks
