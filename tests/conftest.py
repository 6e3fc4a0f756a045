"""Shared fixtures: one local Ray instance per test session, tiny sweep specs, MLflow look-ups."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_address() -> str:
    """A real local Ray instance with 2 CPUs, started once; yields its address so that a
    subprocess driver can join it."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        # An empty dict clears the section's value (e.g. `grid: {}` for a search spec).
        if value and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# Trials of well under a second per epoch on one core: digits, SE-ResNet-8, small batches.
TINY_SPEC: dict[str, Any] = {
    "name": "tiny",
    "data": {"name": "digits"},
    "arch": {"backbone": "cifar_resnet8", "se": {"reduction": 4}},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.05, "schedule": "constant",
              "weight_decay": 0.0, "eval_batch_size": 512},
    "seeds": [0],
    "search": {"kind": "grid", "grid": {"arch.se.reduction": [4, 8]}},
    "resources": {"cpus_per_trial": 1},
}


def tiny_spec(**sections: Any) -> dict[str, Any]:
    """TINY_SPEC with sections replaced (top-level keys) or merged (nested dicts)."""
    return deep_merge(TINY_SPEC, sections)


@pytest.fixture(name="tiny_spec")
def tiny_spec_fixture() -> Callable[..., dict[str, Any]]:
    """tiny_spec(**sections): a small sweep spec dict (see TINY_SPEC)."""
    return tiny_spec


@pytest.fixture(name="sweep_runs")
def sweep_runs_fixture() -> Callable[[str, str], tuple[Any, list[Any]]]:
    """sweep_runs(uri, experiment) -> (newest parent run, its trial runs)."""
    return sweep_runs


def sweep_runs(uri: str, experiment: str) -> tuple[Any, list[Any]]:
    """(the newest parent run, its trial runs) of an experiment."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("selab.role") == "sweep"]
    assert parents, "no parent run"
    parent = max(parents, key=lambda r: r.info.start_time)
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, trials
