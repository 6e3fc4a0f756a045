"""Plans of the SENet paper's other networks (Tables 2 and 3), as data; no torch.

BN-Inception and Inception-ResNet-v2 (Table 2), MobileNet v1 and ShuffleNet v1 (Table 3) and
SENet-154. A stage is what per-stage SE enablement and per-stage cost address: the Inception
networks' stages are their module groups (3a-3c, 4a-4e, 5a-5b; the A, B and C blocks, each
opened by the module that changes the width), the others' stages are their runs of units
at one resolution. The BN-Inception module table lives here because the plan (widths, for
validating r) and the network builder both read it.
"""

from __future__ import annotations

from typing import NamedTuple

from .plan_types import (
    DW_SEPARABLE,
    INCEPTION,
    INCEPTION_RESNET,
    SENET_BOTTLENECK,
    SHUFFLE,
    NetworkPlan,
    StagePlan,
)


class InceptionSpec(NamedTuple):
    """One BN-Inception module (Ioffe & Szegedy 2015, Fig. 5 of that paper's appendix).

    Branches: 1x1; 1x1 - 3x3; 1x1 - 3x3 - 3x3; pool - 1x1 projection. A module with stride 2
    has no 1x1 branch, strides its two 3x3 branches and passes the max-pooled input through.
    """

    c1x1: int
    c3x3_reduce: int
    c3x3: int
    d3x3_reduce: int
    d3x3: int
    pool: str  # "avg" or "max"
    pool_proj: int  # 0: the pooled input passes unprojected (stride-2 modules)
    stride: int = 1

    def out_channels(self, in_ch: int) -> int:
        return self.c1x1 + self.c3x3 + self.d3x3 + (self.pool_proj or in_ch)


# Stages 3, 4 and 5 of BN-Inception (modules 3a-3c, 4a-4e, 5a-5b), as in the released Caffe
# model that the SENet paper builds SE-BN-Inception on.
BN_INCEPTION_MODULES: tuple[tuple[InceptionSpec, ...], ...] = (
    (
        InceptionSpec(64, 64, 64, 64, 96, "avg", 32),
        InceptionSpec(64, 64, 96, 64, 96, "avg", 64),
        InceptionSpec(0, 128, 160, 64, 96, "max", 0, stride=2),
    ),
    (
        InceptionSpec(224, 64, 96, 96, 128, "avg", 128),
        InceptionSpec(192, 96, 128, 96, 128, "avg", 128),
        InceptionSpec(160, 128, 160, 128, 160, "avg", 128),
        InceptionSpec(96, 128, 192, 160, 192, "avg", 128),
        InceptionSpec(0, 128, 192, 192, 256, "max", 0, stride=2),
    ),
    (
        InceptionSpec(352, 192, 320, 160, 224, "avg", 128),
        InceptionSpec(352, 192, 320, 192, 224, "max", 128),
    ),
)
BN_INCEPTION_STEM = 192

# Inception-ResNet-v2: (residual blocks per stage, width, residual scale), after the module
# that opens the stage (Mixed_5b, the Reduction-A Mixed_6a, the Reduction-B Mixed_7a).
INCEPTION_RESNET_V2_STAGES = ((10, 320, 0.17), (20, 1088, 0.10), (10, 2080, 0.20))

# MobileNet v1 (width 1.0): per stage, (output width, units, stride of the first unit).
MOBILENET_V1_STAGES = ((64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2))

# ShuffleNet v1 1x, g=3: output widths and units of stages 2-4 (the first unit has stride 2).
SHUFFLENET_V1_STAGES = ((240, 4), (480, 8), (960, 4))
SHUFFLENET_GROUPS = 3

# SENet-154: 64x4d ResNeXt-152 layout; output width 4x planes, and so is the grouped 3x3.
SENET154_STAGES = ((64, 3), (128, 8), (256, 36), (512, 3))
SENET154_GROUPS = 64


def paper_plan(family: str) -> NetworkPlan:
    return _PLANNERS[family]()


def _bn_inception() -> NetworkPlan:
    stages, in_ch = [], BN_INCEPTION_STEM
    for modules in BN_INCEPTION_MODULES:
        widths, width = [], in_ch
        for spec in modules:
            width = spec.out_channels(width)
            widths.append(width)
        stride = 2 if any(spec.stride == 2 for spec in modules) else 1
        stages.append(
            StagePlan(
                INCEPTION,
                len(modules),
                in_ch,
                widths[-1],
                widths[-1],
                stride,
                unit_out=tuple(widths),
            )
        )
        in_ch = widths[-1]
    # The stride-2 modules concatenate a 3x3/2 conv (padding 1) with a 3x3/2 ceil-mode pool
    # (no padding): the two line up only on even maps, so the input is a multiple of 32.
    return NetworkPlan(
        "bn_inception",
        None,
        "bn_inception",
        BN_INCEPTION_STEM,
        tuple(stages),
        in_ch,
        min_input=32,
        input_multiple=32,
    )


def _inception_resnet_v2() -> NetworkPlan:
    stages, in_ch = [], 192
    for i, (blocks, width, _) in enumerate(INCEPTION_RESNET_V2_STAGES):
        stages.append(
            StagePlan(INCEPTION_RESNET, blocks + 1, in_ch, width, width, 1 if i == 0 else 2)
        )
        in_ch = width
    # Unpadded convs and pools: 75 px is the smallest input that leaves a 1x1 map at the end.
    return NetworkPlan(
        "inception_resnet_v2", None, "inception_resnet_v2", 192, tuple(stages), 1536, min_input=75
    )


def _mobilenet_v1() -> NetworkPlan:
    stages, in_ch = [], 32
    for width, units, stride in MOBILENET_V1_STAGES:
        stages.append(StagePlan(DW_SEPARABLE, units, in_ch, width, in_ch, stride))
        in_ch = width
    return NetworkPlan("mobilenet", None, "mobilenet_v1", 32, tuple(stages), in_ch)


def _shufflenet_v1() -> NetworkPlan:
    stages, in_ch = [], 24
    for width, units in SHUFFLENET_V1_STAGES:
        # the bottleneck is a quarter of the unit's output width, in every unit
        stages.append(
            StagePlan(SHUFFLE, units, in_ch, width, width // 4, 2, groups=SHUFFLENET_GROUPS)
        )
        in_ch = width
    return NetworkPlan("shufflenet", None, "shufflenet_v1", 24, tuple(stages), in_ch)


def _senet154() -> NetworkPlan:
    stages, in_ch = [], 128
    for i, (planes, blocks) in enumerate(SENET154_STAGES):
        width = planes * 4
        stages.append(
            StagePlan(
                SENET_BOTTLENECK,
                blocks,
                in_ch,
                width,
                width,
                1 if i == 0 else 2,
                groups=SENET154_GROUPS,
            )
        )
        in_ch = width
    return NetworkPlan("senet154", None, "senet154", 128, tuple(stages), in_ch)


_PLANNERS = {
    "bn_inception": _bn_inception,
    "inception_resnet_v2": _inception_resnet_v2,
    "mobilenet": _mobilenet_v1,
    "shufflenet": _shufflenet_v1,
    "senet154": _senet154,
}
