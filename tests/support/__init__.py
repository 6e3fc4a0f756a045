"""What the tests (and benchmarks/faults.py) share: `selab` in a subprocess (`cli`), tiny
specs (`specs`), what a sweep left in Ray's state and MLflow (`sweep_state`), a real
`mlflow server` (`mlflow_server`) and a proxy that breaks it (`mlflow_proxy`), real Ray nodes
(`ray_nodes`), and CIFAR-format and image-folder data written on the spot (`fakedata`).

The light helpers are importable from here; the servers and nodes from their modules.
"""

from tests.support.cli import (
    free_port,
    own_err,
    reap,
    running_selab,
    selab,
    selab_command,
    start_selab,
    wait_until,
    without_worker_exits,
)
from tests.support.specs import TINY_SPEC, deep_merge, tiny_spec, write_spec

__all__ = [
    "own_err",
    "TINY_SPEC",
    "deep_merge",
    "free_port",
    "reap",
    "running_selab",
    "selab",
    "selab_command",
    "start_selab",
    "tiny_spec",
    "wait_until",
    "without_worker_exits",
    "write_spec",
]
