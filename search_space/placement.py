"""Where an SE block sits in a unit, written down once for every backbone.

The paper's integration study (Fig. 5): `standard` on the residual branch before the addition,
`pre` on the unit's input, `post` after the addition (and the unit's final activation),
`identity` on the identity branch in parallel to the residual branch, `after_3x3` inside a
bottleneck right after the 3x3 conv (the depthwise 3x3 in MobileNetV2, as MobileNetV3 does).
Non-residual backbones (VGG) take SE after each conv block, which is `standard` for them.
"""

from __future__ import annotations

from typing import Literal

from .backbones import BASIC, BOTTLENECK, CONV, INVERTED

Placement = Literal["standard", "pre", "post", "identity", "after_3x3"]
PLACEMENTS: tuple[str, ...] = ("standard", "pre", "post", "identity", "after_3x3")

# Which placements each unit kind can host. MobileNetV2's units often have no identity branch
# (stride 2 or a width change), so SE-Identity is not defined for it.
ALLOWED_PLACEMENTS: dict[str, tuple[str, ...]] = {
    BASIC: ("standard", "pre", "post", "identity"),
    BOTTLENECK: PLACEMENTS,
    INVERTED: ("standard", "pre", "post", "after_3x3"),
    CONV: ("standard",),
}


def se_width(placement: str, in_ch: int, mid_ch: int, out_ch: int) -> int:
    """The number of channels the SE block of a unit sees."""
    if placement == "pre":
        return in_ch
    if placement == "after_3x3":
        return mid_ch
    return out_ch  # standard, post, identity: the unit's output width


def inside_branch(placement: str) -> bool:
    """True when SE lives inside the residual branch rather than around it."""
    return placement == "after_3x3"
