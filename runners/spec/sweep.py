"""The sweep spec: one YAML file says what to train, what to vary, how to schedule and where to log.

Every section forbids unknown keys, so a typo is an error naming it. This module holds the
sections and checks the spec's shape and the rules between its sections; `load.py` reads a spec
file (with `--set` overrides), and `points.py` checks that every point it expands to is a valid
trial before anything runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from runners.spec.data import DataConfig
from runners.spec.defaults import DEFAULT_STORAGE
from runners.spec.train import TrainConfig
from search_space.errors import allowed

SearchKind = Literal["grid", "tpe", "nsga2"]

# What a trial reports and an objective may name. Per-stage cost metrics (stage2.flops, ...)
# are allowed too, see _is_known_metric.
TRIAL_METRICS = (
    "val_acc", "val_loss", "train_loss", "val_top5", "best_val_acc", "images_per_s",
    "epoch_time_s", "flops", "params", "se_flops", "se_params",
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class Objective(StrictModel):
    metric: str
    mode: Literal["max", "min"]

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if not _is_known_metric(value):
            raise ValueError(
                f"unknown metric {value!r}; allowed: {allowed(TRIAL_METRICS)}, stage<i>.flops, ..."
            )
        return value


def _is_known_metric(name: str) -> bool:
    if name in TRIAL_METRICS:
        return True
    stage, _, cost = name.partition(".")
    return stage.startswith("stage") and stage[5:].isdigit() and cost in (
        "flops", "params", "se_flops", "se_params"
    )


# ----------------------------------------------------------------------------- search space


class ChoiceDim(StrictModel):
    choice: list[Any] = Field(min_length=1)


class IntDim(StrictModel):
    bounds: tuple[int, int] = Field(alias="int")
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntDim:
        _check_bounds(*self.bounds, self.log)
        return self


class FloatDim(StrictModel):
    bounds: tuple[float, float] = Field(alias="float")
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatDim:
        _check_bounds(*self.bounds, self.log)
        return self


class MaskDim(StrictModel):
    """Every per-stage on/off mask for arch.se.stages (2^stages values)."""

    mask: Literal[True]


def _check_bounds(lo: float, hi: float, log: bool) -> None:
    if lo >= hi:
        raise ValueError(f"needs lo < hi, got [{lo}, {hi}]")
    if log and lo <= 0:
        raise ValueError(f"log scale needs lo > 0, got {lo}")


DIMENSION_KINDS = ("choice", "int", "float", "mask")


def _dimension_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {ChoiceDim: "choice", IntDim: "int", FloatDim: "float", MaskDim: "mask"}[
            type(value)
        ]
    if isinstance(value, dict):
        return next((kind for kind in DIMENSION_KINDS if kind in value), None)
    return None


Dimension = Annotated[
    Annotated[ChoiceDim, Tag("choice")]
    | Annotated[IntDim, Tag("int")]
    | Annotated[FloatDim, Tag("float")]
    | Annotated[MaskDim, Tag("mask")],
    Discriminator(
        _dimension_kind,
        custom_error_type="dimension",
        custom_error_message=(
            "expected one of {choice: [...]}, {int: [lo, hi], log: bool}, "
            "{float: [lo, hi], log: bool}, {mask: true}"
        ),
    ),
]


class Search(StrictModel):
    kind: SearchKind = "grid"
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    baseline: bool = False  # grid: also run the fixed arch with SE off
    space: dict[str, Dimension] = Field(default_factory=dict)
    num_samples: int = Field(1, ge=1)
    objectives: list[Objective] = Field(
        default_factory=lambda: [Objective(metric="val_acc", mode="max")], min_length=1
    )
    sampler_seed: int | None = None  # tpe/nsga2: makes the suggestions reproducible

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [key for key, values in grid.items() if not values]
        if empty:
            raise ValueError(f"every key needs at least one value; empty: {allowed(empty)}")
        return grid

    @model_validator(mode="after")
    def _fits_kind(self) -> Search:
        if self.kind == "grid":
            if self.space:
                raise ValueError("space: a grid sweep varies `grid`; `space` is for tpe/nsga2")
        else:
            if self.grid or self.baseline:
                raise ValueError(
                    f"grid: a {self.kind} search samples `space`; `grid` and `baseline` are for "
                    f"kind: grid"
                )
            if not self.space:
                raise ValueError(f"space: a {self.kind} search needs at least one dimension")
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"objectives: each metric once, got {metrics}")
        return self

    @property
    def varied_keys(self) -> list[str]:
        keys = list(self.grid) if self.kind == "grid" else list(self.space)
        if self.baseline and "arch.se.enabled" not in keys:
            keys.append("arch.se.enabled")
        return keys


class Scheduler(StrictModel):
    kind: Literal["none", "asha"] = "none"
    grace_period: int = Field(1, ge=1)  # epochs every trial runs before ASHA may stop it
    reduction_factor: float = Field(2.0, gt=1)


class Resources(StrictModel):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)  # fractions share a GPU, e.g. 0.25
    max_concurrent: int | None = Field(None, ge=1)


class Failure(StrictModel):
    max_retries: int = Field(0, ge=0)


class Tracking(StrictModel):
    uri: str | None = None
    experiment: str | None = None
    # Which trained networks go to MLflow as artifacts (runners.storage.models): the recommended
    # configuration and the Pareto front when `selab report` runs, every finished trial, or
    # none; all of them stay in the sweep's storage folder either way.
    models: Literal["recommended", "all", "none"] = "recommended"


class SeedRace(StrictModel):
    """`seeds: {initial: 3, max: 10}`: every configuration starts with `initial` seeds (0, 1,
    ...) and gets more, up to `max`, only while its comparison with the best is open: neither
    shown worse nor shown equivalent within ±`margin` accuracy points (runners.sweep.race)."""

    initial: int = Field(3, ge=2)
    max: int = Field(10, ge=2)
    margin: float = Field(1.0, gt=0, lt=100)
    alpha: float = Field(0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _initial_within_max(self) -> SeedRace:
        if self.initial > self.max:
            raise ValueError(f"initial ({self.initial}) must be at most max ({self.max})")
        return self


Seeds = Annotated[
    Annotated[list[int], Tag("list")] | Annotated[SeedRace, Tag("race")],
    Discriminator(lambda v: "race" if isinstance(v, (dict, SeedRace)) else "list"),
]


class SweepSpec(StrictModel):
    # Also the Ray folder name and the MLflow experiment: short enough for both.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    data: DataConfig
    arch: dict[str, Any]
    train: TrainConfig = Field(default_factory=TrainConfig)
    # A list of seeds, or {initial, max, ...} to race them: then `seeds` becomes 0..max-1 and
    # `race` holds the rest (both are written back that way by to_yaml).
    seeds: Seeds = Field(default_factory=lambda: [0])
    race: SeedRace | None = None
    search: Search = Field(default_factory=Search)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    resources: Resources = Field(default_factory=Resources)
    failure: Failure = Field(default_factory=Failure)
    tracking: Tracking = Field(default_factory=Tracking)
    storage: str = DEFAULT_STORAGE

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | SeedRace) -> list[int] | SeedRace:
        if isinstance(seeds, list) and not seeds:
            raise ValueError("give at least one seed")
        if isinstance(seeds, list) and len(set(seeds)) != len(seeds):
            raise ValueError(f"each seed once, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _seed_race(self) -> SweepSpec:
        if isinstance(self.seeds, SeedRace):
            self.race, self.seeds = self.seeds, list(range(self.seeds.max))
        if self.race is not None and self.seeds != list(range(self.race.max)):
            raise ValueError(f"seeds: a raced sweep runs seeds 0..{self.race.max - 1}; give "
                             "seeds: {initial: ..., max: ...} instead of a list")
        return self

    @model_validator(mode="after")
    def _sections_agree(self) -> SweepSpec:
        if self.search.kind != "grid" and len(self.seeds) > 1:
            raise ValueError(
                f"seeds: a {self.search.kind} search runs each sampled point once (with the "
                f"first seed); give one seed. To repeat the best points over seeds, put them "
                f"in a grid sweep"
            )
        if self.race is not None and self.search.kind != "grid":
            raise ValueError("seeds: racing seeds needs search kind: grid (a search runs each "
                             "sampled point once)")
        if self.scheduler.kind == "asha" and self.search.kind == "grid" and len(self.seeds) > 1:
            raise ValueError(
                "scheduler: ASHA on a grid with several seeds would stop some seeds of a "
                "configuration and average only those it let finish, biasing its mean upward; "
                "use scheduler kind: none (or seeds: {initial, max} to spend seeds where the "
                "decision is open), or one seed with ASHA"
            )
        if self.scheduler.kind == "asha" and len(self.search.objectives) > 1:
            raise ValueError(
                "scheduler: ASHA stops trials on one metric; with "
                f"{len(self.search.objectives)} objectives use scheduler kind: none "
                "(early-stopped trials would enter the Pareto front as if finished)"
            )
        return self

    @property
    def is_grid(self) -> bool:
        return self.search.kind == "grid"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)
