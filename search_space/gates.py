"""The excitation gates as arithmetic: a gate's value for a bias, and the bias for a value.

`arch.se.gate_init` names the value a gate starts at; the network sets it through the bias of
the excitation's last layer, b = gate^-1(value), so that the gate is `value` where the rest of
that layer's input contributes nothing (its weights stay randomly initialised, so each channel
and image starts near, not at, the value). No torch here: configs validate without it.
"""

from __future__ import annotations

import math

# gate -> (lowest, highest) initial value it takes, both exclusive (None: unbounded). Each gate
# is invertible and positive there; a value on the boundary would start the gate saturated
# (hard_sigmoid, no gradient) or at an infinite bias (sigmoid, tanh).
GATE_INIT_RANGE: dict[str, tuple[float, float | None]] = {
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "tanh": (0.0, 1.0),
    "relu": (0.0, None),
}
# What a gate starts at with PyTorch's default init (a bias spread around 0).
DEFAULT_GATE_START = {"sigmoid": 0.5, "hard_sigmoid": 0.5, "tanh": 0.0, "relu": 0.0}
# A start near 1 that keeps the identity path open through the paper's deepest CIFAR networks
# (0.9975^54 = 0.87 for ResNet-164's 54 units): sigmoid(6); relu is linear there, so exactly 1.
RECOMMENDED_GATE_INIT = {"sigmoid": 0.9975, "hard_sigmoid": 0.9975, "tanh": 0.9975, "relu": 1.0}


def gate_value(gate: str, bias: float) -> float:
    """The gate's output for input `bias` (PyTorch's Sigmoid, Hardsigmoid, Tanh, ReLU)."""
    if gate == "sigmoid":
        return 1.0 / (1.0 + math.exp(-bias))
    if gate == "hard_sigmoid":
        return min(max(bias / 6.0 + 0.5, 0.0), 1.0)
    if gate == "tanh":
        return math.tanh(bias)
    if gate == "relu":
        return max(bias, 0.0)
    raise ValueError(f"se.gate: got {gate!r}; allowed: {', '.join(GATE_INIT_RANGE)}")


def gate_bias(gate: str, value: float) -> float:
    """The input at which `gate` outputs `value` (a value inside GATE_INIT_RANGE[gate])."""
    check_gate_init(gate, value)
    if gate == "sigmoid":
        return math.log(value / (1.0 - value))
    if gate == "hard_sigmoid":
        return 6.0 * value - 3.0
    if gate == "tanh":
        return math.atanh(value)
    return value  # relu


def describe_range(gate: str) -> str:
    low, high = GATE_INIT_RANGE[gate]
    return f"{low:g} < gate_init" + ("" if high is None else f" < {high:g}")


def check_gate_init(gate: str, value: float) -> None:
    """ValueError naming se.gate_init and the gate's allowed range, unless `value` is in it."""
    if gate not in GATE_INIT_RANGE:
        raise ValueError(f"se.gate: got {gate!r}; allowed: {', '.join(GATE_INIT_RANGE)}")
    low, high = GATE_INIT_RANGE[gate]
    if not math.isfinite(value) or value <= low or (high is not None and value >= high):
        raise ValueError(
            f"se.gate_init: {value:g} is not a starting value of the {gate} gate; allowed:"
            f" {describe_range(gate)} (e.g. {RECOMMENDED_GATE_INIT[gate]:g}), or null for"
            " PyTorch's default init"
        )
