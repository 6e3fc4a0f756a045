"""The sweep spec: one YAML file says what to train, what to vary, how to schedule and where to log.

Every section forbids unknown keys, so a typo is an error naming it. This module holds the
sections and checks the spec's shape and the rules between its sections; `load.py` reads a spec
file (with `--set` overrides), and `points.py` checks that every point it expands to is a valid
trial before anything runs.
"""

from __future__ import annotations

import re
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
from runners.spec.limits import limit, raise_hint, seed_problem
from runners.spec.timing import TimingConfig
from runners.spec.train import TrainConfig
from search_space.errors import allowed

SearchKind = Literal["grid", "tpe", "nsga2"]
# The sweep's name is its folder and its MLflow experiment: short, and safe in both.
MAX_NAME = 100
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# What a trial reports and an objective may name. Per-stage cost metrics (stage2.flops, ...)
# are allowed too, see _is_known_metric.
TRIAL_METRICS = (
    "val_acc",
    "val_loss",
    "train_loss",
    "val_top5",
    "best_val_acc",
    "images_per_s",
    "epoch_time_s",
    "flops",
    "params",
    "se_flops",
    "se_params",
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
    return (
        stage.startswith("stage")
        and stage[5:].isdigit()
        and cost in ("flops", "params", "se_flops", "se_params")
    )


# ----------------------------------------------------------------------------- search space


class ChoiceDim(StrictModel):
    choice: list[Any] = Field(min_length=1)

    @field_validator("choice")
    @classmethod
    def _bounded(cls, values: list[Any]) -> list[Any]:
        most = limit("SELAB_MAX_TRIALS")
        if len(values) > most:
            raise ValueError(
                f"{len(values):,} values, more than the {most:,} a choice may list "
                "(SELAB_MAX_TRIALS); give a range instead ({int: [lo, hi]} or {float: [lo, hi]})"
                f"; if the list is meant, {raise_hint('SELAB_MAX_TRIALS', len(values))}"
            )
        return values


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
        return {ChoiceDim: "choice", IntDim: "int", FloatDim: "float", MaskDim: "mask"}[type(value)]
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

    @field_validator("sampler_seed")
    @classmethod
    def _a_seed(cls, value: int | None) -> int | None:
        if value is not None and (problem := seed_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("num_samples")
    @classmethod
    def _bounded_samples(cls, value: int) -> int:
        most = limit("SELAB_MAX_TRIALS")
        if value > most:
            raise ValueError(
                f"{value:,} trials, more than the {most:,} a sweep may have "
                f"(SELAB_MAX_TRIALS); if it is meant, "
                f"{raise_hint('SELAB_MAX_TRIALS', value)}"
            )
        return value

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
        if self.kind == "nsga2" and len(metrics) < 2:
            raise ValueError(
                f"objectives: nsga2 is a multi-objective method and needs at least 2 "
                f"objectives, got {len(metrics)} ({allowed(metrics)}); add one, e.g. "
                "{metric: flops, mode: min}, or use kind: tpe for a single objective"
            )
        return self

    def grid_points(self) -> int:
        """The points a grid expands to, counted without expanding it."""
        count = 1
        for values in self.grid.values():
            count *= len(values)
        return count + int(self.baseline)

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

    @field_validator("max")
    @classmethod
    def _bounded(cls, value: int) -> int:
        most = limit("SELAB_MAX_TRIALS")
        if value > most:
            raise ValueError(
                f"{value:,} seeds, more than the {most:,} trials a sweep may have "
                f"(SELAB_MAX_TRIALS); if it is meant, "
                f"{raise_hint('SELAB_MAX_TRIALS', value)}"
            )
        return value

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
    name: str
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
    timing: TimingConfig = Field(default_factory=TimingConfig)
    storage: str = DEFAULT_STORAGE

    @field_validator("name")
    @classmethod
    def _usable_name(cls, name: str) -> str:
        if len(name) > MAX_NAME:
            raise ValueError(
                f"too long: {len(name)} characters, at most {MAX_NAME} allowed (the name is the "
                f"sweep's folder and its MLflow experiment); shorten it, e.g. {name[:24]!r}"
            )
        if not NAME_PATTERN.match(name):
            raise ValueError(
                f"got {name!r}; allowed: letters, digits and _ . - (starting with a letter or "
                "digit), e.g. se-ablation_1"
            )
        return name

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | SeedRace) -> list[int] | SeedRace:
        if isinstance(seeds, SeedRace):
            return seeds
        if not seeds:
            raise ValueError(
                "the list is empty; a sweep needs at least one seed, e.g. seeds: "
                "[0] (or seeds: {initial: 3, max: 10} to race them)"
            )
        for seed in seeds:
            if problem := seed_problem(seed):
                raise ValueError(problem)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"each seed once, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _seed_race(self) -> SweepSpec:
        if isinstance(self.seeds, SeedRace):
            self.race, self.seeds = self.seeds, list(range(self.seeds.max))
        if self.race is not None and self.seeds != list(range(self.race.max)):
            raise ValueError(
                f"seeds: a raced sweep runs seeds 0..{self.race.max - 1}; give "
                "seeds: {initial: ..., max: ...} instead of a list"
            )
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
            raise ValueError(
                "seeds: racing seeds needs search kind: grid (a search runs each "
                "sampled point once)"
            )
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

    @model_validator(mode="after")
    def _within_trial_limit(self) -> SweepSpec:
        """Counted before anything is expanded: a grid of a thousand values on each of three
        keys is refused here, not after a billion points have been built."""
        most = limit("SELAB_MAX_TRIALS")
        trials = self.planned_trials()
        if self.is_grid and trials > most:
            lengths = " x ".join(f"{len(v):,}" for v in self.search.grid.values()) or "1"
            points = f"{lengths}{' + 1 (the baseline)' if self.search.baseline else ''}"
            seeds = (
                f"{self.race.max} seeds (race max)"
                if self.race
                else f"{len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''}"
            )
            raise ValueError(
                f"search.grid: {points} = {self.search.grid_points():,} points x {seeds} = "
                f"{trials:,} trials, more than the {most:,} a sweep may have (SELAB_MAX_TRIALS); "
                "vary fewer values, or sample the space (kind: tpe, num_samples); if it is "
                f"meant, {raise_hint('SELAB_MAX_TRIALS', trials)}"
            )
        return self

    def planned_trials(self) -> int:
        """The trials the sweep runs (at most, for a race), computed without expanding it."""
        if not self.is_grid:
            return self.search.num_samples
        return self.search.grid_points() * len(self.seeds)

    @property
    def is_grid(self) -> bool:
        return self.search.kind == "grid"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)
