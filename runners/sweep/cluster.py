"""Connecting the driver to Ray: a fresh local instance, or a cluster that gets our code.

Three ways to reach a cluster, each tested: `--address host:port` (a driver on a cluster node),
`--address ray://host:10001` (Ray Client, needs `ray[client]`), and `ray job submit` (the driver
runs on the head; Ray sets $RAY_ADDRESS for it). In every case the workers run the driver's own
code: the packages it imported travel in the runtime_env, as paths Ray zips and uploads (module
objects cannot be copied or pickled when Ray merges a job's settings).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from runners import compat
from search_space.errors import ConfigError

CLUSTER_EXTRA = "pip install 'selab[cluster]'"
# Packages the workers need from this project (they need its dependencies installed).
CODE_PACKAGES = ("search_space", "runners", "reports")
_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray for a `ray job submit` driver
_ADDRESS_TIMEOUT_S = 3.0


class ClusterError(ConfigError):
    """The cluster named by --address cannot be joined (reported like bad input: no trace)."""


def cluster_address(address: str | None) -> str | None:
    """--address, else $RAY_ADDRESS; None (or "local") for a fresh local instance."""
    address = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    return None if address in ("", "local") else address


def check_address(address: str | None) -> str | None:
    """Fail within seconds, naming --address, when nothing answers at the cluster's address
    (Ray itself waits minutes), or when Ray Client is asked for without `ray[client]`.

    Returns the address to use (None: a fresh local instance). Call it before anything of the
    sweep exists, like any other check of the command line.
    """
    address = cluster_address(address)
    if address is None or address == "auto":
        return address
    host, port = _host_port(address)
    if address.startswith("ray://"):
        _require_ray_client(address)
    try:
        with socket.create_connection((host, port), timeout=_ADDRESS_TIMEOUT_S):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, socket.timeout) else (err.strerror or str(err))
        raise ClusterError(
            f"--address {address}: no Ray cluster answers at {host}:{port} ({reason}).\n"
            "Start the head with `ray start --head` (Ray Client: port 10001 by default; a "
            "driver on a node: the GCS port, 6379 by default), or leave --address and "
            "$RAY_ADDRESS unset for a local Ray instance."
        ) from None
    return address


def _host_port(address: str) -> tuple[str, int]:
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ClusterError(
            f"--address {address}: expected host:port (a driver on a cluster node, e.g. "
            "10.0.0.1:6379) or ray://host:port (Ray Client, e.g. ray://10.0.0.1:10001)"
        )
    return host.strip("[]"), int(port)


def _require_ray_client(address: str) -> None:
    try:
        import grpc  # noqa: F401  (what `ray[client]` adds)
    except ImportError:
        raise ClusterError(
            f"--address {address}: Ray Client needs the `ray[client]` extra: {CLUSTER_EXTRA}"
        ) from None


def enable_token_auth() -> bool:
    """Use Ray's token authentication when the driver holds a token and nothing says otherwise.

    `ray start` turns token authentication on when it finds a token (~/.ray/auth_token, or
    $RAY_AUTH_TOKEN / $RAY_AUTH_TOKEN_PATH), but a driver given an explicit address does not
    look for one, and its connection is refused. An explicit $RAY_AUTH_MODE always wins.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return os.environ["RAY_AUTH_MODE"].lower() == "token"
    if not _token_available():
        return False
    try:  # Ray's own switch, which also refreshes its cached config for this process
        compat.enable_ray_token_auth()
    except compat.MovedPrivateAPI:  # a Ray that reads the variable when it starts
        os.environ["RAY_AUTH_MODE"] = "token"
    return True


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    token_file = Path(path).expanduser() if path else Path.home() / ".ray" / "auth_token"
    return token_file.is_file()


def code_runtime_env() -> dict:
    """The runtime_env that gives the workers the packages this driver imported, as folders.

    A `ray job submit` driver's runtime_env is merged by Ray with the job's, and a key in both
    is an error: so nothing is added when the job ships py_modules itself, and the job's
    `excludes` (if any) stand for ours. (Ray puts a job's working dir first on its driver's
    path: a working dir holding these packages, a checkout, is the code the job runs.)
    """
    import importlib

    job_env = _job_runtime_env()
    if job_env.get("py_modules"):
        return {}
    folders = [str(Path(importlib.import_module(name).__file__).parent) for name in CODE_PACKAGES]
    env: dict[str, Any] = {"py_modules": folders}
    if "excludes" not in job_env:
        env["excludes"] = ["__pycache__"]
    return env


def job_working_dir() -> Path | None:
    """The folder a `ray job submit --working-dir` driver runs in (Ray's temporary copy of the
    working dir, deleted with the job), or None outside such a job."""
    return Path.cwd().resolve() if _job_runtime_env().get("working_dir") else None


def _job_runtime_env() -> dict[str, Any]:
    """The runtime_env of the `ray job submit` job this driver runs as ({} outside a job)."""
    job_config = json.loads(os.environ.get(_JOB_CONFIG_ENV) or "{}")
    return job_config.get("runtime_env") or {}


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start a local Ray instance, or join the cluster at `address` (or $RAY_ADDRESS).

    Does nothing when this process is already connected (tests start Ray once per session).
    """
    import ray

    if ray.is_initialized():
        return
    address = check_address(address)
    quiet = {"logging_level": logging.WARNING, "configure_logging": True}
    if address is None:
        # A local instance is private to this sweep: Ray's notice that it turned token
        # authentication on is nothing a user can act on.
        compat.silence_ray_token_notice()
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            **quiet,
        )
        return
    token = enable_token_auth()
    try:
        _init_with_retries(ray, address, quiet)
    except Exception as err:  # Ray raises several kinds; the message is what the user needs
        hint = (
            ""
            if token
            else (
                "\nIf the cluster uses token authentication (Ray's default), give the driver the "
                "cluster's token: export RAY_AUTH_MODE=token and put the token in "
                "~/.ray/auth_token (or $RAY_AUTH_TOKEN)."
            )
        )
        raise ClusterError(
            f"--address {address}: could not join the Ray cluster: "
            f"{type(err).__name__}: {_first_line(err)}{hint}"
        ) from None


# Ray Client's server starts a process per client; on a loaded head that start can fail
# ("Initialization failure from server"), and a new attempt usually succeeds.
CLIENT_ATTEMPTS = 3


def _init_with_retries(ray: Any, address: str, quiet: dict[str, Any]) -> None:
    attempts = CLIENT_ATTEMPTS if address.startswith("ray://") else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, runtime_env=code_runtime_env(), **quiet)
            return
        except ConnectionAbortedError as err:
            if attempt == attempts or "Initialization failure" not in str(err):
                raise
            print(
                f"selab: the Ray Client server at {address} failed to start a session "
                f"(attempt {attempt} of {attempts}); trying again",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(2 * attempt)


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0].strip() if lines else "no message"
