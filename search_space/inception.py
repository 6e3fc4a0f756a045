"""BN-Inception and Inception-ResNet-v2, the Inception networks of the paper's Table 2.

SE-BN-Inception (the paper's Fig. 2): SE follows each whole Inception module, its input the
module's concatenated output. Layer shapes follow the released Caffe BN-Inception as ported to
PyTorch (Cadene's pretrained-models `bninception`: biased convs, ceil-mode pools).

SE-Inception-ResNet-v2: SE sits on the residual branch of each Inception-ResNet block (A, B, C),
after the 1x1 conv that restores the width and its residual scale, before the addition, as on a
ResNet; the modules without an identity branch (Mixed_5b and the two reduction modules, each
opening a stage) take SE after the whole module, as in SE-Inception. Layer shapes and names
follow timm's `inception_resnet_v2` (BN eps 1e-3, unpadded stride-2 convs, 299 px input).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .backbones import unit_channels
from .paper_plans import BN_INCEPTION_MODULES, INCEPTION_RESNET_V2_STAGES, InceptionSpec
from .placement import se_width
from .units import Unit

MakeSE = Callable[[Any, int, int], nn.Module]
Size = int | tuple[int, int]


def cbr(
    in_ch: int,
    out_ch: int,
    kernel: Size,
    stride: int = 1,
    padding: Size = 0,
    *,
    bias: bool = False,
    eps: float = 1e-3,
) -> nn.Sequential:
    """conv - BN - ReLU, named as timm's ConvNormAct (`conv`, `bn`)."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=bias),
            bn=nn.BatchNorm2d(out_ch, eps=eps),
            act=nn.ReLU(inplace=True),
        )
    )


class Mixed(nn.Module):
    """Parallel branches on one input, concatenated along the channels (`branch0`, ...)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(f"branch{i}", branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)


class Scale(nn.Module):
    """Inception-ResNet's constant residual scaling (0.1-0.2 keeps the deep stack stable)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


# ---- BN-Inception -------------------------------------------------------------------------


def _bn_cbr(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Module:
    return cbr(in_ch, out_ch, kernel, stride, padding, bias=True, eps=1e-5)


def bn_inception_module(in_ch: int, spec: InceptionSpec) -> Mixed:
    s = spec.stride
    branches: list[nn.Module] = []
    if spec.c1x1:
        branches.append(_bn_cbr(in_ch, spec.c1x1, 1))
    branches.append(
        nn.Sequential(
            _bn_cbr(in_ch, spec.c3x3_reduce, 1), _bn_cbr(spec.c3x3_reduce, spec.c3x3, 3, s, 1)
        )
    )
    branches.append(
        nn.Sequential(
            _bn_cbr(in_ch, spec.d3x3_reduce, 1),
            _bn_cbr(spec.d3x3_reduce, spec.d3x3, 3, 1, 1),
            _bn_cbr(spec.d3x3, spec.d3x3, 3, s, 1),
        )
    )
    if spec.pool == "avg":
        pool: nn.Module = nn.AvgPool2d(3, 1, 1, ceil_mode=True)
    else:  # stride 1 pads, stride 2 does not (as the Caffe model)
        pool = nn.MaxPool2d(3, s, 1 if s == 1 else 0, ceil_mode=True)
    branches.append(
        nn.Sequential(pool, _bn_cbr(in_ch, spec.pool_proj, 1)) if spec.pool_proj else pool
    )
    return Mixed(*branches)


def bn_inception_stem(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        _bn_cbr(in_channels, 64, 7, 2, 3),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        _bn_cbr(64, 64, 1),
        _bn_cbr(64, 192, 3, 1, 1),
        nn.MaxPool2d(3, 2, ceil_mode=True),
    )


def bn_inception_stage(arch: Any, index: int, make_se: MakeSE) -> nn.Sequential:
    stage = arch.plan.stages[index]
    units = []
    for u, spec in enumerate(BN_INCEPTION_MODULES[index]):
        in_ch, _, out_ch = unit_channels(stage, u, stage.in_channels)
        se = make_se(arch, index, out_ch) if arch.stage_enabled(index) else None
        units.append(Unit(bn_inception_module(in_ch, spec), None, None, se, "standard"))
    return nn.Sequential(*units)


# ---- Inception-ResNet-v2 ------------------------------------------------------------------


def inception_resnet_v2_stem(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv2d_1a=cbr(in_channels, 32, 3, 2),
            conv2d_2a=cbr(32, 32, 3),
            conv2d_2b=cbr(32, 64, 3, 1, 1),
            maxpool_3a=nn.MaxPool2d(3, 2),
            conv2d_3b=cbr(64, 80, 1),
            conv2d_4a=cbr(80, 192, 3),
            maxpool_5a=nn.MaxPool2d(3, 2),
        )
    )


