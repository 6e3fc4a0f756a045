"""The Squeeze-and-Excitation block: squeeze to one number per channel, excite, rescale.

Plain on purpose (compare timm's SEModule): two Linear layers on the pooled vector rather than
1x1 convs on a 1x1 map (PyTorch routes those through its slower conv path), and the channel
scale fused with the residual addition (`torch.addcmul`) when the unit has one, as the paper's
Caffe release fuses them in one layer. `NoSqueezeExcite` is the paper's NoSqueeze ablation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .gates import gate_bias

if TYPE_CHECKING:
    from .config import ArchConfig

SQUEEZES = ("avg", "max", "avgmax")
GATES: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}


def squeeze(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Global pooling of an (N, C, H, W) map to (N, C)."""
    if kind == "avg":
        return x.mean((2, 3))
    if kind == "max":
        return x.amax((2, 3))
    if kind == "avgmax":  # both descriptors, summed
        return x.mean((2, 3)) + x.amax((2, 3))
    raise ValueError(f"squeeze: got {kind!r}; allowed: {', '.join(SQUEEZES)}")


@torch.no_grad()
def start_gate_at(layer: nn.Module, gate: str, value: float, terms: int = 1) -> None:
    """Set the bias of `layer` (the excitation's last layer) so that `gate` outputs `value`
    where the rest of the layer's input contributes nothing; `terms`: how many outputs of the
    layer are summed before the gate (CBAM's shared MLP on two pools)."""
    layer.bias.fill_(gate_bias(gate, value) / terms)


def rescale(x: torch.Tensor, s: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    """x * s, or residual + x * s in one fused op; s broadcasts over x."""
    if residual is None:
        return x * s
    return torch.addcmul(residual, x, s)


class SqueezeExcite(nn.Module):
    """FC(C -> C_r) - ReLU - FC(C_r -> C) - gate, then x * s (per channel)."""

    def __init__(
        self,
        channels: int,
        reduced: int,
        squeeze: str = "avg",
        gate: str = "sigmoid",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if squeeze not in SQUEEZES:
            raise ValueError(f"squeeze: got {squeeze!r}; allowed: {', '.join(SQUEEZES)}")
        self.channels, self.reduced, self.squeeze = channels, reduced, squeeze
        self.fc1 = nn.Linear(channels, reduced, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(reduced, channels, bias=bias)
        self.gate, self.gate_kind = GATES[gate](), gate

    def start_gates(self, value: float) -> None:
        """Start the gate at `value` (arch.se.gate_init)."""
        start_gate_at(self.fc2, self.gate_kind, value)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Rescale x; with `residual`, return residual + x * s in one fused op."""
        s = self.gate(self.fc2(self.act(self.fc1(squeeze(x, self.squeeze)))))
        return rescale(x, s[:, :, None, None], residual)

    def extra_repr(self) -> str:
        return f"squeeze={self.squeeze}"


class NoSqueezeExcite(nn.Module):
    """NoSqueeze: the same two layers as 1x1 convs on the full map, so s varies per position.

    The paper's ablation of the squeeze: same widths and parameters, no global pooling.
    """

    def __init__(self, channels: int, reduced: int, gate: str = "sigmoid", bias: bool = True):
        super().__init__()
        self.channels, self.reduced, self.squeeze = channels, reduced, "none"
        self.fc1 = nn.Conv2d(channels, reduced, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1, bias=bias)
        self.gate, self.gate_kind = GATES[gate](), gate

    def start_gates(self, value: float) -> None:
        start_gate_at(self.fc2, self.gate_kind, value)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return rescale(x, self.gate(self.fc2(self.act(self.fc1(x)))), residual)


def build(arch: ArchConfig, stage_index: int, channels: int) -> nn.Module:
    se = arch.se
    reduced = se.reduced_width(channels, stage_index)
    if se.squeeze == "none":
        return NoSqueezeExcite(channels, reduced, se.gate, se.bias)
    return SqueezeExcite(channels, reduced, se.squeeze, se.gate, se.bias)
