"""The Squeeze-and-Excitation block: squeeze to one number per channel, excite, rescale.

Plain on purpose (compare timm's SEModule): two Linear layers on the pooled vector rather than
1x1 convs on a 1x1 map (PyTorch routes those through its slower conv path), and the channel
scale fused with the residual addition (`torch.addcmul`) when the unit has one, as the paper's
Caffe release fuses them in one layer.
"""

from __future__ import annotations

import torch
from torch import nn

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


class SqueezeExcite(nn.Module):
    """FC(C -> C_r) - ReLU - FC(C_r -> C) - gate, then x * s (per channel)."""

    def __init__(
        self, channels: int, reduced: int, squeeze: str = "avg", gate: str = "sigmoid",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if squeeze not in SQUEEZES:
            raise ValueError(f"squeeze: got {squeeze!r}; allowed: {', '.join(SQUEEZES)}")
        self.channels, self.reduced, self.squeeze = channels, reduced, squeeze
        self.fc1 = nn.Linear(channels, reduced, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(reduced, channels, bias=bias)
        self.gate = GATES[gate]()

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Rescale x; with `residual`, return residual + x * s in one fused op."""
        s = self.gate(self.fc2(self.act(self.fc1(squeeze(x, self.squeeze)))))
        s = s[:, :, None, None]
        if residual is None:
            return x * s
        return torch.addcmul(residual, x, s)

    def extra_repr(self) -> str:
        return f"squeeze={self.squeeze}"
