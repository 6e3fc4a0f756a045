"""`selab` as a user runs it: a command in a subprocess, waited for, or started, watched and
killed (the driver of a sweep), and a free port on 127.0.0.1 for the servers it talks to."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def selab_command(*args: str) -> list[str]:
    """The command line of `selab ARGS`, as this Python runs it."""
    return [sys.executable, "-m", "runners.cli", *args]


def selab(
    args: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`selab ARGS` run to its end, its output captured as text."""
    return subprocess.run(
        selab_command(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def start_selab(
    args: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    env: dict[str, str] | None = None,
    session: bool = False,
) -> subprocess.Popen:
    """`selab ARGS` started, its output (stdout and stderr) going to `log`. With `session`, in
    a session of its own, so that `reap` also ends what it started (its own Ray instance)."""
    with log.open("w") as out:
        return subprocess.Popen(
            selab_command(*args),
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=session,
        )


def reap(driver: subprocess.Popen, session: bool = False) -> None:
    """SIGKILL a driver that is still running (a kill point, or a failed test), and wait for
    it; with `session`, every process left in its session too."""
    if driver.poll() is None:
        driver.kill()
    driver.wait()
    if session:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_selab(
    args: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    env: dict[str, str] | None = None,
    session: bool = False,
) -> Iterator[subprocess.Popen]:
    """`start_selab`, reaped when the block ends however it ends."""
    driver = start_selab(args, cwd=cwd, log=log, env=env, session=session)
    try:
        yield driver
    finally:
        reap(driver, session)


def wait_until(
    condition: Callable[[], object],
    driver: subprocess.Popen,
    log: Path,
    limit_s: float = 180,
    what: str = "the awaited state",
) -> None:
    """Block until `condition()` is true; fail, showing the driver's log, if the driver ends
    first or `limit_s` passes."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if driver.poll() is not None:
            pytest.fail(
                f"the driver ended (exit {driver.returncode}) before {what}:\n"
                + log.read_text()[-3000:]
            )
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {limit_s:.0f} s:\n" + log.read_text()[-3000:])
        time.sleep(0.05)
