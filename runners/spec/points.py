"""From a spec to trials: dotted keys, the points a sweep expands to, and each trial's settings.

A point is a dict of overrides of the spec's fixed part, addressed by dotted keys
(`arch.se.reduction`, `train.lr`, `data.limit_train`). A trial is a point plus a seed.
Everything here is pure Python and cheap, so `selab validate` and the driver can check every
point before a single trial starts.

Who resolves a trial (`resolve_trial`), and why each one does:
- preflight validates every point before anything starts (`validate`);
- the driver resolves each trial once when it starts: its journal callback writes the
  trial's `TrialRecord` (label, baseline flag, overrides, MLflow params) into the trial_start
  event, and the MLflow writer and the sweep's failure lines read it from there;
- the trial itself resolves its settings in its own process (runners.trial.trainable).
"""

from __future__ import annotations

import copy
import itertools
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from runners.spec.data import DataConfig
from runners.spec.sweep import ChoiceDim, FloatDim, IntDim, MaskDim, SweepSpec
from runners.spec.train import TrainConfig
from search_space import ArchConfig
from search_space.errors import ConfigError, allowed, nearest

SECTIONS: dict[str, type[BaseModel]] = {
    "arch": ArchConfig,
    "train": TrainConfig,
    "data": DataConfig,
}
BASELINE_POINT: dict[str, Any] = {"arch.se.enabled": False}

# Short names for labels such as "r=8" (the last part of the key otherwise).
SHORT_NAMES = {"arch.se.reduction": "r", "arch.se.enabled": "se"}

# (num_classes, in_channels, image size) of datasets whose shape is known without their files.
KNOWN_SHAPES = {"digits": (10, 1, 8), "cifar10": (10, 3, 32), "cifar100": (100, 3, 32)}


# ----------------------------------------------------------------------------- dotted keys


def check_key(key: str) -> None:
    """Raise ConfigError unless `key` names a field of the trial config (arch./train./data.)."""
    section, *path = key.split(".")
    if section not in SECTIONS or not path:
        guess = nearest(section, SECTIONS)
        hint = f" (did you mean `{guess}.{'.'.join(path)}`?)" if guess and path else ""
        raise ConfigError(
            f"{key}: unknown key{hint}; keys start with {allowed(s + '.' for s in SECTIONS)} "
            f"followed by a field, e.g. arch.se.reduction or train.lr"
        )
    model: type[BaseModel] | None = SECTIONS[section]
    walked = section
    for part in path:
        if model is None or part not in model.model_fields:
            fields = allowed(model.model_fields) if model is not None else "(no sub-fields)"
            guess = nearest(part, model.model_fields) if model is not None else None
            hint = f"; did you mean `{walked}.{guess}`?" if guess else ""
            raise ConfigError(
                f"{key}: unknown key: {walked} has no field {part!r}{hint} ({walked} has: {fields})"
            )
        model = _submodel(model.model_fields[part].annotation)
        walked = f"{walked}.{part}"


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (also inside `X | None`), else None."""
    # Generic aliases (tuple[int, ...]) pass isinstance(..., type) on Python 3.10 only.
    if (
        isinstance(annotation, type)
        and typing.get_origin(annotation) is None
        and issubclass(annotation, BaseModel)
    ):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if _submodel(a) is not None]
        return models[0] if len(models) == 1 else None
    return None


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """tree["a"]["b"]["c"] = value for key "a.b.c", creating the dicts on the way."""
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


# ----------------------------------------------------------------------------- points


@dataclass(frozen=True)
class Point:
    overrides: dict[str, Any]
    label: str
    baseline: bool = False

    def as_json(self) -> str:
        return json.dumps(self.overrides, sort_keys=True)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(int(v)) if isinstance(v, bool) else format_value(v) for v in value)
    return str(value)


def point_label(overrides: dict[str, Any]) -> str:
    if overrides == BASELINE_POINT:
        return "no SE"
    if not overrides:
        return "fixed"
    parts = []
    for key, value in overrides.items():
        name = SHORT_NAMES.get(key, key.rsplit(".", 1)[-1])
        parts.append(f"{name}={format_value(value)}")
    return " ".join(parts)


def make_point(spec: SweepSpec, overrides: dict[str, Any]) -> Point:
    baseline = spec.search.baseline and overrides == BASELINE_POINT
    return Point(overrides=overrides, label=point_label(overrides), baseline=baseline)


def grid_points(spec: SweepSpec) -> list[Point]:
    """The cartesian product of `search.grid`, then the no-SE baseline if asked for."""
    keys = list(spec.search.grid)
    points = [
        make_point(spec, dict(zip(keys, values, strict=True)))
        for values in itertools.product(*spec.search.grid.values())
    ]
    if spec.search.baseline:
        points.append(make_point(spec, dict(BASELINE_POINT)))
    return points


def count_trials(spec: SweepSpec) -> int:
    """The trials of the sweep (at most, for a race), counted without expanding the grid."""
    return spec.planned_trials()


def decode_point(spec: SweepSpec, raw: dict[str, Any]) -> dict[str, Any]:
    """A trial's overrides from its Tune config: undo the encoding of `encode_choice`."""
    decoded = {}
    for key, value in raw.items():
        dim = spec.search.space.get(key)
        if isinstance(dim, ChoiceDim) and not _is_primitive_choice(dim) and isinstance(value, str):
            value = json.loads(value)
        decoded[key] = value
    return decoded


