"""runners.compat: every wrapper of a private Ray or MLflow thing, called against the installed
Ray and MLflow. When an upgrade moves one of them, its test fails with a MovedPrivateAPI error
naming the wrapper (`runners.compat.<wrapper>: <the private name> is gone in ray X.Y`).

And nothing outside runners/compat.py reaches into them.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runners import compat

ROOT = Path(__file__).resolve().parents[1]


def test_a_moved_private_name_fails_naming_the_wrapper() -> None:
    """The failure every other test here would show after an upgrade."""
    with pytest.raises(
        compat.MovedPrivateAPI,
        match=r"runners\.compat\.some_wrapper: ray\._private\.no_such_module\.thing "
        r"is gone in ray \d",
    ):
        compat._private("some_wrapper", "ray._private.no_such_module", "thing")
    with pytest.raises(
        compat.MovedPrivateAPI,
        match=r"runners\.compat\.other: MlflowClient\._no_such_attribute is gone "
        r"in mlflow \d",
    ):
        from mlflow import MlflowClient

        compat._private_attribute("other", MlflowClient("sqlite:///:memory:"), "_no_such_attribute")


# ----------------------------------------------------------------------------- Ray


def test_enable_ray_token_auth_switches_ray_to_tokens() -> None:
    """In a fresh interpreter (it changes the process's Ray config): Ray's own switch runs and
    Ray then reads token mode."""
    code = (
        "import json, os\n"
        "from runners import compat\n"
        "compat.enable_ray_token_auth()\n"
        "from ray._private.authentication.authentication_utils import is_token_auth_enabled\n"
        "print(json.dumps([os.environ.get('RAY_AUTH_MODE'), is_token_auth_enabled()]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["token", True]


def test_silence_ray_token_notice_quiets_the_logger_ray_announces_with() -> None:
    module = compat._private("silence_ray_token_notice", compat.RAY_TOKEN_SETUP_MODULE, "logger")
    assert module.name == compat.RAY_TOKEN_SETUP_MODULE, (
        f"runners.compat.silence_ray_token_notice: Ray's token notice now comes from {module.name}"
    )
    compat.silence_ray_token_notice()
    assert module.getEffectiveLevel() == logging.ERROR


def test_result_grid_trials_are_the_trials_of_the_results_in_order(
    ray_address: str, tmp_path: Path
) -> None:
    from ray import tune

    def trainable(config: dict) -> None:
        if config["fail"]:
            raise RuntimeError("injected")
        tune.report({"x": config["x"]})

    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2, 3]), "fail": tune.grid_search([False, True])},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="compat", verbose=0),
    )
    grid = tuner.fit()
    trials = compat.result_grid_trials(grid)
    assert len(trials) == len(grid) == 6
    for trial, result in zip(trials, grid, strict=True):
        assert trial.config == result.config
        assert trial.status == ("ERROR" if result.config["fail"] else "TERMINATED")


def test_reporter_progress_text_and_print_are_the_reporters_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ray.tune import CLIReporter

    reporter = CLIReporter(max_report_frequency=0)
    text = compat.reporter_progress_text(reporter, [], True, "selab sys info line")
    assert isinstance(text, str) and "selab sys info line" in text
    capsys.readouterr()
    compat.reporter_print(reporter, "selab line")
    assert "selab line" in capsys.readouterr().out


def test_new_ray_auth_token_is_a_token_ray_accepts_in_form() -> None:
    token = compat.new_ray_auth_token()
    assert isinstance(token, str) and len(token) >= 32 and token.strip() == token
    assert token != compat.new_ray_auth_token()


def test_merge_runtime_envs_merges_and_refuses_a_key_in_both() -> None:
    merged = compat.merge_runtime_envs(
        {"working_dir": "gcs://_ray_pkg_x.zip"}, {"py_modules": ["/a"], "excludes": ["__pycache__"]}
    )
    assert merged is not None
    assert merged["working_dir"] == "gcs://_ray_pkg_x.zip" and merged["py_modules"] == ["/a"]
    assert compat.merge_runtime_envs({"py_modules": ["/a"]}, {"py_modules": ["/b"]}) is None


# ----------------------------------------------------------------------------- MLflow


def test_tracking_store_schemes_and_has_tracking_store(tmp_path: Path) -> None:
    schemes = compat.tracking_store_schemes()
    assert {"", "file", "sqlite", "http", "https"} <= set(schemes), schemes
    assert compat.has_tracking_store(f"sqlite:///{tmp_path / 'm.db'}")
    assert compat.has_tracking_store("http://127.0.0.1:1")
    assert not compat.has_tracking_store("nosuchscheme://somewhere")
    assert not (tmp_path / "m.db").exists()  # asked, not opened


# ----------------------------------------------------------------------------- one place


PRIVATE = re.compile(
    r"\b(ray|mlflow)(\.\w+)*\._\w"  # ray._private..., mlflow.tracking._tracking_service...
    r"|^\s*from\s+(ray|mlflow)[\w.]*\s+import\s+.*\b_\w"  # from ray.x import _private_name
    r"|\._experiment_analysis\b|\._progress_str\b|\._tracking_store_registry\b",
    re.MULTILINE,
)


def test_no_private_ray_or_mlflow_name_outside_compat() -> None:
    sources = [
        p
        for folder in ("runners", "tests", "benchmarks", "scripts", "reports", "search_space")
        for p in (ROOT / folder).rglob("*.py")
    ]
    exempt = {ROOT / "runners" / "compat.py", Path(__file__).resolve()}
    found = [
        f"{p.relative_to(ROOT)}: {m.group(0).strip()}"
        for p in sources
        if p not in exempt
        for m in PRIVATE.finditer(p.read_text(encoding="utf-8"))
    ]
    assert found == [], "private Ray/MLflow names belong in runners/compat.py:\n" + "\n".join(found)


def test_every_wrapper_is_tested_here() -> None:
    wrappers = [
        name
        for name, value in vars(compat).items()
        if callable(value)
        and not name.startswith("_")
        and getattr(value, "__module__", "") == "runners.compat"
        and not isinstance(value, type)
    ]
    text = Path(__file__).read_text(encoding="utf-8")
    untested = [name for name in wrappers if f"compat.{name}(" not in text]
    assert untested == [], f"wrappers without a test in tests/test_compat.py: {untested}"
    assert importlib.import_module("runners.compat") is compat
