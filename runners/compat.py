"""The private Ray and MLflow things selab needs, each behind one small function.

Each wrapper says which public API is missing. Nothing else in selab (or its tests) reaches
into `ray._private`, an underscored attribute of Ray or MLflow, or an underscored method of a
class it subclasses: when an upgrade moves one of them, this file is the one to change, and
tests/test_compat.py, which calls every wrapper against the installed Ray and MLflow, fails
naming the wrapper (a `MovedPrivateAPI` error).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

# The module whose logger announces that Ray turned token authentication on.
RAY_TOKEN_SETUP_MODULE = "ray._private.authentication.authentication_token_setup"


class MovedPrivateAPI(RuntimeError):
    """A private Ray or MLflow name a wrapper uses is gone from the installed version."""


def _private(wrapper: str, module: str, *attributes: str) -> Any:
    """`module`.`attributes...`, or MovedPrivateAPI naming the wrapper and the version."""
    package = module.split(".", 1)[0]
    try:
        found: Any = importlib.import_module(module)
        for name in attributes:
            found = getattr(found, name)
    except (ImportError, AttributeError) as err:
        version = getattr(importlib.import_module(package), "__version__", "?")
        where = ".".join((module, *attributes))
        raise MovedPrivateAPI(
            f"runners.compat.{wrapper}: {where} is gone in {package} {version} ({err}); "
            f"update runners.compat.{wrapper} for this {package}"
        ) from err
    return found


def _private_attribute(wrapper: str, obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name)
    except AttributeError as err:
        package = type(obj).__module__.split(".", 1)[0]
        version = getattr(importlib.import_module(package), "__version__", "?")
        raise MovedPrivateAPI(
            f"runners.compat.{wrapper}: {type(obj).__name__}.{name} is gone in {package} "
            f"{version}; update runners.compat.{wrapper} for this {package}"
        ) from err


# ----------------------------------------------------------------------------- Ray


def enable_ray_token_auth() -> None:
    """Switch this process (and the processes it starts) to Ray's token authentication.

    Missing public API: Ray reads $RAY_AUTH_MODE into a cached config when it is imported and
    has no public call to read it again, so setting the variable afterwards is not enough for
    this process; Ray's own `_enable_token_auth` sets it and refreshes the cache.
    """
    _private("enable_ray_token_auth", RAY_TOKEN_SETUP_MODULE, "_enable_token_auth")()


def silence_ray_token_notice() -> None:
    """Keep Ray from announcing that it turned token authentication on (a local instance that
    is private to one sweep: nothing a user can act on).

    Missing public API: no setting turns the notice off; it is logged by the logger of a module
    of `ray._private` (a Ray without token authentication has no such module, and says
    nothing).
    """
    logging.getLogger(RAY_TOKEN_SETUP_MODULE).setLevel(logging.ERROR)


def result_grid_trials(grid: Any) -> list[Any]:
    """The Tune trials of a `ResultGrid`, in the order of its results.

    Missing public API: a `Result` has no trial status, and a trial whose error Ray could not
    write (storage turned read-only) has no `Result.error` either; only the trial says it
    failed. The grid keeps its trials in its private `_experiment_analysis`.
    """
    analysis = _private_attribute("result_grid_trials", grid, "_experiment_analysis")
    return list(analysis.trials)


def reporter_progress_text(reporter: Any, trials: list[Any], done: bool, *sys_info: str) -> str:
    """The progress table a Tune `CLIReporter` would print now, as text.

    Missing public API: `CLIReporter.report` prints the table; the text it prints comes from
    its private `_progress_str`, the only way to change a line of it.
    """
    return _private_attribute("reporter_progress_text", reporter, "_progress_str")(
        trials, done, *sys_info
    )


def reporter_print(reporter: Any, text: str) -> None:
    """Print `text` the way a Tune `CLIReporter` prints its table.

    Missing public API: the reporter's output goes through its private `_print`.
    """
    _private_attribute("reporter_print", reporter, "_print")(text)


def new_ray_auth_token() -> str:
    """A new token for Ray's token authentication, as `ray start` makes one (the tests' local
    clusters write it where nodes and drivers find it).

    Missing public API: Ray generates tokens only inside `ray start` and its private
    `authentication_token_generator`.
    """
    generate = _private(
        "new_ray_auth_token",
        "ray._private.authentication.authentication_token_generator",
        "generate_new_authentication_token",
    )
    return generate()


def merge_runtime_envs(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any] | None:
    """What Ray makes of a `ray job submit` driver's runtime_env (`child`) inside the job's
    (`parent`): merged, or None when a key is set in both (which Ray refuses).

    Missing public API: Ray merges them inside `ray.init`, with its private
    `_merge_runtime_env`; the tests check selab's runtime_env against it without a cluster.
    """
    merge = _private("merge_runtime_envs", "ray.runtime_env.runtime_env", "_merge_runtime_env")
    return merge(parent, child)


# ----------------------------------------------------------------------------- MLflow


def tracking_store_schemes() -> list[str]:
    """The URI schemes the installed MLflow has a tracking store for (sqlite, http, ...).

    Missing public API: MLflow's registry of tracking stores is the private
    `_tracking_store_registry` and its `_registry` dict.
    """
    registry = _private(
        "tracking_store_schemes",
        "mlflow.tracking._tracking_service.utils",
        "_tracking_store_registry",
    )
    return sorted(_private_attribute("tracking_store_schemes", registry, "_registry"))


def has_tracking_store(uri: str) -> bool:
    """Whether the installed MLflow has a tracking store for `uri`'s scheme, without opening
    it (no connection to a server, no database created).

    Missing public API: only the private registry answers without opening the store.
    """
    registry = _private(
        "has_tracking_store", "mlflow.tracking._tracking_service.utils", "_tracking_store_registry"
    )
    try:
        registry.get_store_builder(uri)
    except Exception:  # noqa: BLE001 - MLflow's own "unsupported URI" error
        return False
    return True
