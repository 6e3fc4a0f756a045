"""The search works with the oldest Optuna selab supports (pyproject's lower bound), not only
with the release the lock file pins: that Optuna is installed beside the environment and the
search's tests run against it in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def declared_floor(package: str) -> str:
    """The version in `package>=X` of pyproject's dependencies."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(rf'"{package}>=([0-9][^",<]*)', text)
    assert match, f"pyproject declares no lower bound for {package}"
    return match.group(1)


@pytest.mark.slow
def test_the_nsga2_and_tpe_searches_pass_with_the_oldest_supported_optuna(tmp_path) -> None:
    floor = declared_floor("optuna")
    target = tmp_path / "optuna-floor"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            f"optuna=={floor}",
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    version = subprocess.run(
        [sys.executable, "-c", "import optuna; print(optuna.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Version(version) == Version(floor)
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_portable_sampler.py",
            "tests/test_sweep.py",
            "-k",
            "portable or sampler or searcher or nsga2 or tpe",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and " failed" not in tests.stdout
