"""CBAM (Woo et al., ECCV 2018): channel attention, then spatial attention."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..se import GATES, rescale, squeeze, start_gate_at

if TYPE_CHECKING:
    from ..config import ArchConfig

# se.squeeze -> the pooled descriptors the shared channel MLP sees (CBAM: both).
POOLS = {"avg": ("avg",), "max": ("max",), "avgmax": ("avg", "max")}


class CBAM(nn.Module):
    """x * gate(sum over pools of MLP(pool(x))), then * sigmoid(BN(conv([mean_c, max_c])))."""

    def __init__(
        self,
        channels: int,
        reduced: int,
        squeeze: str = "avgmax",
        gate: str = "sigmoid",
        bias: bool = True,
        spatial_kernel: int = 7,
    ) -> None:
        super().__init__()
        self.channels, self.reduced, self.squeeze = channels, reduced, squeeze
        self.pools = POOLS[squeeze]
        self.fc1 = nn.Linear(channels, reduced, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(reduced, channels, bias=bias)
        self.gate, self.gate_kind = GATES[gate](), gate
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)
        self.spatial_bn = nn.BatchNorm2d(1)
        self.spatial_gate = nn.Sigmoid()

    def start_gates(self, value: float) -> None:
        """Start both gates at `value` (arch.se.gate_init): the block starts scaling by value²."""
        start_gate_at(self.fc2, self.gate_kind, value, terms=len(self.pools))
        start_gate_at(self.spatial_bn, "sigmoid", value)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.fc2(self.act(self.fc1(squeeze(x, self.pools[0]))))
        for pool in self.pools[1:]:  # the MLP is shared: each descriptor goes through it
            logits = logits + self.fc2(self.act(self.fc1(squeeze(x, pool))))
        x = x * self.gate(logits)[:, :, None, None]
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        s = self.spatial_gate(self.spatial_bn(self.spatial(pooled)))
        return rescale(x, s, residual)

    def extra_repr(self) -> str:
        return f"squeeze={self.squeeze}"


def build(arch: ArchConfig, stage_index: int, channels: int) -> nn.Module:
    se = arch.se
    return CBAM(
        channels,
        se.reduced_width(channels, stage_index),
        se.squeeze,
        se.gate,
        se.bias,
        arch.cbam.spatial_kernel,
    )
