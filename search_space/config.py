"""A point of the SE search space: a typed, validated, serialisable architecture config.

`ArchConfig.parse(dict)` is the entry point: it accepts YAML/JSON-shaped input (and the string
forms MLflow params use), fills family defaults, and raises `ConfigError` naming the field and
the allowed values before anything is built.
"""

from __future__ import annotations

import math
import re
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .attention import KINDS, NONE, AttentionKind, kind_names
from .backbones import (
    BASIC,
    BOTTLENECK,
    DEFAULT_DEPTH,
    DEFAULT_INPUT_SIZE,
    FAMILIES,
    FAMILY_DEPTHS,
    NetworkPlan,
    plan_network,
    residual_units,
    unit_channels,
)
from .errors import allowed, from_validation_error
from .gates import check_gate_init
from .placement import Placement, se_width

# "none" is the paper's NoSqueeze: the excitation's layers as 1x1 convs on the full map.
Squeeze = Literal["avg", "max", "avgmax", "none"]
Gate = Literal["sigmoid", "hard_sigmoid", "tanh", "relu"]
Rounding = Literal["exact", "divisible"]

# Names people type for a backbone, mapped to (family, depth).
_SHORTHAND = re.compile(
    r"^(resnet|resnext|cifar_resnet|cifar_preact_resnet|vgg)(\d+)(?:_32x4d|_bn)?$"
)
# Families whose 3x3 convs `arch.groups` regroups, and those with a Caffe layout.
GROUPED_FAMILIES = ("resnet", "resnext", "cifar_resnet", "cifar_preact_resnet")
CAFFE_FAMILIES = ("resnet", "resnext")


def _csv_to_tuple(value: Any, cast: type) -> Any:
    """'4,8,16' or '1,1,0' (CLI flags, MLflow params) -> a tuple; other input passes through."""
    if isinstance(value, str) and "," in value:
        items = [v.strip() for v in value.split(",") if v.strip()]
        if cast is bool:
            return tuple(v.lower() in ("1", "true", "yes", "on") for v in items)
        return tuple(cast(v) for v in items)
    return value


