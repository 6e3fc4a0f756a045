"""Weights both ways between selab's networks and timm's or torchvision's.

A source is "library:model name", e.g. `timm:seresnet50` or `torchvision:resnet50`; each is one
entry of `EXTERNAL_MODELS`: the selab settings that build the same network, and the key
fragments that mark its attention modules. The conversion itself is one rule for every model:
both state dicts hold the same tensors in the same structural order (stem, units, head), except
that the attention block of a unit may be registered at another place in the unit. So each side
is split into attention tensors and the rest, each part is paired in order, every pair must
have the same shape (a 1x1 conv's weight pairs with a Linear's of the same numbers), and
`build_model(arch_for(source))` must reproduce the source's outputs, as the tests check.

    import timm
    from search_space import build_model
    from search_space.interop import arch_for, export_weights, load_external_weights

    model = build_model(arch_for("timm:seresnet50", num_classes=1000))
    load_external_weights(model, timm.create_model("seresnet50", pretrained=True).state_dict(),
                          "timm:seresnet50")
    timm_model = timm.create_model("seresnet50")
    timm_model.load_state_dict(export_weights(model, "timm:seresnet50"))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .attention.cbam import CBAM
from .attention.eca import ECA
from .config import ArchConfig
from .se import NoSqueezeExcite, SqueezeExcite

# Blocks that sit at a unit's level: their tensors are paired among themselves.
_UNIT_ATTENTION = (SqueezeExcite, NoSqueezeExcite, ECA, CBAM)


@dataclass(frozen=True)
class ExternalModel:
    arch: dict[str, Any]  # the selab settings of the same network
    attention_keys: tuple[str, ...] = ()  # fragments of its attention modules' keys
    kwargs: dict[str, Any] = field(default_factory=dict)  # for its constructor
    # builds it from num_classes, where the library registers no such name
    factory: Callable[[int], nn.Module] | None = None


def _timm(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    timm = importlib.import_module("timm")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)


def _torchvision(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    models = importlib.import_module("torchvision.models")
    return models.get_model(name, weights=None, num_classes=num_classes, **kwargs)


_CONSTRUCTORS = {"timm": _timm, "torchvision": _torchvision}


EXTERNAL_MODELS: dict[str, ExternalModel] = {}


def register_external(
    source: str,
    arch: dict[str, Any],
    attention_keys: tuple[str, ...] = (),
    factory: Callable[[int], nn.Module] | None = None,
    **kwargs: Any,
) -> None:
    """Add a model: `source` is "timm:<name>" or "torchvision:<name>"."""
    library = source.partition(":")[0]
    if library not in _CONSTRUCTORS:
        raise ValueError(f"source: {source!r}; the library must be one of {tuple(_CONSTRUCTORS)}")
    EXTERNAL_MODELS[source] = ExternalModel(arch, attention_keys, kwargs, factory)


def _torchvision_resnext101_32x4d(num_classes: int) -> nn.Module:
    # torchvision registers 32x8d and 64x4d only; its ResNet class builds 32x4d as timm does.
    resnet = importlib.import_module("torchvision.models.resnet")
    return resnet.ResNet(
        resnet.Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4, num_classes=num_classes
    )


def _plain(backbone: str) -> dict[str, Any]:
    return {"backbone": backbone, "attention": "none"}


# torchvision: the plain networks.
for _depth in (18, 34, 50, 101, 152):
    register_external(f"torchvision:resnet{_depth}", _plain(f"resnet{_depth}"))
register_external("torchvision:resnext50_32x4d", _plain("resnext50"))
register_external(
    "torchvision:resnext101_32x4d", _plain("resnext101"), factory=_torchvision_resnext101_32x4d
)
register_external("torchvision:mobilenet_v2", _plain("mobilenet_v2"))
for _depth in (11, 13, 16, 19):
    register_external(f"torchvision:vgg{_depth}_bn", _plain(f"vgg{_depth}"))
# timm's ResNet with SE: 1x1-conv FCs of make_divisible(C/16, 8) width, on the residual branch.
_TIMM_SE = {"attention": "se", "se": {"rounding": "divisible", "divisor": 8}}
for _depth in (18, 34, 50, 101, 152):
    register_external(
        f"timm:seresnet{_depth}", {"backbone": f"resnet{_depth}", **_TIMM_SE}, (".se.",)
    )
for _depth in (50, 101):
    register_external(
        f"timm:seresnext{_depth}_32x4d", {"backbone": f"resnext{_depth}", **_TIMM_SE}, (".se.",)
    )
# timm's ports of the paper's released Caffe models: exact C // 16 and the Caffe layout.
_LEGACY = {"attention": "se", "layout": "caffe", "se": {"rounding": "exact"}}
for _depth in (18, 34, 50, 101, 152):
    register_external(
        f"timm:legacy_seresnet{_depth}",
        {"backbone": f"resnet{_depth}", **_LEGACY},
        (".se_module.",),
    )
for _depth in (50, 101):
    register_external(
        f"timm:legacy_seresnext{_depth}_32x4d",
        {"backbone": f"resnext{_depth}", **_LEGACY},
        (".se_module.",),
    )
# SKNet-50 as timm builds it: checks the selective-kernel conv.
register_external("timm:skresnext50_32x4d", {"backbone": "resnext50", "attention": "sk"})
# The paper's other networks that timm builds exactly (tests/test_paper_networks.py).
register_external(
    "timm:legacy_senet154", {"backbone": "senet154", "attention": "se"}, (".se_module.",)
)
register_external("timm:inception_resnet_v2", _plain("inception_resnet_v2"))
register_external("timm:mobilenetv1_100", _plain("mobilenet"))


def _entry(source: str) -> ExternalModel:
    if source not in EXTERNAL_MODELS:
        raise ValueError(f"source: unknown {source!r}; known: {', '.join(EXTERNAL_MODELS)}")
    return EXTERNAL_MODELS[source]


def arch_for(source: str, **overrides: Any) -> ArchConfig:
    """The selab config of the same network as `source` (num_classes, input_size: overrides)."""
    return ArchConfig.parse({**_entry(source).arch, **overrides})


def create_external(source: str, num_classes: int = 1000) -> nn.Module:
    """The source's own model, randomly initialised (nothing is downloaded)."""
    entry = _entry(source)
    if entry.factory is not None:
        return entry.factory(num_classes)
    library, _, name = source.partition(":")
    return _CONSTRUCTORS[library](name, num_classes, **entry.kwargs)


