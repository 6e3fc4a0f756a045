"""Where an SE block sits in a unit, written down once for every backbone.

The paper's integration study (Fig. 5): `standard` on the residual branch before the addition,
`pre` on the unit's input, `post` after the addition (and the unit's final activation),
`identity` on the identity branch in parallel to the residual branch, `after_3x3` inside a
bottleneck right after the 3x3 conv (the depthwise 3x3 in MobileNetV2, as MobileNetV3 does).
Non-residual backbones (VGG) take SE after each conv block, which is `standard` for them.
`replace_3x3` is the selective-kernel conv's place: it is the bottleneck's 3x3 conv itself.
"""

from __future__ import annotations

from typing import Literal

from .backbones import (
    BASIC,
    BOTTLENECK,
    CONV,
    DW_SEPARABLE,
    INCEPTION,
    INCEPTION_RESNET,
    INVERTED,
    SENET_BOTTLENECK,
    SHUFFLE,
)

Placement = Literal["standard", "pre", "post", "identity", "after_3x3", "replace_3x3"]
PLACEMENTS: tuple[str, ...] = ("standard", "pre", "post", "identity", "after_3x3")
REPLACE_3X3 = "replace_3x3"

# Which placements each unit kind can host. MobileNetV2's units often have no identity branch
# (stride 2 or a width change), so SE-Identity is not defined for it.
ALLOWED_PLACEMENTS: dict[str, tuple[str, ...]] = {
    BASIC: ("standard", "pre", "post", "identity"),
    BOTTLENECK: PLACEMENTS,
    INVERTED: ("standard", "pre", "post", "after_3x3"),
    CONV: ("standard",),
    # The paper's other networks. Non-residual units (an Inception module, MobileNet v1's
    # depthwise-separable block) take SE after the whole unit: `pre` would be the previous
    # unit's `standard` and `post` the same as `standard`. MobileNet v1 also takes SE after its
    # depthwise 3x3. Inception-ResNet's stages open with a module that has no identity branch.
    INCEPTION: ("standard",),
    INCEPTION_RESNET: ("standard", "pre", "post"),
    DW_SEPARABLE: ("standard", "after_3x3"),
    SHUFFLE: PLACEMENTS,
    SENET_BOTTLENECK: PLACEMENTS,
}


def se_width(placement: str, in_ch: int, mid_ch: int, out_ch: int) -> int:
    """The number of channels the SE block of a unit sees."""
    if placement == "pre":
        return in_ch
    if placement in ("after_3x3", REPLACE_3X3):
        return mid_ch
    return out_ch  # standard, post, identity: the unit's output width


def inside_branch(placement: str) -> bool:
    """True when SE lives inside the residual branch rather than around it."""
    return placement in ("after_3x3", REPLACE_3X3)
