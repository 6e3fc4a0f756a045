"""A `selab` command in a subprocess, timed from its start to its exit or its kill, and what
benchmarks/faults.py watches while it runs: the sweep's journal and its folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from runners.tracking.journal import JOURNAL_FILE, SENT_FILE, read_events


class Driver:
    """A `selab` command (tests.support.selab_command), in a session of its own so that what
    it starts (a local Ray) can be found and waited for after a kill."""

    def __init__(
        self, command: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path
    ) -> None:
        self.log = log
        self.end: float | None = None
        self.start = time.monotonic()
        with log.open("a") as out:
            self.process = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # The exit time is taken when it happens, not when the benchmark gets round to it.
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        self.process.wait()
        if self.end is None:
            self.end = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def seconds(self) -> float:
        return (self.end or time.monotonic()) - self.start

    def wait(self, limit_s: float = 600) -> int:
        code = self.process.wait(limit_s)
        while self.end is None:  # the reaper thread sets it right after the exit
            time.sleep(0.01)
        return code

    def kill(self) -> None:
        """SIGKILL the driver alone, then wait (bounded) until what it started is gone."""
        if self.end is None:
            self.end = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        wait_session_gone(self.pid)

    def wait_for(self, condition: Callable[[], bool], what: str, limit_s: float = 240) -> None:
        deadline = time.monotonic() + limit_s
        while not condition():
            if self.process.poll() is not None:
                raise RuntimeError(f"the driver ended before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} within {limit_s:.0f} s:\n{self.tail()}")
            time.sleep(0.05)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:]

    def stop(self) -> None:
        """Clean-up after an error: the driver and everything in its session."""
        kill_session(self.pid)
        self.process.wait()


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
    return pids


def wait_session_gone(sid: int, limit_s: float = 30) -> None:
    """Ray's processes of a killed driver end by themselves (Ray ties them to the driver);
    wait for that, and end stragglers so that the next command has the machine."""
    deadline = time.monotonic() + limit_s
    while session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_session(sid)


def kill_session(sid: int) -> None:
    for pid in session_pids(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- the sweep's folder, as the driver writes it


def events(folder: Path, kind: str) -> list[dict]:
    return [e for e, _ in read_events(folder / JOURNAL_FILE) if e["kind"] == kind]


def training(folder: Path) -> set[str]:
    """Trials that reported an epoch and have not ended."""
    ended = {e["trial_id"] for e in events(folder, "trial_end")}
    return {e["trial_id"] for e in events(folder, "result")} - ended


def unsent_bytes(folder: Path) -> int:
    """How much of the journal MLflow has not received yet."""
    try:
        sent = int(json.loads((folder / SENT_FILE).read_text())["offset"])
    except (OSError, ValueError, KeyError):
        sent = 0
    journal = folder / JOURNAL_FILE
    return (journal.stat().st_size if journal.exists() else 0) - sent


def worker_pid(folder: Path, trial_id: str) -> int | None:
    """The process that runs the trial: Ray writes its pid in every result of result.json
    (None until the first result is there)."""
    for path in folder.glob(f"*{trial_id}*/result.json"):
        lines = path.read_text().splitlines()
        with contextlib.suppress(ValueError, KeyError, IndexError):
            return int(json.loads(lines[-1])["pid"])
    return None
