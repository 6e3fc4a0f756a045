"""One driver per sweep: an exclusive lock on a file in the sweep's state folder, and, for
storage behind a URI, a lease in the storage itself.

`selab run`, `selab resume` and `selab sync` take it before touching the sweep; a second driver
is refused at once with who holds it, instead of racing the first over Ray's state and the
MLflow runs. The operating system drops the file lock when its process ends, however it ends
(SIGKILL included), so a dead driver never leaves a sweep locked.

An object store (S3 and the like) has no lock and, through pyarrow, no atomic create, so a
sweep stored there is guarded by a lease: `<storage>/.selab_locks/<name>.json` names its holder
and is rewritten every HEARTBEAT_S. It is best effort: a driver refuses a lease heard of within
LEASE_S (on the holder's own machine: a holder whose process lives), writes its own, and reads it
back after CONFIRM_S; two drivers started on two machines within that moment could both go on.
On one machine the file lock above still makes it exact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from runners.storage.paths import SweepFolder, is_uri, join_location, split_location
from search_space.errors import ConfigError

LOCK_FILE = "selab.lock"
ATTEMPTS = 5  # locks of a file removed under us before the lock is given up
HOLDER_WAIT_S = 1.0  # how long a refused driver waits for the holder to write its name
LEASES_FOLDER = ".selab_locks"
HEARTBEAT_S = 10.0
LEASE_S = 60.0  # a lease not rewritten for this long belongs to a driver that is gone
CONFIRM_S = 1.0


class SweepLocked(ConfigError):
    """Another live process drives this sweep."""


class SweepLock:
    def __init__(
        self, state_dir: str | os.PathLike, name: str, location: str | None = None
    ) -> None:
        """`location`: the sweep's storage location; a URI adds the storage lease."""
        self.path = Path(state_dir) / LOCK_FILE
        self.name = name
        self.lease = RemoteLease(location, name) if location and is_uri(location) else None
        self._fd: int | None = None
        # What taking the lock made (the lock file, folders), for `remove_made` to take back.
        self.made_file = False
        self.made_dirs: list[Path] = []

    def acquire(self) -> SweepLock:
        for _ in range(ATTEMPTS):
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
            if _is_current(fd, self.path):
                break
            # Locked a file its holder removed as it let go (a start that stopped before its
            # sweep existed): the next attempt locks the path's file, made anew if need be.
            os.close(fd)
        else:
            raise ConfigError(
                f"storage: cannot lock {self.path}: the file keeps being replaced "
                "(another driver starting and stopping?); try again"
            )
        holder = _me()
        with contextlib.suppress(OSError):  # read-only storage: the lock itself still holds
            self.path.write_text(json.dumps(holder))
        self._fd = fd
        if self.lease is not None:
            try:
                self.lease.acquire()
            except OSError as err:  # the bucket cannot be reached: bad input, not a crash
                self.release()
                reason = " ".join(str(err).split())
                raise ConfigError(
                    f"storage (or --storage): cannot take the sweep's lease at "
                    f"{self.lease} ({reason})"
                ) from None
            except BaseException:
                self.release()
                raise
        return self

    def _open(self) -> int:
        """A read-only descriptor to lock (flock needs no write access, and a file held open
        for writing would keep the storage from being remounted read-only)."""
        missing = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.made_file = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.made_dirs = [p for p in missing if p.is_dir()] or self.made_dirs  # deepest first
            if not self.path.exists():
                self.path.touch(exist_ok=True)
                self.made_file = True
            return os.open(self.path, os.O_RDONLY)
        except OSError as err:
            raise ConfigError(
                f"storage: cannot create {self.path} ({err.strerror or err})"
            ) from None

    def remove_made(self) -> None:
        """Take back what taking the lock made (the lock file, then the folders it made, if
        they are empty), while the lock is still held: a driver that stops before its sweep
        exists leaves nothing behind. A driver that meets the file gone takes a new one."""
        if self.made_file:
            with contextlib.suppress(OSError):
                self.path.unlink()
        for folder in self.made_dirs:
            with contextlib.suppress(OSError):  # not empty: something else lives there now
                folder.rmdir()

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class RemoteLease:
    """The lease object of a sweep in remote storage (see the module's docstring)."""

    def __init__(self, location: str, name: str) -> None:
        storage, _ = split_location(location)
        self.store = SweepFolder(storage, LEASES_FOLDER)
        self.file = f"{name}.json"
        self.name = name
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __str__(self) -> str:
        return join_location(self.store.location, self.file)

    def acquire(self) -> None:
        holder = self._read()
        if holder is not None and _alive(holder):
            raise self._locked(holder)
        self._write()
        time.sleep(CONFIRM_S)
        holder = self._read()
        if holder is None or holder.get("token") != self.token:
            raise self._locked(holder or {})
        self._thread = threading.Thread(target=self._beat, name="selab-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(HEARTBEAT_S)
        self._thread = None
        with contextlib.suppress(Exception):  # unreachable: it expires after LEASE_S
            holder = self._read()
            if holder is not None and holder.get("token") == self.token:
                self.store.delete(self.file)

    def _beat(self) -> None:
        warned = False
        while not self._stop.wait(HEARTBEAT_S):
            try:
                holder = self._read()
                if holder is not None and holder.get("token") not in (None, self.token):
                    if not warned:
                        print(
                            f"selab: another driver took over sweep {self.name!r} "
                            f"({_describe(holder)}): stop one of them",
                            file=sys.stderr,
                            flush=True,
                        )
                        warned = True
                    continue
                self._write()
            except Exception:  # noqa: BLE001, S112 - storage away: try again next beat
                continue

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.store.read_text(self.file))
        except FileNotFoundError:
            return None
        except ValueError:
            return {}  # torn or foreign: treated as held by nobody alive

    def _write(self) -> None:
        self.store.write_text(
            self.file, json.dumps({**_me(), "token": self.token, "heartbeat": time.time()})
        )

    def _locked(self, holder: dict[str, Any]) -> SweepLocked:
        return SweepLocked(
            f"sweep {self.name!r} is being run by another driver ({_describe(holder)}); wait "
            f"for it to end or stop it first (lease: {self}; the lease of a driver that died "
            f"on another machine expires {LEASE_S:g} s after it was last renewed)"
        )


def _me() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _alive(holder: dict[str, Any]) -> bool:
    """A lease holder that may still run: renewed within LEASE_S, and, on this machine, its
    process alive (a driver killed here is taken over at once)."""
    fresh = time.time() - float(holder.get("heartbeat", 0)) < LEASE_S
    if not fresh or holder.get("host") != socket.gethostname():
        return fresh
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    try:
        text = f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    except KeyError:
        return "holder unknown"
    if "heartbeat" in holder:
        text += f", last heard {max(0.0, time.time() - float(holder['heartbeat'])):.0f} s ago"
    return text


def _is_current(fd: int, path: Path) -> bool:
    """Whether the locked descriptor is still the file at `path` (not one removed since)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it right after taking it (waited for briefly:
    two drivers started at once may ask before the first has written its name)."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        try:
            text = os.pread(fd, 4096, 0)
            if text:
                return _describe(json.loads(text))
        except (OSError, ValueError):
            pass  # being written right now
        if time.monotonic() > deadline:
            return "holder unknown"
        time.sleep(0.05)
