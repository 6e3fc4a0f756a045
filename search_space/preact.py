"""Pre-activation residual units (He et al. 2016, "Identity Mappings in Deep Residual Networks").

BN-ReLU comes before each conv and nothing after the addition, so the identity path carries
x + F(x) unchanged from unit to unit. The layout is He et al.'s CIFAR code (fb.resnet.torch's
preresnet.lua), the same as timm's `PreActBasic` / `PreActBottleneck`:

- a unit with an identity shortcut carries its raw input there; its branch opens with BN-ReLU;
- a unit with a projection (a 1x1 conv without BN) applies that BN-ReLU once, before splitting,
  and both paths see the activated input;
- the network's first unit follows the stem's conv-BN-ReLU and has no BN-ReLU of its own;
- one BN-ReLU after the last unit, before the pooling (the head's).

Attention is placed by the same `Unit.forward` as in every other network, on a = BN-ReLU(x):
standard on the branch's output (its last conv) before the addition, pre at the head of the
branch (after the opening BN-ReLU), post after the addition, identity on the shortcut, and
after_3x3 on the bottleneck's activated 3x3 output, right before its last 1x1 conv (where it
also sits in the post-activation bottleneck).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .units import Unit


def bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)


def preact_basic_branch(
    in_ch: int, out_ch: int, stride: int, groups: tuple[int, int], opens_with_act: bool
) -> nn.Sequential:
    """[BN-ReLU] 3x3 - BN-ReLU - 3x3 (pre-activation ResNet-110)."""
    layers = bn_relu(in_ch) if opens_with_act else []
    layers += [
        conv(in_ch, out_ch, 3, stride, groups[0]),
        *bn_relu(out_ch),
        conv(out_ch, out_ch, 3, groups=groups[1]),
    ]
    return nn.Sequential(*layers)


def preact_bottleneck_branch(
    in_ch: int,
    mid_ch: int,
    out_ch: int,
    stride: int,
    groups: int,
    opens_with_act: bool,
    mid_se: nn.Module | None = None,
) -> nn.Sequential:
    """[BN-ReLU] 1x1 - BN-ReLU - 3x3 (stride here) - BN-ReLU - [SE_3x3] - 1x1 (ResNet-164)."""
    layers = bn_relu(in_ch) if opens_with_act else []
    layers += [
        conv(in_ch, mid_ch, 1),
        *bn_relu(mid_ch),
        conv(mid_ch, mid_ch, 3, stride, groups),
        *bn_relu(mid_ch),
    ]
    if mid_se is not None:
        layers.append(mid_se)
    layers.append(conv(mid_ch, out_ch, 1))
    return nn.Sequential(*layers)


def preact_unit(
    branch_of: Callable[[bool], nn.Sequential],
    in_ch: int,
    out_ch: int,
    stride: int,
    first_of_network: bool,
    unit_se: nn.Module | None,
    placement: str,
) -> Unit:
    """A pre-activation unit; `branch_of(opens_with_act)` builds its branch."""
    projects = stride != 1 or in_ch != out_ch
    shared_act = projects and not first_of_network  # one BN-ReLU before splitting
    branch = branch_of(not projects and not first_of_network)
    shortcut = conv(in_ch, out_ch, 1, stride) if projects else nn.Identity()
    pre_act = nn.Sequential(*bn_relu(in_ch)) if shared_act else None
    return Unit(
        branch, shortcut, None, unit_se, placement, pre_act=pre_act, shortcut_pre_act=shared_act
    )


def preact_head(channels: int, num_classes: int) -> nn.Sequential:
    """The final BN-ReLU (after the last addition), global average pooling, the classifier."""
    return nn.Sequential(
        *bn_relu(channels), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)
    )
