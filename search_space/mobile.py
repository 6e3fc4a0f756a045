"""MobileNet v1 (width 1.0) and ShuffleNet v1 (1x, g=3), the mobile networks of the paper's Table 3.

MobileNet v1 (Howard et al. 2017): a 3x3/2 conv, then 13 depthwise-separable blocks (depthwise
3x3 - BN - ReLU6 - pointwise 1x1 - BN - ReLU6); SE follows each block's pointwise output, or its
depthwise 3x3 (`after_3x3`). Layers follow timm's `mobilenetv1_100` (ReLU6, as the released
TensorFlow model; the paper's text says ReLU).

ShuffleNet v1 (Zhang et al. 2018): grouped 1x1 - channel shuffle - depthwise 3x3 - grouped 1x1,
the bottleneck a quarter of the unit's output width; a stride-2 unit concatenates a 3x3/2
average-pooled shortcut with its branch instead of adding them. SE sits on the branch before
the addition or concatenation. Layer shapes follow the authors' release (megvii-model's
ShuffleNet-Series: the first unit's first 1x1 is not grouped, a classifier without bias).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .backbones import StagePlan, unit_channels
from .placement import inside_branch, se_width
from .units import Unit, conv_bn

# (arch, stage index, channels) -> the attention block; networks._make_se.
MakeSE = Callable[[Any, int, int], nn.Module]


def mobilenet_v1_stem(in_channels: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn(in_channels, 32, 3, 2, act=nn.ReLU6))


def mobilenet_v1_stage(arch: Any, index: int, make_se: MakeSE) -> nn.Sequential:
    stage, placement = arch.plan.stages[index], arch.se.placement
    units = []
    for u in range(stage.blocks):
        in_ch, mid_ch, out_ch = unit_channels(stage, u, stage.in_channels)
        se = (
            make_se(arch, index, se_width(placement, in_ch, mid_ch, out_ch))
            if arch.stage_enabled(index)
            else None
        )
        mid_se, unit_se = (se, None) if inside_branch(placement) else (None, se)
        units.append(
            dw_separable_unit(in_ch, out_ch, stage.stride if u == 0 else 1, unit_se, mid_se)
        )
    return nn.Sequential(*units)


def dw_separable_unit(
    in_ch: int, out_ch: int, stride: int, unit_se: nn.Module | None, mid_se: nn.Module | None
) -> Unit:
    layers = conv_bn(in_ch, in_ch, 3, stride, groups=in_ch, act=nn.ReLU6)
    if mid_se is not None:
        layers.append(mid_se)
    layers += conv_bn(in_ch, out_ch, 1, act=nn.ReLU6)
    return Unit(nn.Sequential(*layers), None, None, unit_se, "standard")


class ChannelShuffle(nn.Module):
    """Reshape the channels to (groups, C / groups), transpose, flatten (the paper's Fig. 1c)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def shuffle_branch(
    in_ch: int,
    mid_ch: int,
    out_ch: int,
    stride: int,
    groups: int,
    first_groups: int,
    mid_se: nn.Module | None,
) -> nn.Sequential:
    """GConv 1x1 - BN - ReLU - shuffle - DWConv 3x3 - BN - GConv 1x1 - BN (no final ReLU)."""
    layers = [
        *conv_bn(in_ch, mid_ch, 1, groups=first_groups),
        ChannelShuffle(groups),
        *conv_bn(mid_ch, mid_ch, 3, stride, groups=mid_ch, act=None),
    ]
    if mid_se is not None:
        layers.append(mid_se)
    layers += conv_bn(mid_ch, out_ch, 1, groups=groups, act=None)
    return nn.Sequential(*layers)


class ConcatUnit(nn.Module):
    """ShuffleNet's stride-2 unit: cat(shortcut(x), act(branch(x))), SE placed as in `Unit`.

    standard: SE on the branch before the concatenation; pre: at the head of the branch, the
    shortcut pooling the unscaled input; post: after the concatenation; identity: on the pooled
    shortcut.
    """

    def __init__(
        self,
        branch: nn.Module,
        shortcut: nn.Module,
        se: nn.Module | None = None,
        placement: str = "standard",
    ) -> None:
        super().__init__()
        self.branch, self.shortcut, self.act, self.se = branch, shortcut, nn.ReLU(inplace=True), se
        self.placement = placement if se is not None else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        place, se = self.placement, self.se
        out = self.branch(se(x) if place == "pre" else x)
        if place == "standard":
            out = se(out)
        identity = self.shortcut(x)
        if place == "identity":
            identity = se(identity)
        out = torch.cat((identity, self.act(out)), 1)
        return se(out) if place == "post" else out


def shuffle_se_width(placement: str, in_ch: int, mid_ch: int, out_ch: int, stride: int) -> int:
    """What SE sees in a ShuffleNet unit; a stride-2 unit's branch and shortcut are narrower."""
    if stride == 2 and placement == "standard":
        return out_ch - in_ch
    if stride == 2 and placement == "identity":
        return in_ch
    return se_width(placement, in_ch, mid_ch, out_ch)


def shufflenet_v1_stem(in_channels: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn(in_channels, 24, 3, 2), nn.MaxPool2d(3, 2, 1))


def shufflenet_v1_stage(arch: Any, index: int, make_se: MakeSE) -> nn.Sequential:
    stage, placement = arch.plan.stages[index], arch.se.placement
    units = []
    for u in range(stage.blocks):
        in_ch, mid_ch, out_ch = unit_channels(stage, u, stage.in_channels)
        stride = stage.stride if u == 0 else 1
        width = shuffle_se_width(placement, in_ch, mid_ch, out_ch, stride)
        se = make_se(arch, index, width) if arch.stage_enabled(index) else None
        units.append(shuffle_unit(stage, u, index == 0 and u == 0, se, placement))
    return nn.Sequential(*units)


def shuffle_unit(
    stage: StagePlan, u: int, first_unit_of_net: bool, se: nn.Module | None, placement: str
) -> nn.Module:
    in_ch, mid_ch, out_ch = unit_channels(stage, u, stage.in_channels)
    stride = stage.stride if u == 0 else 1
    mid_se, unit_se = (se, None) if inside_branch(placement) else (None, se)
    # The network's first 1x1 sees only the stem's 24 channels: too few to split in groups.
    first_groups = 1 if first_unit_of_net else stage.groups
    branch_out = out_ch - in_ch if stride == 2 else out_ch
    branch = shuffle_branch(in_ch, mid_ch, branch_out, stride, stage.groups, first_groups, mid_se)
    if stride == 2:
        return ConcatUnit(branch, nn.AvgPool2d(3, 2, 1), unit_se, placement)
    return Unit(branch, nn.Identity(), nn.ReLU(inplace=True), unit_se, placement)


def classifier(in_ch: int, num_classes: int, bias: bool = True) -> nn.Sequential:
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, num_classes, bias=bias)
    )
