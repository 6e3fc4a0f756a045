"""SENet-154, the paper's ILSVRC 2017 entry: SE blocks in a 64x4d ResNeXt-152 with four changes.

(a) the first 1x1 of each bottleneck at half the width of the grouped 3x3 that follows it;
(b) a stem of three 3x3 convs (64, 64, 128) instead of the 7x7; (c) 3x3 stride-2 convs instead
of the 1x1 stride-2 projections on the downsampling shortcuts; (d) dropout 0.2 before the
classifier. Layer shapes follow timm's `legacy_senet154`, a port of the released model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .backbones import unit_channels
from .placement import inside_branch, se_width
from .units import Unit, conv_bn

MakeSE = Callable[[Any, int, int], nn.Module]
DROPOUT = 0.2


def senet154_stem(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        *conv_bn(in_channels, 64, 3, 2),
        *conv_bn(64, 64, 3),
        *conv_bn(64, 128, 3),
        nn.MaxPool2d(3, 2, ceil_mode=True),
    )


def senet154_branch(
    in_ch: int, mid_ch: int, out_ch: int, stride: int, groups: int, mid_se: nn.Module | None = None
) -> nn.Sequential:
    """1x1 to mid/2 - grouped 3x3 (stride here) to mid - 1x1; SE_3x3 after the 3x3 block."""
    layers = [*conv_bn(in_ch, mid_ch // 2, 1), *conv_bn(mid_ch // 2, mid_ch, 3, stride, groups)]
    if mid_se is not None:
        layers.append(mid_se)
    layers += conv_bn(mid_ch, out_ch, 1, act=None)
    return nn.Sequential(*layers)


def senet154_shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """Identity, a 1x1 projection (width change only), or a 3x3/2 conv when downsampling."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(*conv_bn(in_ch, out_ch, 3 if stride == 2 else 1, stride, act=None))


def senet154_stage(arch: Any, index: int, make_se: MakeSE) -> nn.Sequential:
    stage, placement = arch.plan.stages[index], arch.se.placement
    units = []
    for u in range(stage.blocks):
        in_ch, mid_ch, out_ch = unit_channels(stage, u, stage.in_channels)
        stride = stage.stride if u == 0 else 1
        se = (
            make_se(arch, index, se_width(placement, in_ch, mid_ch, out_ch))
            if arch.stage_enabled(index)
            else None
        )
        mid_se, unit_se = (se, None) if inside_branch(placement) else (None, se)
        branch = senet154_branch(in_ch, mid_ch, out_ch, stride, stage.groups, mid_se)
        units.append(
            Unit(
                branch,
                senet154_shortcut(in_ch, out_ch, stride),
                nn.ReLU(inplace=True),
                unit_se,
                placement,
            )
        )
    return nn.Sequential(*units)


def senet154_head(in_ch: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(DROPOUT), nn.Linear(in_ch, num_classes)
    )
