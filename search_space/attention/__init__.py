"""Channel-attention kinds: the one place where a kind is registered.

A kind is one `AttentionKind` entry: its name (the value of `arch.attention`), the module that
builds it, where it can sit (per unit kind), the defaults it brings and the `arch.se` knobs it
reads. Its own knobs live in their own section of the config (`arch.eca`, `arch.cbam`,
`arch.sk`). This module imports no torch, so configs validate without it; the builders are
imported when a network is built. Adding a kind: write its module (a `build` function, see
`se.py`), then one `register(AttentionKind(...))` call and one config section.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..backbones import BOTTLENECK
from ..placement import ALLOWED_PLACEMENTS, REPLACE_3X3

POOLED_SQUEEZES = ("avg", "max", "avgmax")


@dataclass(frozen=True)
class AttentionKind:
    name: str
    builder: str  # "module:function", relative to search_space; see `build`
    # unit kind -> placements it can take there; a unit kind missing here cannot host it.
    placements: Mapping[str, tuple[str, ...]]
    summary: str
    default_placement: str = "standard"
    default_squeeze: str = "avg"
    squeezes: tuple[str, ...] = POOLED_SQUEEZES
    reads: tuple[str, ...] = ()  # the arch.se knobs it reads, besides placement and stages
    section: str | None = None  # its own arch.<section>, if it has knobs
    # True: the block is a conv of the branch (built as the bottleneck's 3x3), not placed
    # around a transform.
    replaces_conv: bool = False

    def allowed_placements(self, block: str) -> tuple[str, ...]:
        return tuple(self.placements.get(block, ()))

    def build(self, *args: Any, **kwargs: Any) -> Any:
        module, _, function = self.builder.partition(":")
        builder: Callable[..., Any] = getattr(
            importlib.import_module(module, __package__.rsplit(".", 1)[0]), function
        )
        return builder(*args, **kwargs)


KINDS: dict[str, AttentionKind] = {}
NONE = "none"  # no attention: the plain network


def register(kind: AttentionKind) -> AttentionKind:
    if kind.name in KINDS or kind.name == NONE:
        raise ValueError(f"attention kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


def kind_names() -> tuple[str, ...]:
    """Every value `arch.attention` takes, `none` last."""
    return (*KINDS, NONE)


register(
    AttentionKind(
        name="se",
        builder=".se:build",
        placements=ALLOWED_PLACEMENTS,
        squeezes=(*POOLED_SQUEEZES, "none"),
        reads=(
            "reduction",
            "rounding",
            "divisor",
            "min_reduced",
            "squeeze",
            "gate",
            "bias",
            "gate_init",
        ),
        summary="Squeeze-and-Excitation: pool, FC C->C/r, ReLU, FC C/r->C, gate, channel scale;"
        " squeeze none is the paper's NoSqueeze (1x1 convs on the full map)",
    )
)
register(
    AttentionKind(
        name="eca",
        builder=".attention.eca:build",
        placements=ALLOWED_PLACEMENTS,
        reads=("squeeze", "gate"),
        section="eca",
        summary="ECA: pool, 1D conv of kernel k across channels (no reduction), gate, "
        "channel scale",
    )
)
register(
    AttentionKind(
        name="cbam",
        builder=".attention.cbam:build",
        placements=ALLOWED_PLACEMENTS,
        default_squeeze="avgmax",
        reads=(
            "reduction",
            "rounding",
            "divisor",
            "min_reduced",
            "squeeze",
            "gate",
            "bias",
            "gate_init",
        ),
        section="cbam",
        summary="CBAM: a shared channel MLP on the avg- and max-pooled vectors (summed), gate,"
        " channel scale, then a kxk conv on the channel mean and max, BN, sigmoid, spatial scale",
    )
)
register(
    AttentionKind(
        name="sk",
        builder=".attention.sk:build",
        placements={BOTTLENECK: (REPLACE_3X3,)},
        default_placement=REPLACE_3X3,
        reads=("reduction", "rounding", "divisor", "min_reduced", "squeeze"),
        section="sk",
        replaces_conv=True,
        summary="Selective kernel: the bottleneck's 3x3 becomes M branches (3x3, dilation 1..M),"
        " summed, pooled, FC to max(C/r, L) + BN + ReLU, one FC per branch, softmax across "
        "branches",
    )
)
