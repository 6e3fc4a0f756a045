"""Stem, stages and head of the paper's other networks, for `networks.build_model`.

Each family builds its stages from its plan and takes its attention blocks from the factory
`build_model` passes in (`networks._make_se`), so every attention kind and every `arch.se` knob
reaches these networks the same way it reaches the ResNets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from . import inception, mobile, senet154
from .backbones import PAPER_FAMILIES, NetworkPlan

MakeSE = Callable[[Any, int, int], nn.Module]

_STAGES: dict[str, Callable[[Any, int, MakeSE], nn.Sequential]] = {
    "bn_inception": inception.bn_inception_stage,
    "inception_resnet_v2": inception.inception_resnet_v2_stage,
    "mobilenet": mobile.mobilenet_v1_stage,
    "shufflenet": mobile.shufflenet_v1_stage,
    "senet154": senet154.senet154_stage,
}
_STEMS: dict[str, Callable[[int], nn.Module]] = {
    "bn_inception": inception.bn_inception_stem,
    "inception_resnet_v2": inception.inception_resnet_v2_stem,
    "mobilenet_v1": mobile.mobilenet_v1_stem,
    "shufflenet_v1": mobile.shufflenet_v1_stem,
    "senet154": senet154.senet154_stem,
}
STEMS = frozenset(_STEMS)


def is_paper_family(plan: NetworkPlan) -> bool:
    return plan.family in PAPER_FAMILIES


def build_stage(arch: Any, index: int, make_se: MakeSE) -> nn.Sequential:
    return _STAGES[arch.plan.family](arch, index, make_se)


def build_stem(plan: NetworkPlan, in_channels: int) -> nn.Module:
    return _STEMS[plan.stem](in_channels)


def build_head(plan: NetworkPlan, num_classes: int) -> nn.Module:
    if plan.family == "inception_resnet_v2":  # its head opens with a 1x1 conv to 1536
        return inception.inception_resnet_v2_head(num_classes)
    if plan.family == "senet154":
        return senet154.senet154_head(plan.head_channels, num_classes)
    # ShuffleNet v1's classifier has no bias in the authors' release
    return mobile.classifier(plan.head_channels, num_classes, bias=plan.family != "shufflenet")
