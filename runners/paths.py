"""Where a sweep reads and writes: paths made absolute in the driver, storage URIs kept as is.

Ray runs each trial in a working folder of its own, so a relative data root or storage folder
would resolve differently in every trial; the driver resolves them once, before any trial
starts, and the trials receive absolute paths inside the spec. Storage that Ray Tune reads
through pyarrow (`s3://`, `gs://`, any pyarrow filesystem URI) passes through untouched.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runners.spec import SweepSpec

SWEEP_META_FILE = "selab_sweep.json"
SWEEP_SPEC_FILE = "selab_spec.yaml"
TUNER_FILE = "tuner.pkl"


def is_uri(location: str) -> bool:
    """A storage URI (s3://bucket/x, gs://..., file:///...) rather than a local path."""
    return "://" in location


def absolute_storage(storage: str) -> str:
    return storage if is_uri(storage) else str(Path(storage).expanduser().resolve())


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
        self.location = f"{self.storage.rstrip('/')}/{name}"

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

    def __str__(self) -> str:
        return self.location

    def _info(self, relative: str = "") -> Any:
        return self.fs.get_file_info(f"{self.path}/{relative}" if relative else self.path)

    def exists(self) -> bool:
        import pyarrow.fs

        return self._info().type != pyarrow.fs.FileType.NotFound

    def has(self, relative: str) -> bool:
        import pyarrow.fs

        return self._info(relative).type == pyarrow.fs.FileType.File

    def is_sweep(self) -> bool:
        """A folder a selab run made (its metadata file is there)."""
        return self.has(SWEEP_META_FILE)

    def write_text(self, relative: str, text: str) -> None:
        self.fs.create_dir(self.path, recursive=True)
        with self.fs.open_output_stream(f"{self.path}/{relative}") as out:
            out.write(text.encode())

    def read_text(self, relative: str) -> str:
        with self.fs.open_input_stream(f"{self.path}/{relative}") as src:
            return src.readall().decode()

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
            e.base_name for e in entries
            if e.type == pyarrow.fs.FileType.Directory
            and self.fs.get_file_info(f"{e.path}/{SWEEP_META_FILE}").type
            == pyarrow.fs.FileType.File
        )
