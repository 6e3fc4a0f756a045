"""Selective kernel conv (Li et al., SKNet, CVPR 2019), laid out as timm's SelectiveKernel.

It replaces a bottleneck's 3x3 conv-BN-ReLU: M branches (3x3 convs with dilation 1..M, so
receptive fields 3, 5, 7...), fused by summing, squeezed by pooling, one FC to
d = max(C/r, L) with BN and ReLU, one FC per branch (one C*M-wide FC), a softmax across the
branches per channel, and the attention-weighted sum of the branches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..se import squeeze

if TYPE_CHECKING:
    from ..config import ArchConfig


class SelectiveKernel(nn.Module):
    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        groups: int = 1,
        branches: int = 2,
        reduced: int = 32,
        squeeze: str = "avg",
    ) -> None:
        super().__init__()
        self.channels, self.branches, self.reduced = out_ch, branches, reduced
        self.squeeze = squeeze
        self.paths = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(
                    in_ch, out_ch, 3, stride, padding=d, dilation=d, groups=groups, bias=False
                ),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            )
            for d in range(1, branches + 1)
        )
        self.fc_reduce = nn.Linear(out_ch, reduced, bias=False)
        self.bn = nn.BatchNorm1d(reduced)
        self.act = nn.ReLU(inplace=True)
        self.fc_select = nn.Linear(reduced, out_ch * branches, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        paths = torch.stack([path(x) for path in self.paths], dim=1)  # (N, M, C, H, W)
        z = self.act(self.bn(self.fc_reduce(squeeze(paths.sum(1), self.squeeze))))
        weights = self.fc_select(z).view(-1, self.branches, self.channels).softmax(dim=1)
        return (paths * weights[:, :, :, None, None]).sum(1)

    def extra_repr(self) -> str:
        return f"branches={self.branches}, reduced={self.reduced}, squeeze={self.squeeze}"


def build(
    arch: ArchConfig, stage_index: int, channels: int, stride: int = 1, groups: int = 1
) -> nn.Module:
    """The SK conv for a bottleneck whose 3x3 conv has `channels` in and out."""
    reduced = max(arch.se.reduced_width(channels, stage_index), arch.sk.min_width)
    return SelectiveKernel(
        channels, channels, stride, groups, arch.sk.branches, reduced, arch.se.squeeze
    )
