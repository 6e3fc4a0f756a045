"""Build an SE network from an `ArchConfig`.

Every network has the same three parts, `stem`, `stages` (one entry per stage of the plan,
the unit of per-stage enablement and per-stage cost) and `head`, so cost and reports can
address a stage the same way on every backbone. Layer shapes follow torchvision's ResNet,
ResNeXt, MobileNetV2 and VGG-BN, so a config with SE off has exactly their parameter count.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones import BASIC, BOTTLENECK, CONV, INVERTED, NetworkPlan, StagePlan, unit_channels
from .config import ArchConfig
from .placement import inside_branch, se_width
from .se import SqueezeExcite
from .units import Unit, basic_branch, bottleneck_branch, conv_bn, inverted_branch, projection


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
    """The network of `arch`, freshly initialised (torchvision's init scheme)."""
    plan = arch.plan
    stem = _stem(plan, arch.in_channels)
    stages = [_stage(arch, plan, i) for i in range(len(plan.stages))]
    model = SENetwork(stem, stages, _head(plan, arch))
    _init_weights(model)
    return model


def _make_se(arch: ArchConfig, stage_index: int, channels: int) -> SqueezeExcite:
    se = arch.se
    return SqueezeExcite(
        channels, se.reduced_width(channels, stage_index), se.squeeze, se.gate, se.bias
    )


def _stage(arch: ArchConfig, plan: NetworkPlan, index: int) -> nn.Sequential:
    stage = plan.stages[index]
    with_se = arch.stage_enabled(index)
    placement = arch.se.placement
    units = []
    for u in range(stage.blocks):
        in_ch, mid_ch, out_ch = unit_channels(stage, u, stage.in_channels)
        stride = stage.stride if u == 0 else 1
        se = _make_se(arch, index, se_width(placement, in_ch, mid_ch, out_ch)) if with_se else None
        mid_se, unit_se = (se, None) if inside_branch(placement) else (None, se)
        units.append(_unit(stage, in_ch, mid_ch, out_ch, stride, mid_se, unit_se, placement))
    if stage.block == CONV:
        units.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*units)


def _unit(
    stage: StagePlan, in_ch: int, mid_ch: int, out_ch: int, stride: int,
    mid_se: nn.Module | None, unit_se: nn.Module | None, placement: str,
) -> Unit:
    if stage.block == BASIC:
        branch = basic_branch(in_ch, out_ch, stride)
        return Unit(branch, projection(in_ch, out_ch, stride), nn.ReLU(inplace=True),
                    unit_se, placement)
    if stage.block == BOTTLENECK:
        branch = bottleneck_branch(in_ch, mid_ch, out_ch, stride, stage.groups, mid_se)
        return Unit(branch, projection(in_ch, out_ch, stride), nn.ReLU(inplace=True),
                    unit_se, placement)
    if stage.block == INVERTED:
        branch = inverted_branch(in_ch, mid_ch, out_ch, stride, mid_se)
        shortcut = nn.Identity() if stride == 1 and in_ch == out_ch else None
        return Unit(branch, shortcut, None, unit_se, placement)
    if stage.block == CONV:
        # torchvision's VGG-BN keeps the conv bias in front of BN.
        branch = nn.Sequential(*conv_bn(in_ch, out_ch, 3, bias=True))
        return Unit(branch, None, None, unit_se, placement)
    raise ValueError(f"unknown block kind {stage.block!r}")


def _stem(plan: NetworkPlan, in_channels: int) -> nn.Module:
    if plan.stem == "imagenet":
        return nn.Sequential(*conv_bn(in_channels, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
    if plan.stem == "cifar":
        return nn.Sequential(*conv_bn(in_channels, plan.stem_channels, 3))
    if plan.stem == "mobilenet":
        return nn.Sequential(*conv_bn(in_channels, plan.stem_channels, 3, 2, act=nn.ReLU6))
    return nn.Identity()


def _head(plan: NetworkPlan, arch: ArchConfig) -> nn.Module:
    last = plan.stages[-1].out_channels
    if plan.family == "mobilenet_v2":
        return nn.Sequential(
            *conv_bn(last, plan.head_channels, 1, act=nn.ReLU6),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
            nn.Linear(plan.head_channels, arch.num_classes),
        )
    if plan.family == "vgg" and arch.input_size >= 64:
        # torchvision's ImageNet classifier; small inputs get the CIFAR-style head below.
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(7), nn.Flatten(),
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, arch.num_classes),
        )
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, arch.num_classes))


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
