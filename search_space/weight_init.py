"""How a built network's weights start: torchvision's scheme, and two knobs on top of it.

- Convs: Kaiming normal (fan_out, ReLU), biases zero; BN: scale 1, shift 0 (torchvision's
  ResNet). The attention blocks' FC layers keep PyTorch's default init (as timm's and
  torchvision's SE blocks keep their biases' defaults): the excitation's last bias is spread
  around 0, so a sigmoid gate starts near 0.5.
- `arch.se.gate_init`: the excitation's last bias set so the gate starts at that value (each
  block's `start_gates`; its weights keep their random init). POST and Identity multiply the
  identity path by the gate in every unit (docs/placements.md).
- `arch.zero_init_residual`: the last weight of every residual branch zeroed, its last BN's
  scale (torchvision's `zero_init_residual`, timm's ResNet `zero_init_last`, Goyal et al.
  2017) or, in a pre-activation unit, its last conv (timm's ResNetV2 `zero_init_last`), so
  every unit starts as its shortcut.

Neither knob draws random numbers: a network with them has the same random weights as one
without, and the defaults leave the network exactly as torchvision's scheme builds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from .units import Unit

if TYPE_CHECKING:
    from .config import ArchConfig


def init_weights(model: nn.Module, arch: ArchConfig) -> None:
    kaiming_scheme(model)
    if arch.has_attention and arch.se.gate_init is not None:
        for module in model.modules():
            if hasattr(module, "start_gates"):
                module.start_gates(arch.se.gate_init)
    if arch.zero_init_residual:
        for module in model.modules():
            if isinstance(module, Unit) and module.shortcut is not None:
                nn.init.zeros_(last_weighted_layer(module.branch).weight)


def kaiming_scheme(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def last_weighted_layer(branch: nn.Module) -> nn.Module:
    """The last BN or conv among the branch's own layers (not inside an attention block)."""
    layers = [m for m in branch.children() if isinstance(m, (nn.BatchNorm2d, nn.Conv2d))]
    if not layers:
        raise ValueError(f"a residual branch without a BN or conv layer: {branch}")
    return layers[-1]