def load_external_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    template: nn.Module | Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Load `source`'s weights into a selab `model` built from `arch_for(source)`.

    The tensors are paired in the source model's registration order, read off `template` (its
    model or state dict; by default a randomly initialised one is built), so the order of
    `state_dict` itself does not matter.
    """
    order = _keys(template) if template is not None else _keys(create_external(source))
    missing = [k for k in order if k not in state_dict]
    if missing:
        raise ValueError(f"state_dict: {len(missing)} keys of {source} missing, e.g. {missing[0]}")
    external = {k: state_dict[k] for k in order}
    ours = model.state_dict()
    converted = {
        mine: external[theirs].reshape(ours[mine].shape)
        for mine, theirs in _pairs(model, list(external), ours, external, source)
    }
    model.load_state_dict(converted)
    return model


def export_weights(
    model: nn.Module, source: str, template: nn.Module | Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """A state dict of `source`'s model holding the weights of the selab `model`."""
    if template is None:
        template = create_external(source, _num_classes(model))
    external = dict(_state(template))
    ours = model.state_dict()
    pairs = {theirs: mine for mine, theirs in _pairs(model, list(external), ours, external, source)}
    return {
        theirs: ours[pairs[theirs]].reshape(external[theirs].shape).clone() for theirs in external
    }


def _pairs(
    model: nn.Module,
    external_keys: list[str],
    ours: Mapping[str, torch.Tensor],
    external: Mapping[str, torch.Tensor],
    source: str,
) -> list[tuple[str, str]]:
    fragments = _entry(source).attention_keys
    prefixes = tuple(
        f"{name}." for name, m in model.named_modules() if isinstance(m, _UNIT_ATTENTION)
    )
    our_keys = list(ours)
    pairs = []
    for part in (False, True):  # the rest, then the attention blocks
        mine = [k for k in our_keys if k.startswith(prefixes) == part]
        theirs = [k for k in external_keys if any(f in k for f in fragments) == part]
        if len(mine) != len(theirs):
            what = "attention" if part else "non-attention"
            raise ValueError(
                f"{source}: {len(theirs)} {what} tensors, the selab network has"
                f" {len(mine)}; build it with arch_for({source!r})"
            )
        for a, b in zip(mine, theirs, strict=True):
            if ours[a].numel() != external[b].numel() or _squeezed(ours[a]) != _squeezed(
                external[b]
            ):
                raise ValueError(
                    f"{source}: {b} {tuple(external[b].shape)} does not fit {a}"
                    f" {tuple(ours[a].shape)}; build it with arch_for({source!r})"
                )
            pairs.append((a, b))
    return pairs


def _squeezed(t: torch.Tensor) -> tuple[int, ...]:
    """The shape without trailing 1s: a 1x1 conv's (O, I, 1, 1) is a Linear's (O, I)."""
    shape = list(t.shape)
    while len(shape) > 1 and shape[-1] == 1:
        shape.pop()
    return tuple(shape)


def _state(obj: nn.Module | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    return obj.state_dict() if isinstance(obj, nn.Module) else obj


def _keys(obj: nn.Module | Mapping[str, torch.Tensor]) -> list[str]:
    return list(_state(obj))


def _num_classes(model: nn.Module) -> int:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
