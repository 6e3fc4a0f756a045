"""What POST and Identity do to a deep network at init, as a note before anything trains.

SE-POST scales a unit's output, x_{l+1} = s · act(x_l + F(x_l)), and SE-Identity its shortcut,
x_{l+1} = act(F(x_l) + s · x_l): either way the identity path of every unit is multiplied by
the gate. Gates start at about 0.5 (PyTorch's default init of the excitation, sigmoid(0)), so
after n units the identity path carries about 0.5^n of the signal: 10^-16 through the 54 units
of ResNet-164. Each branch's BN restores the forward signal, so the network behaves like a plain
(non-residual) one of that depth, and does not train; starting the gates near 1
(`arch.se.gate_init`) keeps the path open. docs/placements.md has the measurements.

`identity_path_note(arch)` is the note `selab validate` / `run` print and reports show beside a
row that trained at chance; None when there is nothing to say. No torch here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .backbones import residual_units
from .gates import DEFAULT_GATE_START, RECOMMENDED_GATE_INIT

if TYPE_CHECKING:
    from .config import ArchConfig

# The placements that multiply the identity path by the gate.
GATED_IDENTITY = ("post", "identity")
# Below this product of initial gates the note is shown: ResNet-20 (0.5^9 = 10^-2.7) and
# SE-ResNet-50 (0.5^16 = 10^-4.8, all placements train in the paper) stay above it;
# ResNet-56 (0.5^27 = 10^-8.1, POST 45% error on digits) falls below.
NOTE_BELOW = 1e-6


def gated_units(arch: ArchConfig) -> int:
    """Residual units whose identity path the attention block scales (0 unless POST or
    Identity): every residual unit of the stages that carry attention."""
    if not arch.has_attention or arch.se.placement not in GATED_IDENTITY:
        return 0
    return sum(
        residual_units(stage) for i, stage in enumerate(arch.plan.stages) if arch.stage_enabled(i)
    )


def initial_block_scale(arch: ArchConfig, gate_init: float | None = None) -> float:
    """What one attention block multiplies by at init, nominally (its excitation's input at
    zero): the gate's start, times CBAM's spatial sigmoid gate's. `gate_init` overrides the
    config's."""
    value = gate_init if gate_init is not None else arch.se.gate_init
    if value is None:  # ECA (no bias) always starts here, the others by default
        channel, spatial = DEFAULT_GATE_START[arch.se.gate], DEFAULT_GATE_START["sigmoid"]
    else:
        channel = spatial = value
    return channel * spatial if arch.attention == "cbam" else channel


def identity_path_gain(arch: ArchConfig, gate_init: float | None = None) -> float:
    """The product of the initial gates along the identity path (1.0 where nothing gates it)."""
    return initial_block_scale(arch, gate_init) ** gated_units(arch)


def _power(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e} (10^{math.log10(value):.1f})"


def identity_path_note(arch: ArchConfig) -> str | None:
    """A note (not an error) when a placement that gates the identity path makes its product of
    initial gates vanish: the depth, the product, and the knob that fixes it; else None."""
    units = gated_units(arch)
    gain = identity_path_gain(arch)
    if units == 0 or gain >= NOTE_BELOW:
        return None
    scale = initial_block_scale(arch)
    start = (
        "PyTorch's default init"
        if arch.se.gate_init is None
        else f"arch.se.gate_init {arch.se.gate_init:g}"
    )
    text = (
        f"arch.se.placement {arch.se.placement} multiplies the identity path of every"
        f" residual unit by the {arch.attention} gate; {arch.name} has {units} such units and"
        f" each starts at about {scale:g} ({start}), so at init the identity path carries"
        f" {scale:g}^{units} = {_power(gain)} of the signal: the network starts as a plain"
        f" {arch.name} without shortcuts and may not train (the gradient reaching the stem is"
        " orders of magnitude off the network without attention)."
    )
    return text + " " + _fix(arch, units)


def _fix(arch: ArchConfig, units: int) -> str:
    if arch.kind is None or "gate_init" not in arch.kind.reads:
        return (
            f"attention {arch.attention} has no gate bias to start near 1; placement"
            " standard or pre keeps the identity path ungated. See docs/placements.md."
        )
    value = RECOMMENDED_GATE_INIT[arch.se.gate]
    if arch.attention == "cbam":  # its spatial gate is a sigmoid: below 1
        value = min(value, RECOMMENDED_GATE_INIT["sigmoid"])
    gain = identity_path_gain(arch, value)
    start = initial_block_scale(arch, value)
    return (
        f"Set arch.se.gate_init: {value:g} to start the gates near 1 (then"
        f" {start:.4g}^{units} = {gain:.2f}). See docs/placements.md."
    )
