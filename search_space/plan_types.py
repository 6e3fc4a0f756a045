"""The plan types: what a backbone's layout is made of (stages, unit kinds, widths, strides).

Pure data, no torch. `backbones` (the classic families) and `paper_plans` (the SENet paper's
other networks) both build plans of these types and import them from here, so that
`backbones` can hand the paper's families to `paper_plans` without `paper_plans` importing
`backbones` back.
"""

from __future__ import annotations

from dataclasses import dataclass

BASIC = "basic"
BOTTLENECK = "bottleneck"
INVERTED = "inverted"  # MobileNetV2's inverted residual
CONV = "conv"  # VGG's conv-bn-relu: no residual
# The other networks of the SENet paper (plans in paper_plans.py, modules in inception.py,
# mobile.py and senet154.py).
INCEPTION = "inception"  # a BN-Inception module: parallel branches, concatenated, no residual
INCEPTION_RESNET = "inception_resnet"  # Inception-ResNet-v2; a stage opens with a reduction
DW_SEPARABLE = "dw_separable"  # MobileNet v1: depthwise 3x3 - pointwise 1x1, no residual
SHUFFLE = "shuffle"  # ShuffleNet v1 unit: stride 2 concatenates an avg-pooled shortcut
SENET_BOTTLENECK = "senet_bottleneck"  # SENet-154: the first 1x1 at half the 3x3's width


@dataclass(frozen=True)
class StagePlan:
    """One stage: `blocks` units of one kind; the first may change width and stride."""

    block: str
    blocks: int
    in_channels: int  # input width of the stage's first unit
    out_channels: int  # output width of every unit
    mid_channels: int  # width of the 3x3 (bottleneck) or depthwise (inverted) conv
    stride: int
    groups: int = 1  # ResNeXt cardinality on the 3x3 conv
    expansion: int = 1  # MobileNetV2 expansion ratio t
    unit_out: tuple[int, ...] = ()  # per-unit output widths where units differ (Inception)


@dataclass(frozen=True)
class NetworkPlan:
    family: str
    depth: int | None
    stem: str  # "imagenet" (7x7/2 + maxpool), "cifar" (3x3), "mobilenet" (3x3/2), "none"
    stem_channels: int
    stages: tuple[StagePlan, ...]
    head_channels: int  # width entering the classifier
    min_input: int = 8  # smallest input_size the network takes
    input_multiple: int = 1  # input_size must be a multiple of this (concats must line up)
    # Pre-activation units (He et al. 2016, "Identity Mappings"): BN-ReLU before each conv,
    # nothing after the addition, one BN-ReLU before the head.
    preact: bool = False

    @property
    def has_bottleneck(self) -> bool:
        return any(s.block in (BOTTLENECK, INVERTED) for s in self.stages)
