"""Reading a sweep spec: a YAML file, `--set KEY=VALUE` overrides, every problem in one pass.

The file is read by runners.spec.yaml_input (size, duplicate keys and alias expansion checked
while parsing). `parse_spec` then collects every problem of the spec at once, each named by its
field: the shape of every section (runners.spec.sweep), the fixed architecture, and every point
the spec expands to (runners.spec.points.validate), so a spec with mistakes in three sections
is refused once, listing the three.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from runners.spec.points import check_key, point_problems, static_shape
from runners.spec.sweep import SweepSpec
from runners.spec.yaml_input import parse_yaml, read_text_file
from search_space import ArchConfig
from search_space.errors import ConfigError, from_validation_error


def parse_spec(data: Any, source: str = "spec", points: bool = True) -> SweepSpec:
    """The spec `data` describes; ConfigError listing every problem otherwise. With `points`,
    the points it expands to are checked too (at the dataset's shape where the spec's settings
    say it; preflight checks them again at the shape the files have)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections (name, data, arch, ...), "
            f"got {type(data).__name__}"
        )
    problems: list[str] = []
    spec = None
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        problems += str(from_validation_error(err, model=SweepSpec)).splitlines()
    except ConfigError as err:  # a limit's environment variable
        problems += str(err).splitlines()
    if spec is None:  # what can still be checked on its own: the fixed arch, the varied keys
        problems += _fixed_arch_problems(data, problems) + _varied_key_problems(data)
    elif points:
        problems += point_problems(spec, inspect=False)
    if problems:
        raise ConfigError(problem_list(source, problems))
    return spec


def problem_list(source: str, problems: list[str]) -> str:
    """`source` and its problems, one per line ("- "), as the CLI prints them."""
    count = f" {len(problems)} problems" if len(problems) > 1 else ""
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return f"{source}:{count}\n{listed}"


def _fixed_arch_problems(data: dict[str, Any], found: list[str]) -> list[str]:
    """The fixed `arch:` section's problems, when the spec's shape failed elsewhere (the points
    need a valid spec; the architecture alone does not)."""
    arch = data.get("arch")
    if not isinstance(arch, dict) or any(p.startswith("arch") for p in found):
        return []
    section = data.get("data")
    shape = None
    if isinstance(section, dict):
        from runners.spec.data import DataConfig

        try:
            shape = static_shape(DataConfig.model_validate(section))
        except ConfigError:
            shape = None
    if shape is not None:
        keys = ("num_classes", "in_channels", "input_size")
        arch = {**dict(zip(keys, shape, strict=True)), **arch}
    try:
        ArchConfig.parse(arch, prefix="arch.")
    except ConfigError as err:
        return str(err).splitlines()
    except (TypeError, ValueError) as err:  # input no model expects (a list as a key, say)
        return [f"arch: {err}"]
    return []


def _varied_key_problems(data: dict[str, Any]) -> list[str]:
    """The problems of the dotted keys `search.grid` or `search.space` varies."""
    search = data.get("search")
    keys = []
    for part in ("grid", "space"):
        varied = search.get(part) if isinstance(search, dict) else None
        keys += [key for key in varied if isinstance(key, str)] if isinstance(varied, dict) else []
    problems = []
    for key in keys:
        try:
            check_key(key)
        except ConfigError as err:
            problems.append(str(err))
    return problems


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """Read and check a spec file (its points too), with `--set KEY=VALUE` overrides applied
    first."""
    return load_spec_with_text(path, overrides)[0]


def load_spec_with_text(
    path: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[SweepSpec, str]:
    """(the spec, the YAML text that ran): the file as written, or with overrides applied."""
    path = Path(path)
    text = read_text_file(path, "spec")
    data = parse_yaml(text, str(path))
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
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
            raise ConfigError(
                f"--set {item}: expected KEY=VALUE with a dotted KEY, e.g. "
                "--set resources.gpus_per_trial=0"
            )
        value = parse_yaml(raw, f"--set {key}: the value") if raw.strip() else ""
        node = merged
        *parents, leaf = key.split(".")
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                walked = ".".join(parents[: depth + 1])
                raise ConfigError(
                    f"--set {key}: {walked} is a value ({child!r}), not a section with fields"
                )
            node = child
        node[leaf] = value
    return merged
