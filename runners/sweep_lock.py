"""One driver per sweep: an exclusive lock on a file in the sweep's state folder.

`selab run`, `selab resume` and `selab sync` take it before touching the sweep; a second driver
is refused at once with who holds it, instead of racing the first over Ray's state and the
MLflow runs. The operating system drops the lock when its process ends, however it ends
(SIGKILL included), so a dead driver never leaves a sweep locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from search_space.errors import ConfigError

LOCK_FILE = "selab.lock"


class SweepLocked(ConfigError):
    """Another live process drives this sweep."""


class SweepLock:
    def __init__(self, state_dir: str | os.PathLike, name: str) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self.name = name
        self._fd: int | None = None

    def acquire(self) -> SweepLock:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise SweepLocked(
                f"sweep {self.name!r} is being run by another driver ({holder}); "
                f"wait for it to end or stop it first (lock: {self.path})"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        with contextlib.suppress(OSError):  # read-only storage: the lock itself still holds
            self.path.write_text(json.dumps(holder))
        self._fd = fd
        return self

    def _open(self) -> int:
        """A read-only descriptor to lock (flock needs no write access, and a file held open
        for writing would keep the storage from being remounted read-only)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(exist_ok=True)
        except OSError as err:
            if not self.path.is_file():
                raise ConfigError(
                    f"storage: cannot create {self.path} ({err.strerror or err})") from None
        return os.open(self.path, os.O_RDONLY)

    def held_elsewhere(self) -> bool:
        """True while another process holds the lock (this one does not take it)."""
        if not self.path.is_file():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"