def mixed_5b() -> Mixed:
    return Mixed(
        cbr(192, 96, 1),
        nn.Sequential(cbr(192, 48, 1), cbr(48, 64, 5, 1, 2)),
        nn.Sequential(cbr(192, 64, 1), cbr(64, 96, 3, 1, 1), cbr(96, 96, 3, 1, 1)),
        nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), cbr(192, 64, 1)),
    )


def mixed_6a() -> Mixed:  # Reduction-A
    return Mixed(
        cbr(320, 384, 3, 2),
        nn.Sequential(cbr(320, 256, 1), cbr(256, 256, 3, 1, 1), cbr(256, 384, 3, 2)),
        nn.MaxPool2d(3, 2),
    )


def mixed_7a() -> Mixed:  # Reduction-B
    return Mixed(
        nn.Sequential(cbr(1088, 256, 1), cbr(256, 384, 3, 2)),
        nn.Sequential(cbr(1088, 256, 1), cbr(256, 288, 3, 2)),
        nn.Sequential(cbr(1088, 256, 1), cbr(256, 288, 3, 1, 1), cbr(288, 320, 3, 2)),
        nn.MaxPool2d(3, 2),
    )


def _residual_branches(width: int) -> Mixed:
    if width == 320:  # Inception-ResNet-A (block35)
        return Mixed(
            cbr(320, 32, 1),
            nn.Sequential(cbr(320, 32, 1), cbr(32, 32, 3, 1, 1)),
            nn.Sequential(cbr(320, 32, 1), cbr(32, 48, 3, 1, 1), cbr(48, 64, 3, 1, 1)),
        )
    if width == 1088:  # Inception-ResNet-B (block17)
        return Mixed(
            cbr(1088, 192, 1),
            nn.Sequential(
                cbr(1088, 128, 1),
                cbr(128, 160, (1, 7), 1, (0, 3)),
                cbr(160, 192, (7, 1), 1, (3, 0)),
            ),
        )
    return Mixed(
        cbr(2080, 192, 1),  # Inception-ResNet-C (block8)
        nn.Sequential(
            cbr(2080, 192, 1), cbr(192, 224, (1, 3), 1, (0, 1)), cbr(224, 256, (3, 1), 1, (1, 0))
        ),
    )


def residual_branch(width: int, scale: float) -> nn.Sequential:
    """The branches, concatenated, a biased 1x1 back to `width`, then the residual scale."""
    mixed = _residual_branches(width)
    concat = sum(_last_conv(b).out_channels for b in mixed.children())
    return nn.Sequential(
        OrderedDict(mixed=mixed, conv2d=nn.Conv2d(concat, width, 1), scale=Scale(scale))
    )


def _last_conv(module: nn.Module) -> nn.Conv2d:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1]


_OPENING_MODULES = (mixed_5b, mixed_6a, mixed_7a)


def inception_resnet_v2_stage(arch: Any, index: int, make_se: MakeSE) -> nn.Sequential:
    stage, placement = arch.plan.stages[index], arch.se.placement
    blocks, width, scale = INCEPTION_RESNET_V2_STAGES[index]
    last_stage = index == len(INCEPTION_RESNET_V2_STAGES) - 1
    units = []
    for u in range(stage.blocks):
        in_ch, mid_ch, out_ch = unit_channels(stage, u, stage.in_channels)
        se = (
            make_se(arch, index, se_width(placement, in_ch, mid_ch, out_ch))
            if arch.stage_enabled(index)
            else None
        )
        if u == 0:
            units.append(Unit(_OPENING_MODULES[index](), None, None, se, placement))
            continue
        # The network's last block: no residual scale and no ReLU (timm's `block8`).
        final = last_stage and u == blocks
        branch = residual_branch(width, 1.0 if final else scale)
        act = None if final else nn.ReLU(inplace=True)
        units.append(Unit(branch, nn.Identity(), act, se, placement))
    return nn.Sequential(*units)


def inception_resnet_v2_head(num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv2d_7b=cbr(2080, 1536, 1),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            classif=nn.Linear(1536, num_classes),
        )
    )
