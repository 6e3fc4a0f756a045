"""Build an SE network from an `ArchConfig`.

Every network has the same three parts, `stem`, `stages` (one entry per stage of the plan,
the unit of per-stage enablement and per-stage cost) and `head`, so cost and reports can
address a stage the same way on every backbone. Layer shapes follow torchvision's ResNet,
ResNeXt, MobileNetV2 and VGG-BN, so a config with SE off has exactly their parameter count.
"""

from __future__ import annotations

import torch
from torch import nn

from . import paper_networks
from .backbones import BASIC, BOTTLENECK, CONV, INVERTED, NetworkPlan, unit_channels
from .config import ArchConfig
from .placement import inside_branch, se_width
from .preact import preact_basic_branch, preact_bottleneck_branch, preact_head, preact_unit
from .units import Unit, basic_branch, bottleneck_branch, conv_bn, inverted_branch, projection
from .weight_init import init_weights


class SENetwork(nn.Module):
    def __init__(self, stem: nn.Module, stages: list[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def build_model(arch: ArchConfig) -> SENetwork:
    """The network of `arch`, freshly initialised (torchvision's init scheme, and the init
    knobs `arch.se.gate_init` and `arch.zero_init_residual`: search_space.weight_init)."""
    plan = arch.plan
    stem = _stem(plan, arch.in_channels, arch.layout)
    stages = [_stage(arch, plan, i) for i in range(len(plan.stages))]
    model = SENetwork(stem, stages, _head(plan, arch))
    init_weights(model, arch)
    return model


def make_attention(arch: ArchConfig, stage_index: int, channels: int) -> nn.Module:
    """The attention block of `arch` (se, eca, cbam) for a unit of `stage_index` whose block
    sees `channels` channels; every builder creates its blocks through this one function."""
    kind = arch.kind
    if kind is None or kind.replaces_conv:
        raise ValueError(f"attention {arch.attention!r} is not a block placed in a unit")
    return kind.build(arch, stage_index, channels)


_make_se = make_attention  # the name the builders used before attention kinds existed


def _stage(arch: ArchConfig, plan: NetworkPlan, index: int) -> nn.Sequential:
    if paper_networks.is_paper_family(plan):  # Inception, MobileNet v1, ShuffleNet v1, SENet-154
        return paper_networks.build_stage(arch, index, make_attention)
    stage = plan.stages[index]
    with_attention = arch.stage_enabled(index)
    placement = arch.se.placement
    units = []
    for u in range(stage.blocks):
        in_ch, mid_ch, out_ch = unit_channels(stage, u, stage.in_channels)
        stride = stage.stride if u == 0 else 1
        mid_conv = mid_se = unit_se = None
        if with_attention and arch.kind.replaces_conv:  # sk: the 3x3 conv itself
            mid_conv = arch.kind.build(arch, index, mid_ch, stride, arch.conv_groups(index, mid_ch))
        elif with_attention:
            block = make_attention(arch, index, se_width(placement, in_ch, mid_ch, out_ch))
            mid_se, unit_se = (block, None) if inside_branch(placement) else (None, block)
        if plan.preact:
            units.append(_preact_unit(arch, index, u, stride, mid_se, unit_se))
            continue
        units.append(_unit(arch, index, in_ch, mid_ch, out_ch, stride, mid_se, unit_se, mid_conv))
    if stage.block == CONV:
        units.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*units)


def _unit(
    arch: ArchConfig,
    index: int,
    in_ch: int,
    mid_ch: int,
    out_ch: int,
    stride: int,
    mid_se: nn.Module | None,
    unit_se: nn.Module | None,
    mid_conv: nn.Module | None = None,
) -> Unit:
    stage, placement = arch.plan.stages[index], arch.se.placement
    if stage.block == BASIC:
        groups = (arch.conv_groups(index, in_ch), arch.conv_groups(index, out_ch))
        branch = basic_branch(in_ch, out_ch, stride, groups, act_last=arch.layout == "caffe")
        return Unit(
            branch, projection(in_ch, out_ch, stride), nn.ReLU(inplace=True), unit_se, placement
        )
    if stage.block == BOTTLENECK:
        branch = bottleneck_branch(
            in_ch,
            mid_ch,
            out_ch,
            stride,
            arch.conv_groups(index, mid_ch),
            mid_se,
            mid_conv,
            stride_on_1x1=arch.layout == "caffe" and arch.backbone == "resnet",
        )
        return Unit(
            branch, projection(in_ch, out_ch, stride), nn.ReLU(inplace=True), unit_se, placement
        )
    if stage.block == INVERTED:
        branch = inverted_branch(in_ch, mid_ch, out_ch, stride, mid_se)
        shortcut = nn.Identity() if stride == 1 and in_ch == out_ch else None
        return Unit(branch, shortcut, None, unit_se, placement)
    if stage.block == CONV:
        # torchvision's VGG-BN keeps the conv bias in front of BN.
        branch = nn.Sequential(*conv_bn(in_ch, out_ch, 3, bias=True))
        return Unit(branch, None, None, unit_se, placement)
    raise ValueError(f"unknown block kind {stage.block!r}")


def _preact_unit(
    arch: ArchConfig,
    index: int,
    u: int,
    stride: int,
    mid_se: nn.Module | None,
    unit_se: nn.Module | None,
) -> Unit:
    stage = arch.plan.stages[index]
    in_ch, mid_ch, out_ch = unit_channels(stage, u, stage.in_channels)
    if stage.block == BASIC:
        groups = (arch.conv_groups(index, in_ch), arch.conv_groups(index, out_ch))

        def branch_of(opens_with_act: bool) -> nn.Sequential:
            return preact_basic_branch(in_ch, out_ch, stride, groups, opens_with_act)
    else:
        groups_3x3 = arch.conv_groups(index, mid_ch)

        def branch_of(opens_with_act: bool) -> nn.Sequential:
            return preact_bottleneck_branch(
                in_ch, mid_ch, out_ch, stride, groups_3x3, opens_with_act, mid_se
            )

    return preact_unit(
        branch_of, in_ch, out_ch, stride, index == 0 and u == 0, unit_se, arch.se.placement
    )


def _stem(plan: NetworkPlan, in_channels: int, layout: str = "torchvision") -> nn.Module:
    if paper_networks.is_paper_family(plan):
        return paper_networks.build_stem(plan, in_channels)
    if plan.stem == "imagenet":
        # Caffe pools without padding and rounds up: the same size, other windows.
        pool = nn.MaxPool2d(3, 2, ceil_mode=True) if layout == "caffe" else nn.MaxPool2d(3, 2, 1)
        return nn.Sequential(*conv_bn(in_channels, 64, 7, 2), pool)
    if plan.stem == "cifar":
        return nn.Sequential(*conv_bn(in_channels, plan.stem_channels, 3))
    if plan.stem == "mobilenet":
        return nn.Sequential(*conv_bn(in_channels, plan.stem_channels, 3, 2, act=nn.ReLU6))
    return nn.Identity()


def _head(plan: NetworkPlan, arch: ArchConfig) -> nn.Module:
    if paper_networks.is_paper_family(plan):
        return paper_networks.build_head(plan, arch.num_classes)
    last = plan.stages[-1].out_channels
    if plan.preact:
        return preact_head(last, arch.num_classes)
    if plan.family == "mobilenet_v2":
        return nn.Sequential(
            *conv_bn(last, plan.head_channels, 1, act=nn.ReLU6),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(plan.head_channels, arch.num_classes),
        )
    if plan.family == "vgg" and arch.input_size >= 64:
        # torchvision's ImageNet classifier; small inputs get the CIFAR-style head below.
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(7),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, arch.num_classes),
        )
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, arch.num_classes))