def _is_primitive_choice(dim: ChoiceDim) -> bool:
    return all(v is None or isinstance(v, (bool, int, float, str)) for v in dim.choice)


def encoded_choices(dim: ChoiceDim) -> list[Any]:
    """Optuna's categorical choices must be scalars: lists (per-stage r) travel as JSON."""
    if _is_primitive_choice(dim):
        return list(dim.choice)
    return [json.dumps(v) for v in dim.choice]


def stage_masks(num_stages: int) -> list[str]:
    """Every on/off mask over the stages, as the '1,0,1' strings ArchConfig reads."""
    return [",".join(bits) for bits in itertools.product("10", repeat=num_stages)]


# ----------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class TrialSettings:
    """Everything one trial needs, validated."""

    arch: ArchConfig
    data: DataConfig
    train: TrainConfig
    seed: int

    def flat_params(self) -> dict[str, str]:
        """The trial's full config as MLflow params (docs/mlflow-schema.md)."""
        params = self.arch.flat_params(prefix="arch.")
        params |= flatten(self.train.model_dump(mode="json"), "train.")
        params |= flatten(self.data.model_dump(mode="json"), "data.")
        params["seed"] = str(self.seed)
        return params


def flatten(tree: dict[str, Any], prefix: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = "" if value is None else format_value(value)
    return flat


def static_shape(data: DataConfig) -> tuple[int, int, int] | None:
    """The dataset's (num_classes, in_channels, image size) when its settings say it (digits,
    CIFAR, synthetic); None when only its files do (imagefolder)."""
    if data.name in KNOWN_SHAPES:
        return KNOWN_SHAPES[data.name]
    if data.name == "synthetic":
        return data.num_classes, data.channels, data.resolved_image_size()
    return None


def dataset_shape(data: DataConfig) -> tuple[int, int, int]:
    """(num_classes, in_channels, image size) of the dataset, read from its files' listing and
    headers (runners.trial.data.load.inspect_dataset), never by loading it; fixed for digits and
    CIFAR. Only a point that varies the data asks: otherwise preflight has put the shape into
    the spec's `arch` once."""
    from runners.trial.data.load import inspect_dataset  # torch: imported only when needed

    if data.name in KNOWN_SHAPES:
        return KNOWN_SHAPES[data.name]
    info = inspect_dataset(data)
    return info.num_classes, info.in_channels, info.image_size


def resolve_trial(
    spec: SweepSpec, overrides: dict[str, Any], seed: int, inspect: bool = True
) -> TrialSettings:
    """The validated settings of one trial: the spec's fixed part with `overrides` applied.

    arch.num_classes / in_channels / input_size default to the dataset's shape; without
    `inspect`, only to a shape known without reading files (else to ArchConfig's defaults).
    """
    tree = {
        "arch": copy.deepcopy(spec.arch),
        "train": spec.train.model_dump(exclude_unset=True),
        "data": spec.data.model_dump(exclude_unset=True),
    }
    for key, value in overrides.items():
        check_key(key)
        set_dotted(tree, key, value)
    data = DataConfig.model_validate(tree["data"])
    train = TrainConfig.model_validate(tree["train"])
    arch_dict = tree["arch"]
    shape = dataset_shape(data) if inspect else static_shape(data)
    if shape is not None and not all(
        k in arch_dict for k in ("num_classes", "in_channels", "input_size")
    ):
        num_classes, channels, size = shape
        arch_dict = {
            "num_classes": num_classes,
            "in_channels": channels,
            "input_size": size,
            **arch_dict,
        }
    arch = ArchConfig.parse(arch_dict, prefix="arch.")
    return TrialSettings(arch=arch, data=data, train=train, seed=seed)


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the driver resolved it when it started: what its trial_start event in the
    journal carries, and what its MLflow run's name, tags and params are made of."""

    label: str
    baseline: bool
    overrides: dict[str, Any]  # the point, decoded (the MLflow tag selab.point)
    seed: int
    params: dict[str, str]  # TrialSettings.flat_params()

    @property
    def run_name(self) -> str:
        return f"{self.label} seed={self.seed}"

    @classmethod
    def resolve(cls, spec: SweepSpec, raw_point: dict[str, Any], seed: int) -> TrialRecord:
        """The record of the trial whose Tune config is {"point": raw_point, "seed": seed}."""
        overrides = decode_point(spec, raw_point)
        point = make_point(spec, overrides)
        params = resolve_trial(spec, overrides, seed).flat_params()
        return cls(point.label, point.baseline, overrides, seed, params)

    def event_fields(self) -> dict[str, Any]:
        """The fields the trial_start event adds to its point and seed."""
        return {
            "label": self.label,
            "baseline": self.baseline,
            "overrides": self.overrides,
            "params": self.params,
        }

    @classmethod
    def from_event(cls, spec: SweepSpec, event: dict[str, Any]) -> TrialRecord:
        """The record a trial_start event carries. A journal written before events carried it
        (a sweep started by an earlier selab, then resumed) is resolved here instead."""
        if "params" not in event:
            return cls.resolve(spec, event["point"], int(event["seed"]))
        return cls(
            event["label"],
            bool(event["baseline"]),
            event["overrides"],
            int(event["seed"]),
            event["params"],
        )


def fixed_settings(spec: SweepSpec, inspect: bool = True) -> TrialSettings:
    return resolve_trial(spec, {}, spec.seeds[0], inspect)


# ----------------------------------------------------------------------------- validation

MAX_LISTED = 10  # bad points listed one by one; beyond that, how many more


def validate(spec: SweepSpec, inspect: bool = True) -> list[Point]:
    """Check every point the spec can run; returns the grid's points ([] for a search).

    Raises ConfigError listing every problem: the fixed part's, else each bad point's (its
    label and the field). Without `inspect`, a dataset's shape only where its settings say it.
    """
    problems = point_problems(spec, inspect)
    if problems:
        raise ConfigError("\n".join(problems))
    return grid_points(spec) if spec.is_grid else []


def point_problems(spec: SweepSpec, inspect: bool = True) -> list[str]:
    """Every problem of the spec's points, one line (or an indented block) each."""
    problems = []
    for key in spec.search.varied_keys:
        problems += _problem(check_key, key)
    if problems:  # every point would repeat them
        return problems
    fixed = _problem(resolve_trial, spec, {}, spec.seeds[0], inspect)
    if fixed:  # every point would repeat them too
        return fixed
    if spec.is_grid:
        checks = [(f"grid point {p.label} {p.as_json()}", p.overrides) for p in grid_points(spec)]
    else:
        checks = []
        for key, dim in spec.search.space.items():
            try:
                values = _values_to_check(spec, key, dim)
            except ConfigError as err:
                problems.append(str(err))
                continue
            checks += [(f"search.space {key} value {format_value(v)}", {key: v}) for v in values]
    bad = []
    for what, overrides in checks:
        lines = _problem(resolve_trial, spec, overrides, spec.seeds[0], inspect)
        if lines:
            bad.append(_headed(what, lines))
    if len(bad) > MAX_LISTED:
        bad = bad[:MAX_LISTED] + [f"... and {len(bad) - MAX_LISTED} more points like these"]
    return problems + bad


def _problem(check: Any, *args: Any) -> list[str]:
    """The lines of the ConfigError `check(*args)` raises ([] when it passes)."""
    try:
        check(*args)
    except ConfigError as err:
        return str(err).splitlines()
    return []


def _headed(what: str, lines: list[str]) -> str:
    if len(lines) == 1:
        return f"{what}: {lines[0]}"
    return f"{what}:\n" + "\n".join(f"    {line}" for line in lines)


def _values_to_check(spec: SweepSpec, key: str, dim: Any) -> list[Any]:
    if isinstance(dim, ChoiceDim):
        return list(dim.choice)
    if isinstance(dim, (IntDim, FloatDim)):
        return list(dim.bounds)
    if isinstance(dim, MaskDim):
        if key != "arch.se.stages":
            raise ConfigError(f"search.space.{key}: mask applies to arch.se.stages only")
        return stage_masks(fixed_settings(spec, inspect=False).arch.num_stages)
    raise AssertionError(dim)
