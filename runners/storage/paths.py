"""Where a sweep reads and writes: paths made absolute in the driver, storage URIs kept as is.

Ray runs each trial in a working folder of its own, so a relative data root or storage folder
would resolve differently in every trial; the driver resolves them once, before any trial
starts, and the trials receive absolute paths inside the spec. Storage that Ray Tune reads
through pyarrow (`s3://`, `gs://`, any pyarrow filesystem URI) passes through untouched, its
query (`?endpoint_override=host:port&scheme=http` for MinIO and other S3-compatible stores)
kept at the end of every location made from it.
"""

from __future__ import annotations

import os
import shlex
import threading
import uuid
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from search_space.errors import ConfigError

if TYPE_CHECKING:
    from runners.spec.sweep import SweepSpec

# The files a sweep's folder holds besides Ray's (runners.storage.saved_sweep reads them).
SWEEP_META_FILE = "selab_sweep.json"  # the MLflow parent run
SWEEP_SPEC_FILE = "selab_spec.yaml"  # the spec as the trials see it
# Written before the MLflow parent run is created: a sweep whose driver was killed before it
# recorded its parent is still a sweep (resume adopts the parent, --overwrite closes it).
SWEEP_START_FILE = "selab_start.json"
SWEEP_DONE_FILE = "selab_done.json"  # every trial ended as the spec allows
TUNER_FILE = "tuner.pkl"  # Ray's saved Tuner: a sweep Ray can restore
# How often Ray copies its sweep state to storage behind a URI (Ray's default is 300 s): what a
# killed driver loses at most. Each copy uploads the state and every trial's result file again.
STATE_SYNC_S = float(os.environ.get("SELAB_STORAGE_SYNC_S", "10"))
# How long the storage check waits for a bucket: the SDK's own retries take about 6 s to give
# up on an endpoint that refuses connections, longer on one that drops them.
STORAGE_TIMEOUT_S = 15.0


def is_uri(location: str) -> bool:
    """A storage URI (s3://bucket/x, gs://..., file:///...) rather than a local path."""
    return "://" in location


def absolute_storage(storage: str) -> str:
    return storage if is_uri(storage) else str(Path(storage).expanduser().resolve())


def join_location(base: str, *parts: str) -> str:
    """`base`/parts: for a URI, inside its path, its query kept at the end."""
    if not is_uri(base):
        return "/".join([base.rstrip("/"), *parts])
    scheme, netloc, path, query, fragment = urlsplit(base)
    return urlunsplit((scheme, netloc, "/".join([path.rstrip("/"), *parts]), query, fragment))


def split_location(location: str) -> tuple[str, str]:
    """(storage, name) of a sweep's location: the inverse of join_location(storage, name)."""
    if not is_uri(location):
        parent, _, name = location.rstrip("/").rpartition("/")
        return parent or "/", name
    scheme, netloc, path, query, fragment = urlsplit(location)
    parent, _, name = path.rstrip("/").rpartition("/")
    return urlunsplit((scheme, netloc, parent, query, fragment)), name


def shell_arg(location: str) -> str:
    """`location` as one shell word (a URI's query holds `?` and `&`)."""
    return shlex.quote(location)


def with_absolute_paths(spec: SweepSpec, storage: str | None = None) -> SweepSpec:
    """The spec with its data root (from data.root, $SELAB_DATA or ./data) and its storage made
    absolute against the current folder; `storage` (the --storage flag) replaces the spec's."""
    data = spec.data
    if data.reads_files:
        data = data.model_copy(update={"root": str(data.root_path().resolve())})
    return spec.model_copy(
        update={"data": data, "storage": absolute_storage(storage or spec.storage)}
    )