class SEConfig(BaseModel):
    """The SE block and where it goes. Defaults follow the paper's released models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # One r for every stage, or one per stage.
    reduction: int | tuple[int, ...] = 16
    # exact: C // r as in the paper's released models; divisible: rounded to a multiple of
    # `divisor` with a floor of `divisor`, as timm and torchvision do.
    rounding: Rounding = "exact"
    divisor: int = Field(8, ge=1)
    min_reduced: int = Field(1, ge=1)
    squeeze: Squeeze = "avg"
    gate: Gate = "sigmoid"
    bias: bool = True
    placement: Placement = "standard"
    # One flag per stage of the backbone; None means every stage.
    stages: tuple[bool, ...] | None = None
    # The value the gate starts at, set through the bias of the excitation's last layer
    # (search_space.gates); None keeps PyTorch's default init, a bias near 0 (sigmoid: 0.5).
    # POST and Identity multiply the identity path by the gate in every unit: docs/placements.md.
    gate_init: float | None = None

    @field_validator("gate_init", mode="before")
    @classmethod
    def _parse_gate_init(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "null", "default"):
            return None
        return value

    @field_validator("reduction", mode="before")
    @classmethod
    def _parse_reduction(cls, value: Any) -> Any:
        if isinstance(value, str) and "," not in value and value.strip().isdigit():
            return int(value)
        return _csv_to_tuple(value, int)

    @field_validator("reduction")
    @classmethod
    def _positive_reduction(cls, value: int | tuple[int, ...]) -> int | tuple[int, ...]:
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(r < 1 for r in values):
            raise ValueError(f"r must be an integer >= 1, got {value!r}")
        return value

    @field_validator("stages", mode="before")
    @classmethod
    def _parse_stages(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.strip().lower() == "all":
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]  # "1,0,1"; "1": one stage
        wrong = [v for v in items if v not in ("0", "1")]
        if wrong or not items:
            bad = f" ({allowed(map(repr, wrong))} is not 0 or 1)" if wrong else ""
            raise ValueError(
                f"got {value!r}{bad}; a mask is one 0 or 1 per stage, comma"
                " separated; allowed: 0, 1 (e.g. 1,0,1), or all"
            )
        return tuple(v == "1" for v in items)

    def reduction_for(self, stage: int) -> int:
        return self.reduction[stage] if isinstance(self.reduction, tuple) else self.reduction

    def reduced_width(self, channels: int, stage: int) -> int:
        """Hidden width of the excitation MLP for `channels` inputs in `stage` (0-based)."""
        value = channels / self.reduction_for(stage)
        if self.rounding == "exact":
            return max(self.min_reduced, channels // self.reduction_for(stage))
        # timm's make_divisible: round to the nearest multiple, never below the floor, and
        # never more than 10% below the exact value.
        floor = max(self.divisor, self.min_reduced)
        width = max(floor, int(value + self.divisor / 2) // self.divisor * self.divisor)
        if width < 0.9 * value:
            width += self.divisor
        return width


def _odd(value: int, field: str) -> int:
    if value < 1 or value % 2 == 0:
        raise ValueError(f"{field} must be an odd integer >= 1, got {value}")
    return value


class ECAConfig(BaseModel):
    """ECA's 1D conv: kernel k, or `auto` for the paper's |(log2 C + beta) / gamma|_odd."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: Literal["auto"] | int = "auto"
    gamma: int = Field(2, ge=1)
    beta: int = Field(1, ge=0)

    @field_validator("k", mode="before")
    @classmethod
    def _parse_k(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @field_validator("k")
    @classmethod
    def _odd_k(cls, value: str | int) -> str | int:
        return value if value == "auto" else _odd(int(value), "k")

    def kernel_for(self, channels: int) -> int:
        from .attention.eca import eca_kernel  # torch-free arithmetic, but kept with ECA

        return eca_kernel(channels, self.gamma, self.beta) if self.k == "auto" else int(self.k)


class CBAMConfig(BaseModel):
    """CBAM's spatial attention: the kernel of its conv on the channel mean and max maps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spatial_kernel: int = 7

    @field_validator("spatial_kernel")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        return _odd(value, "spatial_kernel")


class SKConfig(BaseModel):
    """SKNet's selective kernel: M branches (dilation 1..M), attention width max(C/r, L)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    branches: int = Field(2, ge=2, le=4)
    min_width: int = Field(32, ge=1)  # L in the SKNet paper


class ArchConfig(BaseModel):
    """Backbone, depth, input shape and the SE settings of one network."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backbone: str = "resnet"
    depth: int | None = None
    num_classes: int = Field(1000, ge=1)
    in_channels: int = Field(3, ge=1)
    input_size: int = Field(224, ge=8)
    # The channel-attention kind (see search_space.attention); `none` is the plain network.
    attention: str = "se"
    se: SEConfig = SEConfig()
    eca: ECAConfig = ECAConfig()
    cbam: CBAMConfig = CBAMConfig()
    sk: SKConfig = SKConfig()
    # Groups of the 3x3 convs of basic and bottleneck units: None keeps the backbone's own
    # (1, or ResNeXt's 32), `depthwise` gives every channel its own filter.
    groups: int | Literal["depthwise"] | None = None
    # caffe: the paper's released models as timm's legacy SENet port has them: stride on a
    # bottleneck's first 1x1 (ResNet v1; not ResNeXt), a 3x3/2 stem max-pool without padding
    # that rounds up, and (the port's SE-ResNet-18/34) a ReLU after a basic block's second BN.
    layout: Literal["torchvision", "caffe"] = "torchvision"
    # Zero the last weight of every residual branch (its last BN's scale; the last conv in a
    # pre-activation unit), so each unit starts as its shortcut: torchvision's
    # `zero_init_residual`, timm's `zero_init_last` (Goyal et al. 2017).
    zero_init_residual: bool = False

    @classmethod
    def parse(cls, data: dict[str, Any] | ArchConfig, prefix: str = "") -> ArchConfig:
        """Validate plain data; every problem becomes one ConfigError line naming its field."""
        if isinstance(data, ArchConfig):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise from_validation_error(err, prefix, cls) from None

    @model_validator(mode="before")
    @classmethod
    def _expand_shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _kind_defaults(data)
        if not isinstance(data.get("backbone", "resnet"), str):
            return data
        name = data.get("backbone", "resnet").strip().lower()
        if name in DEFAULT_INPUT_SIZE and data.get("input_size") is None:
            data = {**data, "input_size": DEFAULT_INPUT_SIZE[name]}  # Inception-ResNet: 299
        match = _SHORTHAND.match(name)
        if not match:
            if data.get("depth") is None and name in DEFAULT_DEPTH:
                return {**data, "backbone": name, "depth": DEFAULT_DEPTH[name]}
            return data
        family, depth = match.group(1), int(match.group(2))
        given = data.get("depth")
        if given is not None and int(given) != depth:
            raise ValueError(f"depth: {given} contradicts backbone {name!r} (depth {depth})")
        return {**data, "backbone": family, "depth": depth}

    @model_validator(mode="after")
    def _check_against_backbone(self) -> ArchConfig:
        if self.backbone not in FAMILIES:
            raise ValueError(
                f"backbone: got {self.backbone!r}; allowed: {allowed(FAMILIES)}"
                " (or a full name such as resnet50, cifar_resnet56, cifar_preact_resnet164,"
                " resnext50_32x4d, vgg16_bn)"
            )
        depths = FAMILY_DEPTHS[self.backbone]
        if depths is None:
            if self.depth is not None:
                raise ValueError(f"depth: {self.backbone} has one fixed depth; leave depth out")
        elif self.depth not in depths:
            raise ValueError(
                f"depth: {self.depth} is not a {self.backbone} depth; allowed: {allowed(depths)}"
            )
        if self.plan.preact and self.kind is not None and self.kind.replaces_conv:
            raise ValueError(
                f"attention: {self.attention} replaces the 3x3 conv-BN-ReLU of a"
                f" post-activation bottleneck; allowed for {self.name}:"
                f" {allowed(k for k in kind_names() if k == NONE or not KINDS[k].replaces_conv)}"
            )
        self._check_input_size()
        self._check_groups()
        if self.layout == "caffe" and self.backbone not in CAFFE_FAMILIES:
            raise ValueError(
                f"layout: caffe exists for {allowed(CAFFE_FAMILIES)} only; allowed for"
                f" {self.name}: torchvision"
            )
        self._check_se()
        self._check_init()
        return self

    def _check_init(self) -> None:
        if self.zero_init_residual and not any(residual_units(s) for s in self.plan.stages):
            raise ValueError(
                f"zero_init_residual: {self.name} has no residual units; allowed for it: false"
            )
        se, kind = self.se, self.kind
        if se.gate_init is None or not self.has_attention:
            return
        if "gate_init" not in kind.reads:
            takers = allowed(k.name for k in KINDS.values() if "gate_init" in k.reads)
            raise ValueError(
                f"se.gate_init: attention {kind.name} has no gate bias to set; allowed for"
                f" {kind.name}: null (kinds that take it: {takers})"
            )
        if not se.bias:
            raise ValueError(
                "se.gate_init: sets the bias of the excitation's last layer, and se.bias is"
                " false; allowed with se.bias false: null"
            )
        check_gate_init(se.gate, se.gate_init)
        if kind.name == "cbam":  # CBAM's spatial gate is a sigmoid, and starts there too
            check_gate_init("sigmoid", se.gate_init)

    def _check_input_size(self) -> None:
        plan, size = self.plan, self.input_size
        if size < plan.min_input or size % plan.input_multiple:
            multiple = f"a multiple of {plan.input_multiple}, " if plan.input_multiple > 1 else ""
            raise ValueError(
                f"input_size: {self.name} takes {multiple}at least {plan.min_input} px; got {size}"
            )

    def _check_groups(self) -> None:
        if self.groups is None:
            return
        if self.backbone not in GROUPED_FAMILIES:
            raise ValueError(
                f"groups: {self.name} has no plain 3x3 convs to group (mobilenet_v2's are"
                f" depthwise already); allowed backbones: {allowed(GROUPED_FAMILIES)}"
            )
        if self.groups == "depthwise":
            return
        if self.groups < 1:
            raise ValueError(f"groups: must be >= 1 or depthwise, got {self.groups}")
        for index, stage in enumerate(self.plan.stages):
            for conv_in, conv_out in _grouped_convs(stage):
                if conv_in % self.groups or conv_out % self.groups:
                    raise ValueError(
                        f"groups: {self.groups} does not divide the {conv_in} -> {conv_out}"
                        f" channels of a 3x3 conv in stage {index + 1} of {self.name};"
                        f" allowed: divisors of {math.gcd(*self._grouped_widths())}, or depthwise"
                    )

    def _grouped_widths(self) -> list[int]:
        return [c for s in self.plan.stages for conv in _grouped_convs(s) for c in conv]

    def conv_groups(self, stage_index: int, conv_in: int) -> int:
        """Groups of a 3x3 conv with `conv_in` inputs in stage `stage_index` (0-based)."""
        if self.groups is None:
            return self.plan.stages[stage_index].groups
        return conv_in if self.groups == "depthwise" else self.groups

    @property
    def kind(self) -> AttentionKind | None:
        """The attention kind's registry entry; None for `attention: none`."""
        return KINDS.get(self.attention)

    def _check_se(self) -> None:
        if self.attention not in kind_names():
            raise ValueError(f"attention: got {self.attention!r}; allowed: {allowed(kind_names())}")
        se, plan = self.se, self.plan
        n = len(plan.stages)
        if se.stages is not None and len(se.stages) != n:
            raise ValueError(
                f"se.stages: {self.name} has {n} stages, got a mask of {len(se.stages)}"
                f" (one 0/1 per stage, e.g. {','.join(['1'] * n)})"
            )
        if isinstance(se.reduction, tuple) and len(se.reduction) != n:
            raise ValueError(
                f"se.reduction: {self.name} has {n} stages, got {len(se.reduction)} values;"
                " give one r, or one per stage"
            )
        kind = self.kind
        if not se.enabled or kind is None:
            return
        if se.squeeze not in kind.squeezes:
            raise ValueError(
                f"se.squeeze: {se.squeeze!r} is not defined for attention {kind.name};"
                f" allowed: {allowed(kind.squeezes)}"
            )
        for block in sorted({s.block for s in plan.stages}):
            places = kind.allowed_placements(block)
            if not places:
                hosts = allowed(b for b, p in kind.placements.items() if p)
                raise ValueError(
                    f"attention: {kind.name} cannot sit in the {block} units of {self.name};"
                    f" it needs {hosts} units (allowed for {self.name}:"
                    f" {allowed(k for k in kind_names() if _hosts(k, plan))})"
                )
            if se.placement not in places and kind.replaces_conv:
                raise ValueError(
                    f"se.placement: {kind.name} is the bottleneck's 3x3 conv itself, not a"
                    f" block placed around it; got {se.placement!r}; allowed for {kind.name}:"
                    f" {allowed(places)}"
                )
            if se.placement not in places:
                raise ValueError(
                    f"se.placement: {se.placement!r} needs a {_placement_need(se.placement)};"
                    f" {self.name} has {block} units; allowed"
                    f"{'' if kind.name == 'se' else ' for ' + kind.name}: {allowed(places)}"
                )
        if "reduction" not in kind.reads:
            return
        for index, width in enumerate(self.se_widths()):
            r = se.reduction_for(index)
            if self.stage_enabled(index) and r > width:
                raise ValueError(
                    f"se.reduction: r={r} is larger than the {width} channels SE sees in stage"
                    f" {index + 1} of {self.name} (placement {se.placement});"
                    f" allowed for that stage: 1..{width}"
                )

    @cached_property
    def plan(self) -> NetworkPlan:
        return plan_network(self.backbone, self.depth, self.in_channels)

    @property
    def has_attention(self) -> bool:
        return self.se.enabled and self.attention != NONE

    @property
    def name(self) -> str:
        return self.backbone if self.depth is None else f"{self.backbone}{self.depth}"

    @property
    def num_stages(self) -> int:
        return len(self.plan.stages)

    def stage_enabled(self, index: int) -> bool:
        """Whether stage `index` (0-based) carries SE."""
        if not self.has_attention:
            return False
        return True if self.se.stages is None else self.se.stages[index]

    @property
    def stage_mask(self) -> tuple[bool, ...]:
        return tuple(self.stage_enabled(i) for i in range(self.num_stages))

    def se_widths(self) -> list[int]:
        """Per stage, the smallest channel count an SE block sees there (bounds r)."""
        widths = []
        for stage in self.plan.stages:
            units = [unit_channels(stage, i, stage.in_channels) for i in range(stage.blocks)]
            widths.append(min(se_width(self.se.placement, *u) for u in units))
        return widths

    def without_se(self) -> ArchConfig:
        return self.model_copy(update={"se": self.se.model_copy(update={"enabled": False})})

    def plain(self) -> ArchConfig:
        """The same network without attention, with every attention knob at its default, so
        that all attention settings of one backbone and shape share one plain config."""
        return self.model_copy(
            update={
                "attention": NONE,
                "se": SEConfig(enabled=False),
                "eca": ECAConfig(),
                "cbam": CBAMConfig(),
                "sk": SKConfig(),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict that `ArchConfig.parse` reads back to an equal config."""
        return self.model_dump(mode="json")

    def flat_params(self, prefix: str = "arch.") -> dict[str, str]:
        """Flat string params for MLflow: per-stage values as '4,8,16,16' and masks as '1,1,0,1'."""
        se = self.se
        reduction = se.reduction
        flat = {
            "backbone": self.backbone,
            "depth": "" if self.depth is None else str(self.depth),
            "num_classes": str(self.num_classes),
            "in_channels": str(self.in_channels),
            "input_size": str(self.input_size),
            "se.enabled": str(se.enabled).lower(),
            "se.reduction": ",".join(map(str, reduction))
            if isinstance(reduction, tuple)
            else str(reduction),
            "se.rounding": se.rounding,
            "se.divisor": str(se.divisor),
            "se.min_reduced": str(se.min_reduced),
            "se.squeeze": se.squeeze,
            "se.gate": se.gate,
            "se.bias": str(se.bias).lower(),
            "se.placement": se.placement,
            "se.stages": ",".join("1" if on else "0" for on in self.stage_mask),
            "attention": self.attention,
            "groups": "" if self.groups is None else str(self.groups),
            "layout": self.layout,
            "se.gate_init": "" if se.gate_init is None else f"{se.gate_init:g}",
            "zero_init_residual": str(self.zero_init_residual).lower(),
        }
        section = self.kind.section if self.kind is not None else None
        if section is not None:  # the chosen kind's own knobs
            for key, value in getattr(self, section).model_dump(mode="json").items():
                flat[f"{section}.{key}"] = str(value)
        return {prefix + key: value for key, value in flat.items()}


def _placement_need(placement: str) -> str:
    return {
        "after_3x3": "bottleneck (a 3x3 conv inside the unit)",
        "identity": "residual unit with an identity branch on every unit",
        "replace_3x3": "selective-kernel conv (attention: sk)",
    }.get(placement, "residual unit")


def _hosts(kind_name: str, plan: NetworkPlan) -> bool:
    kind = KINDS.get(kind_name)
    return kind is None or all(kind.allowed_placements(s.block) for s in plan.stages)


def _grouped_convs(stage: Any) -> list[tuple[int, int]]:
    """(in, out) widths of the 3x3 convs `arch.groups` regroups in one stage."""
    if stage.block == BOTTLENECK:
        return [(stage.mid_channels, stage.mid_channels)]
    if stage.block == BASIC:
        return [(stage.in_channels, stage.out_channels), (stage.out_channels, stage.out_channels)]
    return []


def _kind_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Fill the placement and squeeze the attention kind brings, where the user gave none;
    `attention: none` switches `se.enabled` off, so both spell the plain network."""
    name = data.get("attention", "se")
    if name == NONE:
        se = data.get("se")
        if isinstance(se, SEConfig):
            return {**data, "se": se.model_copy(update={"enabled": False})}
        return {**data, "se": {**(se or {}), "enabled": False}}
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        return data
    defaults = {"placement": kind.default_placement, "squeeze": kind.default_squeeze}
    se = data.get("se")
    if isinstance(se, SEConfig):
        missing = {k: v for k, v in defaults.items() if k not in se.model_fields_set}
        return {**data, "se": se.model_copy(update=missing)} if missing else data
    if se is None or isinstance(se, dict):
        return {**data, "se": {**defaults, **(se or {})}}
    return data
