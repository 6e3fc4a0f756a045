"""ECA (Wang et al., CVPR 2020): a 1D conv across the pooled channel vector, no reduction."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..se import GATES, rescale, squeeze

if TYPE_CHECKING:
    from ..config import ArchConfig


def eca_kernel(channels: int, gamma: int = 2, beta: int = 1) -> int:
    """The ECA paper's adaptive kernel: |(log2 C + b) / gamma|, made odd upward."""
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """pool - Conv1d(1, 1, k) across channels - gate, then x * s (per channel)."""

    def __init__(self, channels: int, kernel: int, squeeze: str = "avg", gate: str = "sigmoid"):
        super().__init__()
        self.channels, self.kernel, self.squeeze = channels, kernel, squeeze
        self.conv = nn.Conv1d(1, 1, kernel, padding=(kernel - 1) // 2, bias=False)
        self.gate = GATES[gate]()

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        y = squeeze(x, self.squeeze)[:, None, :]  # (N, 1, C): channels as a sequence
        s = self.gate(self.conv(y))
        return rescale(x, s[:, 0, :, None, None], residual)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel={self.kernel}, squeeze={self.squeeze}"


def build(arch: ArchConfig, stage_index: int, channels: int) -> nn.Module:
    return ECA(channels, arch.eca.kernel_for(channels), arch.se.squeeze, arch.se.gate)
