"""Tiny sweep specs: trials of well under a second per epoch on one core (digits,
SE-ResNet-8, small batches), and writing a spec as the YAML file a user gives `selab`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

TINY_SPEC: dict[str, Any] = {
    "name": "tiny",
    "data": {"name": "digits"},
    "arch": {"backbone": "cifar_resnet8", "se": {"reduction": 4}},
    "train": {
        "epochs": 2,
        "batch_size": 64,
        "lr": 0.05,
        "schedule": "constant",
        "weight_decay": 0.0,
        "eval_batch_size": 512,
    },
    "seeds": [0],
    "search": {"kind": "grid", "grid": {"arch.se.reduction": [4, 8]}},
    "resources": {"cpus_per_trial": 1},
}


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        # An empty dict clears the section's value (e.g. `grid: {}` for a search spec).
        if value and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def tiny_spec(**sections: Any) -> dict[str, Any]:
    """TINY_SPEC with sections replaced (top-level keys) or merged (nested dicts)."""
    return deep_merge(TINY_SPEC, sections)


def write_spec(where: Path, data: dict[str, Any]) -> str:
    """Write `data` as a spec file: `where` itself when it names a .yaml file, else
    `<where>/<name>.yaml`; returns the file's path, as a command-line argument."""
    path = where if where.suffix == ".yaml" else where / f"{data['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)
