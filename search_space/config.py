"""A point of the SE search space: a typed, validated, serialisable architecture config.

`ArchConfig.parse(dict)` is the entry point: it accepts YAML/JSON-shaped input (and the string
forms MLflow params use), fills family defaults, and raises `ConfigError` naming the field and
the allowed values before anything is built.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .backbones import (
    DEFAULT_DEPTH,
    FAMILIES,
    FAMILY_DEPTHS,
    NetworkPlan,
    plan_network,
    unit_channels,
)
from .errors import allowed, from_validation_error
from .placement import ALLOWED_PLACEMENTS, Placement, se_width

Squeeze = Literal["avg", "max", "avgmax"]
Gate = Literal["sigmoid", "hard_sigmoid", "tanh", "relu"]
Rounding = Literal["exact", "divisible"]

# Names people type for a backbone, mapped to (family, depth).
_SHORTHAND = re.compile(r"^(resnet|resnext|cifar_resnet|vgg)(\d+)(?:_32x4d|_bn)?$")


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
        if isinstance(value, str) and value.strip().lower() == "all":
            return None
        if isinstance(value, str) and "," not in value:  # a one-stage mask such as "1"
            value = value + ","
        return _csv_to_tuple(value, bool)

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


class ArchConfig(BaseModel):
    """Backbone, depth, input shape and the SE settings of one network."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backbone: str = "resnet"
    depth: int | None = None
    num_classes: int = Field(1000, ge=1)
    in_channels: int = Field(3, ge=1)
    input_size: int = Field(224, ge=8)
    se: SEConfig = SEConfig()

    @classmethod
    def parse(cls, data: dict[str, Any] | ArchConfig, prefix: str = "") -> ArchConfig:
        """Validate plain data; every problem becomes one ConfigError line naming its field."""
        if isinstance(data, ArchConfig):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise from_validation_error(err, prefix) from None

    @model_validator(mode="before")
    @classmethod
    def _expand_shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("backbone", "resnet"), str):
            return data
        name = data.get("backbone", "resnet").strip().lower()
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
                " (or a full name such as resnet50, cifar_resnet56, resnext50_32x4d, vgg16_bn)"
            )
        depths = FAMILY_DEPTHS[self.backbone]
        if depths is None:
            if self.depth is not None:
                raise ValueError(f"depth: {self.backbone} has one fixed depth; leave depth out")
        elif self.depth not in depths:
            raise ValueError(
                f"depth: {self.depth} is not a {self.backbone} depth; allowed: {allowed(depths)}"
            )
        self._check_se()
        return self

    def _check_se(self) -> None:
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
        if not se.enabled:
            return
        kinds = {s.block for s in plan.stages}
        for kind in kinds:
            if se.placement not in ALLOWED_PLACEMENTS[kind]:
                raise ValueError(
                    f"se.placement: {se.placement!r} needs a {_placement_need(se.placement)};"
                    f" {self.name} has {kind} units; allowed: {allowed(ALLOWED_PLACEMENTS[kind])}"
                )
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
    def name(self) -> str:
        return self.backbone if self.depth is None else f"{self.backbone}{self.depth}"

    @property
    def num_stages(self) -> int:
        return len(self.plan.stages)

    def stage_enabled(self, index: int) -> bool:
        """Whether stage `index` (0-based) carries SE."""
        if not self.se.enabled:
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
            "se.reduction": ",".join(map(str, reduction)) if isinstance(reduction, tuple)
            else str(reduction),
            "se.rounding": se.rounding,
            "se.divisor": str(se.divisor),
            "se.min_reduced": str(se.min_reduced),
            "se.squeeze": se.squeeze,
            "se.gate": se.gate,
            "se.bias": str(se.bias).lower(),
            "se.placement": se.placement,
            "se.stages": ",".join("1" if on else "0" for on in self.stage_mask),
        }
        return {prefix + key: value for key, value in flat.items()}


def _placement_need(placement: str) -> str:
    return {
        "after_3x3": "bottleneck (a 3x3 conv inside the unit)",
        "identity": "residual unit with an identity branch on every unit",
    }.get(placement, "residual unit")
