"""`selab` as a user runs it: a command in a subprocess, waited for, or started, watched and
killed (the driver of a sweep), and a free port on 127.0.0.1 for the servers it talks to."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

# A line Ray forwards from one of its workers: "(train_trial pid=123) ...", maybe coloured.
_RAY_WORKER_LINE = re.compile(r"^(\x1b\[[0-9;]*m)*\([^)]*pid=\d+[^)]*\)")


def own_err(capsys: pytest.CaptureFixture[str]) -> str:
    """What an in-process `main([...])` wrote to stderr, without the lines Ray forwards from
    workers of the test session's Ray instance (an idle worker reaped by Ray can print its
    shutdown traceback into any later test's capture)."""
    err = capsys.readouterr().err
    return "".join(
        line for line in err.splitlines(keepends=True) if not _RAY_WORKER_LINE.match(line)
    )


def without_worker_exits(output: str) -> str:
    """A driver's output without what Ray forwards from a worker it stops: Ray's SIGTERM
    handler raises SystemExit, and when that lands in a weakref callback Python prints it as
    "Exception ignored ... Traceback". Lines of the other workers stay."""
    stopped = {
        match.group(0)
        for line in output.splitlines()
        if "sigterm_handler" in line or "SystemExit" in line
        if (match := _RAY_WORKER_LINE.match(line))
    }
    return "".join(
        line
        for line in output.splitlines(keepends=True)
        if not ((match := _RAY_WORKER_LINE.match(line)) and match.group(0) in stopped)
    )


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
