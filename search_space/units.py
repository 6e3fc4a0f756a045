"""Network units: the transform branches of each family and one unit that places attention.

Every backbone builds its units as `Unit(branch, shortcut, act, se, placement)`; the
placement logic lives only in `Unit.forward`, so SE-PRE/POST/Identity/standard mean the same
thing on a basic block, a bottleneck, an inverted residual or a VGG conv block, and for every
attention kind (`se`, `eca`, `cbam`). `after_3x3` is the one placement inside the branch: the
branch builders take it as `mid_se`. A selective-kernel conv (`sk`) is not placed around a
transform: it is the bottleneck's 3x3 conv, passed as `mid_conv`.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU,
    bias: bool = False,
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=bias),
        nn.BatchNorm2d(out_ch),
    ]
    if act is not None:
        layers.append(act(inplace=True))
    return layers


def basic_branch(
    in_ch: int, out_ch: int, stride: int, groups: tuple[int, int] = (1, 1), act_last: bool = False
) -> nn.Sequential:
    """3x3 - 3x3 (ResNet-18/34, CIFAR ResNet-6n+2); the last BN has no activation unless
    `act_last` (the SE-ResNet-18/34 of timm's legacy SENet port has one before SE)."""
    return nn.Sequential(
        *conv_bn(in_ch, out_ch, 3, stride, groups[0]),
        *conv_bn(out_ch, out_ch, 3, groups=groups[1], act=nn.ReLU if act_last else None),
    )


def bottleneck_branch(
    in_ch: int,
    mid_ch: int,
    out_ch: int,
    stride: int,
    groups: int = 1,
    mid_se: nn.Module | None = None,
    mid_conv: nn.Module | None = None,
    stride_on_1x1: bool = False,
) -> nn.Sequential:
    """1x1 - 3x3 - 1x1; SE_3x3 goes after the 3x3 block.

    The stride sits on the 3x3 (torchvision's ResNet v1.5) unless `stride_on_1x1` (the paper's
    released Caffe SE-ResNets, ResNet v1). `mid_conv` replaces the 3x3 conv-BN-ReLU (SKNet).
    """
    first, mid = (stride, 1) if stride_on_1x1 else (1, stride)
    layers = conv_bn(in_ch, mid_ch, 1, first)
    layers += [mid_conv] if mid_conv is not None else conv_bn(mid_ch, mid_ch, 3, mid, groups)
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
    """out = act(branch(x) + shortcut(x)), with attention placed as `placement` says.

    The paper's Fig. 5, with F the branch, S the shortcut and A the attention block:
    standard act(A(F(x)) + S(x)); pre act(F(A(x)) + S(x)), the identity carrying the unscaled
    input; post A(act(F(x) + S(x))); identity act(F(x) + A(S(x))).
    `shortcut=None` is a unit without a residual connection (VGG, some MobileNetV2 units);
    `act=None` is a unit without a final activation (MobileNetV2's linear bottleneck, the
    pre-activation units). `pre_act` is a pre-activation unit's opening BN-ReLU, a = P(x): the
    branch (and A, for pre) sees a; the shortcut sees x, or a when `shortcut_pre_act` (a
    projection, as in He et al. 2016): standard A(F(a)) + S, pre F(A(a)) + S, post
    A(F(a) + S), identity F(a) + A(S).
    """

    def __init__(
        self,
        branch: nn.Module,
        shortcut: nn.Module | None,
        act: nn.Module | None,
        se: nn.Module | None = None,
        placement: str = "standard",
        pre_act: nn.Module | None = None,
        shortcut_pre_act: bool = False,
    ) -> None:
        super().__init__()
        self.pre_act = pre_act  # registered first: the state dict follows the forward order
        self.branch, self.shortcut, self.act, self.se = branch, shortcut, act, se
        self.shortcut_pre_act = shortcut_pre_act
        # after_3x3 lives inside the branch: nothing left to place here.
        self.placement = placement if se is not None else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        place, se = self.placement, self.se
        a = x if self.pre_act is None else self.pre_act(x)
        out = self.branch(se(a) if place == "pre" else a)
        if self.shortcut is None:
            if place == "standard":
                out = se(out)
        else:
            identity = self.shortcut(a if self.shortcut_pre_act else x)
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