class SweepFolder:
    """The sweep's folder `<storage>/<name>`, local or behind a URI (through pyarrow, as Ray
    Tune reads it)."""

    def __init__(self, storage: str, name: str) -> None:
        self.storage = absolute_storage(storage)
        self.name = name
        self.location = join_location(self.storage, name)

    @classmethod
    def at(cls, location: str) -> SweepFolder:
        return cls(*split_location(location))

    @cached_property
    def _resolved(self) -> tuple[Any, str]:
        """(the pyarrow filesystem, the path in it): resolved on first use (a bucket may need
        the network)."""
        import pyarrow.fs

        return pyarrow.fs.FileSystem.from_uri(self.location)

    @property
    def fs(self) -> Any:
        return self._resolved[0]

    @property
    def path(self) -> str:
        return self._resolved[1]

    @property
    def is_remote(self) -> bool:
        return is_uri(self.storage)

    def __str__(self) -> str:
        return self.location

    def uri_of(self, fs_path: str) -> str:
        """A path of this folder's filesystem (as Ray's checkpoints give it) as a location any
        command can open: the URI with this folder's scheme and query, or the local path."""
        if not self.is_remote:
            return fs_path
        scheme, netloc, _, query, fragment = urlsplit(self.location)
        if fs_path.startswith("/"):  # a filesystem of one host (file://, hdfs://host:port)
            return urlunsplit((scheme, netloc, fs_path, query, fragment))
        bucket, _, key = fs_path.partition("/")  # object stores: the path starts with the bucket
        return urlunsplit((scheme, bucket, "/" + key, query, fragment))

    def _info(self, relative: str = "") -> Any:
        try:
            return self.fs.get_file_info(f"{self.path}/{relative}" if relative else self.path)
        except OSError as err:  # a bucket that cannot be reached, bad credentials
            reason = " ".join(str(err).split())
            raise ConfigError(
                f"storage (or --storage): {self.storage}: cannot be reached ({reason})"
            ) from None

    def exists(self) -> bool:
        import pyarrow.fs

        return self._info().type != pyarrow.fs.FileType.NotFound

    def has(self, relative: str) -> bool:
        import pyarrow.fs

        return self._info(relative).type == pyarrow.fs.FileType.File

    def is_sweep(self) -> bool:
        """A folder a selab run made: its parent run is recorded, or its start is."""
        return self.has(SWEEP_META_FILE) or self.has(SWEEP_START_FILE)

    def entries(self) -> list[str]:
        """Names of everything in the folder, files and folders (none if it is not there)."""
        import pyarrow.fs

        selector = pyarrow.fs.FileSelector(self.path, allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(selector))

    def write_text(self, relative: str, text: str) -> None:
        self.write_bytes(relative, text.encode())

    def write_bytes(self, relative: str, data: bytes) -> None:
        target = f"{self.path}/{relative}"
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(target) as out:
            out.write(data)

    def read_text(self, relative: str) -> str:
        return self.read_bytes(relative).decode()

    def read_bytes(self, relative: str) -> bytes:
        with self.fs.open_input_stream(f"{self.path}/{relative}") as src:
            return src.readall()

    def files(self, relative: str) -> list[str]:
        """Names of the files in the sub-folder `relative` (none if it is not there)."""
        import pyarrow.fs

        folder = f"{self.path}/{relative}" if relative else self.path
        selector = pyarrow.fs.FileSelector(folder, allow_not_found=True)
        return sorted(
            info.base_name
            for info in self.fs.get_file_info(selector)
            if info.type == pyarrow.fs.FileType.File
        )

    def delete(self, relative: str) -> None:
        self.fs.delete_file(f"{self.path}/{relative}")

    def remove(self) -> None:
        self.fs.delete_dir(self.path)

    def sibling_sweeps(self) -> list[str]:
        """Names of the sweeps next to this one (for the error of a mistyped name)."""
        import pyarrow.fs

        parent = self.path.rsplit("/", 1)[0]
        try:
            entries = self.fs.get_file_info(pyarrow.fs.FileSelector(parent))
        except (OSError, FileNotFoundError):
            return []
        return sorted(
            e.base_name
            for e in entries
            if e.type == pyarrow.fs.FileType.Directory
            and any(
                self.fs.get_file_info(f"{e.path}/{marker}").type == pyarrow.fs.FileType.File
                for marker in (SWEEP_META_FILE, SWEEP_START_FILE)
            )
        )


def check_remote_storage(storage: str, where: str, *, write: bool = True) -> None:
    """A storage URI answers within STORAGE_TIMEOUT_S, and takes a write (a small object is
    written next to the sweeps and removed again; no sweep folder is made) or, for commands
    that only read it (`write=False`), is there: its bucket, or a folder in it."""
    outcome: list[BaseException | bool] = []

    def probe() -> None:
        try:
            import pyarrow.fs

            fs, path = pyarrow.fs.FileSystem.from_uri(storage)
            if not write:
                outcome.append(fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound)
                return
            probe_file = f"{path.rstrip('/')}/.selab_probe_{uuid.uuid4().hex}"
            with fs.open_output_stream(probe_file) as out:
                out.write(b"selab storage check\n")
            fs.delete_file(probe_file)
            outcome.append(True)
        except Exception as err:  # noqa: BLE001 - any failure of the store is the answer
            outcome.append(err)

    # A thread, so that a store that never answers is given up on in bounded time.
    worker = threading.Thread(target=probe, name="selab-storage-check", daemon=True)
    worker.start()
    worker.join(STORAGE_TIMEOUT_S)
    if not outcome:
        raise ConfigError(
            f"{where}: does not answer within {STORAGE_TIMEOUT_S:g} s (is the "
            "endpoint right? see AWS_ENDPOINT_URL or ?endpoint_override=...)"
        )
    if isinstance(outcome[0], BaseException):
        reason = " ".join(str(outcome[0]).split())
        raise ConfigError(f"{where}: cannot be {'written' if write else 'read'} ({reason})")
    if not outcome[0]:
        raise ConfigError(f"{where}: not found (no such bucket, or nothing stored there)")
