"""A sweep's local state folder, and which one this process's driver uses.

The journal and the lock of a sweep need a local (or shared) folder: appending and locking are
not things an object store does. For a sweep stored in a folder that is the sweep's own folder;
for one stored behind a URI (s3://...) it is a working copy on this machine
(runners.tracking.journal_mirror copies the journal to the storage and back).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from runners.storage.paths import is_uri, split_location


def local_state_dir(location: str) -> Path:
    """Where the journal and the lock of the sweep at `location` live: the sweep's own folder
    when it is a local (or shared) path; for storage behind a URI (s3://...), which cannot
    append or lock, a working copy in this machine's cache folder ($XDG_CACHE_HOME or
    ~/.cache), named after the URI (the journal is copied to the storage and back by
    runners.tracking.journal_mirror)."""
    if not is_uri(location):
        return Path(location)
    digest = hashlib.sha1(location.encode()).hexdigest()[:12]
    _, name = split_location(location)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "selab" / "sweeps" / f"{name}-{digest}"


# The sweep each driver of this process runs: name -> (state folder, location). A Tune
# callback that `Tuner.restore` unpickles from tuner.pkl writes to the resuming driver's
# journal, not to the state folder of the driver that pickled it (with storage behind a URI,
# that folder is on the machine that first ran the sweep).
_drivers: dict[str, tuple[str, str]] = {}


def register_driver(name: str, state_dir: str, location: str) -> None:
    _drivers[name] = (state_dir, location)


def unregister_driver(name: str) -> None:
    _drivers.pop(name, None)


def registered_driver(name: str) -> tuple[str, str] | None:
    return _drivers.get(name)
