"""Shared fixtures: one local Ray instance per test session, tiny sweep specs, MLflow look-ups;
and which tests are `slow` (SLOW_TESTS), so that `pytest -m "not slow"` is the quick lane.

The helpers behind the fixtures (and the ones tests import directly) are in tests/support/.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.specs import tiny_spec
from tests.support.sweep_state import sweep_runs

# Tests left out of the quick lane (`pytest -m "not slow"`), as regular expressions matched
# against the start of a test's id, each with why: real clusters, servers, killed processes,
# sweeps, or large networks. CI runs everything. (A test may also carry @pytest.mark.slow.)
# The quick lane keeps one real sweep end to end: tests/test_trial_records.py.
SLOW_TESTS = {
    # Ray clusters, servers, killed processes
    r"tests/test_cluster\.py::test_(an_address|ray_client|ray_job|host_port)": "ray start nodes",
    r"tests/test_s3_storage\.py": "moto's S3 server; drivers killed",
    r"tests/test_tracking_outage\.py": "an mlflow server, killed",
    r"tests/test_storage_faults\.py": "storage remounted read-only under a driver",
    r"tests/test_driver_stops\.py": "drivers killed",
    r"tests/test_ui\.py::test_ui_serves": "an mlflow server",
    # sweeps and long runs
    r"tests/test_sweep\.py::test_(grid_sweep|resume_after|a_failing|nsga2|asha|cifar_under|"
    r"a_diverging)": "sweeps",
    r"tests/test_race\.py::test_a_raced_sweep": "a sweep",
    r"tests/test_paper_specs\.py::test_(a_cpu_table|every_paper_specs_report|"
    r"every_paper_spec_validates)": "sweeps, every paper spec",
    r"tests/test_models_cli\.py": "a sweep",
    r"tests/test_reproducibility\.py": "two sweeps",
    r"tests/test_terminal_output\.py": "a sweep with a Ray of its own",
    r"tests/test_compat\.py::test_result_grid_trials": "a Tune run",
    r"tests/test_memory\.py": "page faults over many training steps",
    r"tests/test_data\.py::test_imagefolder_over_the_memory_budget": "loader processes",
    r"tests/test_spec\.py::test_every_shipped_spec": "every spec in experiments/",
    # Large networks (fvcore traces, timm and torchvision weights, training steps); the quick
    # lane keeps the CIFAR-size and VGG cases of each family.
    r"tests/test_interop\.py::test_(imported_weights|export_gives_back|"
    r"a_selab_network_exports)": "timm and torchvision networks",
    r"tests/test_search_space_cost\.py::test_se_flop_and_param_increase_equals_closed_form"
    r"\[(?!(cifar_resnet20|cifar_preact_resnet20)-32-standard-)": "fvcore",
    r"tests/test_search_space_cost\.py::test_no_op_of_a_built_network_is_left_unsupported"
    r"\[(?!cifar_resnet20|cifar_preact_resnet20|vgg11)": "fvcore",
    r"tests/test_search_space_cost\.py::test_(se_resnet50_fvcore|plain_resnet50)": "fvcore",
    r"tests/test_search_space_networks\.py::test_every_variant_runs_forward_and_backward"
    r"\[(?!cifar_resnet8-|cifar_preact_resnet8-|vgg11-)": "large networks",
    r"tests/test_paper_networks\.py::test_(every_placement|every_op|other_attention|senet154|"
    r"shufflenet_se_cost|plain_networks_with_timm|table_3|cli_cost_for)": "the paper's networks",
    r"tests/test_se_fast\.py::test_training_forward_and_gradients_equal": "training steps",
    r"tests/test_placement\.py::test_unit_output_is_the_closed_form_of_its_placement"
    r"\[(mobilenet_v2|cifar_resnet164|cifar_preact_resnet164)": "large units",
    r"tests/test_attention\.py::test_(attention_cost_equals_its_closed_form|"
    r"groups_regroup_every_3x3_conv)\[(?!cifar)": "fvcore",
    r"tests/test_cli_cost\.py::test_cost_(json_for_se_and_plain_resnet50|of_sknet50|"
    r"flags_select)": "fvcore on ImageNet networks",
    r"tests/test_placement_init\.py::test_(with_the_gate_started_near_1|with_zero_init_residual|"
    r"zero_init_residual_makes)": "training steps",
    r"tests/test_preact\.py::test_se_cost_on_preact_units": "fvcore",
    # reports on simulated and real sweeps
    r"tests/test_reports_publish\.py::test_the_parent_run_carries_the_answer": "a sweep",
    r"tests/test_reports_importance\.py::test_the_knob_that_drives_accuracy": "simulations",
}
_SLOW = re.compile("|".join(f"(?:{pattern})" for pattern in SLOW_TESTS))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    no_gpu = None
    for item in items:
        if _SLOW.match(item.nodeid):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("gpu") is not None:
            if no_gpu is None:  # torch only when a gpu test is collected
                import torch

                no_gpu = not torch.cuda.is_available()
            if no_gpu:  # `gpu` tests run wherever a CUDA device exists, and only there
                item.add_marker(pytest.mark.skipif(True, reason="needs a CUDA device"))


@pytest.fixture(scope="session")
def ray_address() -> str:
    """A real local Ray instance with 2 CPUs, started once; yields its address so that a
    subprocess driver can join it."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(name="tiny_spec")
def tiny_spec_fixture() -> Callable[..., dict[str, Any]]:
    """tiny_spec(**sections): a small sweep spec dict (see tests.support.specs.TINY_SPEC)."""
    return tiny_spec


@pytest.fixture(name="sweep_runs")
def sweep_runs_fixture() -> Callable[[str, str], tuple[Any, list[Any]]]:
    """sweep_runs(uri, experiment) -> (newest parent run, its trial runs)."""
    return sweep_runs
