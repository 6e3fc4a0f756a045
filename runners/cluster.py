"""Connecting the driver to Ray: a fresh local instance, or a cluster that gets our code."""

from __future__ import annotations

import logging
import os


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start a local Ray instance, or join the cluster at `address` (or $RAY_ADDRESS).

    A cluster's workers get this project's packages through runtime_env py_modules, so they
    need its dependencies installed but not the project itself. Does nothing when this
    process is already connected (tests start Ray once per session).
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    quiet = {"logging_level": logging.WARNING, "configure_logging": True}
    if address:
        import reports
        import runners
        import search_space

        ray.init(
            address=address,
            runtime_env={"py_modules": [search_space, runners, reports]},
            **quiet,
        )
        return
    ray.init(
        address="local",
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        **quiet,
    )
