"""Reading a sweep spec: a YAML file, `--set KEY=VALUE` overrides, errors naming the field.

A spec read here has the right shape (runners.spec.sweep); that every point it expands to is a
valid trial is checked by runners.spec.points.validate.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from runners.spec.sweep import SweepSpec
from search_space.errors import ConfigError, from_validation_error


def parse_spec(data: Any, source: str = "spec") -> SweepSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}:\n{from_validation_error(err)}") from None


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """Read and validate the shape of a spec file (not yet its points: see runners.spec.points),
    with `--set KEY=VALUE` overrides applied first."""
    return load_spec_with_text(path, overrides)[0]


def load_spec_with_text(
    path: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[SweepSpec, str]:
    """(the spec, the YAML text that ran): the file as written, or with overrides applied."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the spec ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file ({err.reason} at byte "
                          f"{err.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, got "
                              f"{type(data).__name__}")
        data = apply_overrides(data, overrides)
        text = yaml.safe_dump(data, sort_keys=False)
    return parse_spec(data, source=str(path)), text


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict:
    """`data` with each `KEY=VALUE` applied: KEY a dotted field of the spec
    (resources.gpus_per_trial), VALUE read as YAML (0, true, [2, 4], a string)."""
    merged = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item}: expected KEY=VALUE with a dotted KEY, e.g. "
                              "--set resources.gpus_per_trial=0")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {key}: the value is not valid YAML: {err}") from None
        node = merged
        *parents, leaf = key.split(".")
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                walked = ".".join(parents[: depth + 1])
                raise ConfigError(f"--set {key}: {walked} is a value "
                                  f"({child!r}), not a section with fields")
            node = child
        node[leaf] = value
    return merged
