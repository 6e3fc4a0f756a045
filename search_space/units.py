"""Network units: the transform branches of each family and one unit that places SE.

Every backbone builds its units as `Unit(branch, shortcut, act, se, placement)`; the
placement logic lives only in `Unit.forward`, so SE-PRE/POST/Identity/standard mean the same
thing on a basic block, a bottleneck, an inverted residual or a VGG conv block. `after_3x3`
is the one placement inside the branch: the branch builders take it as `mid_se`.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU, bias: bool = False,
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=bias),
        nn.BatchNorm2d(out_ch),
    ]
    if act is not None:
        layers.append(act(inplace=True))
    return layers


def basic_branch(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """3x3 - 3x3 (ResNet-18/34, CIFAR ResNet-6n+2); the last BN has no activation."""
    return nn.Sequential(*conv_bn(in_ch, out_ch, 3, stride), *conv_bn(out_ch, out_ch, 3, act=None))


def bottleneck_branch(
    in_ch: int, mid_ch: int, out_ch: int, stride: int, groups: int = 1,
    mid_se: nn.Module | None = None,
) -> nn.Sequential:
    """1x1 - 3x3 (stride here, as torchvision's v1.5) - 1x1; SE_3x3 goes after the 3x3 block."""
    layers = [*conv_bn(in_ch, mid_ch, 1), *conv_bn(mid_ch, mid_ch, 3, stride, groups)]
    if mid_se is not None:
        layers.append(mid_se)
    layers += conv_bn(mid_ch, out_ch, 1, act=None)
    return nn.Sequential(*layers)


def inverted_branch(
    in_ch: int, mid_ch: int, out_ch: int, stride: int, mid_se: nn.Module | None = None
) -> nn.Sequential:
    """MobileNetV2: expand 1x1 (unless t=1) - depthwise 3x3 - linear 1x1 projection."""
    layers: list[nn.Module] = []
    if mid_ch != in_ch:
        layers += conv_bn(in_ch, mid_ch, 1, act=nn.ReLU6)
    layers += conv_bn(mid_ch, mid_ch, 3, stride, groups=mid_ch, act=nn.ReLU6)
    if mid_se is not None:
        layers.append(mid_se)
    layers += conv_bn(mid_ch, out_ch, 1, act=None)
    return nn.Sequential(*layers)


def projection(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """The identity branch: identity when shapes match, else 1x1 conv + BN (option B)."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(*conv_bn(in_ch, out_ch, 1, stride, act=None))


class Unit(nn.Module):
    """out = act(branch(x) + shortcut(x)), with SE placed as `placement` says.

    `shortcut=None` is a unit without a residual connection (VGG, some MobileNetV2 units);
    `act=None` is a unit without a final activation (MobileNetV2's linear bottleneck).
    """

    def __init__(
        self, branch: nn.Module, shortcut: nn.Module | None, act: nn.Module | None,
        se: nn.Module | None = None, placement: str = "standard",
    ) -> None:
        super().__init__()
        self.branch, self.shortcut, self.act, self.se = branch, shortcut, act, se
        # after_3x3 lives inside the branch: nothing left to place here.
        self.placement = placement if se is not None else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        place, se = self.placement, self.se
        if place == "pre":
            x = se(x)
        out = self.branch(x)
        if self.shortcut is None:
            if place == "standard":
                out = se(out)
        else:
            identity = self.shortcut(x)
            if place == "standard":  # residual * s + identity, fused
                out = se(out, residual=identity)
            elif place == "identity":  # identity * s + residual, fused
                out = se(identity, residual=out)
            else:
                out = out + identity
        if self.act is not None:
            out = self.act(out)
        if place == "post":
            out = se(out)
        return out
