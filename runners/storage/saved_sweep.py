"""A sweep as its folder keeps it: the one way to save and open what `resume` and `sync` need.

`selab run` writes into the sweep's folder (<storage>/<name>), once its checks have passed and
before anything else exists: the spec as the trials see it (`selab_spec.yaml`, absolute paths),
then the sweep's start (`selab_start.json`: the tracking store, the experiment, the moment, and
the spec's text), and only then creates the MLflow parent run, which it records at once
(`selab_sweep.json`). A driver killed between the two leaves a sweep whose parent is not
recorded: `selab resume` adopts the parent that start created (found by its tags and time) or
creates it, `selab run --overwrite` closes it. A sweep whose every trial ended as the spec
allows also gets a done marker (`selab_done.json`, the trials' statuses), so that `selab
resume` has nothing to do. Everything that reads a saved sweep (resume, sync, the driver
closing an earlier parent run on --overwrite) opens it here.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass

from runners.spec.defaults import DEFAULT_STORAGE
from runners.spec.load import parse_spec
from runners.spec.sweep import SweepSpec
from runners.spec.yaml_input import parse_yaml
from runners.storage.paths import (
    SWEEP_DONE_FILE,
    SWEEP_META_FILE,
    SWEEP_SPEC_FILE,
    SWEEP_START_FILE,
    SweepFolder,
    absolute_storage,
    shell_arg,
)
from runners.tracking.schema import ParentRun
from search_space.errors import ConfigError


@dataclass
class SweepStart:
    """What a sweep's start recorded before its MLflow parent run was created: where that run
    goes, and when (a parent of this folder created since then is this start's)."""

    tracking_uri: str
    experiment: str
    since_ms: int
    spec_yaml: str  # the spec as it was given (the parent run's spec.yaml)


@dataclass
class SavedSweep:
    folder: SweepFolder
    spec: SweepSpec
    parent: ParentRun | None  # None: the driver stopped before it recorded one (see `start`)
    start: SweepStart | None = None

    @property
    def tracking_uri(self) -> str:
        return self.parent.tracking_uri if self.parent is not None else self.start.tracking_uri

    def done_statuses(self) -> Counter | None:
        """selab.status -> number of trials, when the sweep has ended (None while it has not)."""
        if not self.folder.has(SWEEP_DONE_FILE):
            return None
        return Counter(json.loads(self.folder.read_text(SWEEP_DONE_FILE))["statuses"])


def open_saved_sweep(
    name: str, storage: str | None, purpose: str, unrecorded_parent: bool = False
) -> SavedSweep:
    """The sweep `name` in `storage` (default: DEFAULT_STORAGE); ConfigError naming the sweeps
    that are there when it is not. `purpose` ("resume", "sync") words the error. A sweep whose
    parent run was never recorded is opened only with `unrecorded_parent` (resume)."""
    folder = SweepFolder(absolute_storage(storage or DEFAULT_STORAGE), name)
    if not (folder.is_sweep() and folder.has(SWEEP_SPEC_FILE)):
        known = folder.sibling_sweeps()
        raise ConfigError(
            f"no sweep {name!r} to {purpose} in {folder.storage} (looked for {folder}).\n"
            f"Sweeps there: {', '.join(known) or 'none'}; pass --storage if it lives elsewhere."
        )
    source = f"{folder}/{SWEEP_SPEC_FILE}"
    spec = parse_spec(parse_yaml(folder.read_text(SWEEP_SPEC_FILE), source), source=source)
    try:
        if folder.has(SWEEP_META_FILE):
            return SavedSweep(folder, spec, read_parent(folder))
        start = read_start(folder)
    except ValueError as err:
        raise ConfigError(
            f"sweep {name!r}: its folder's records are damaged ({err}); start it "
            "over with `selab run SPEC --overwrite`"
        ) from None
    if not unrecorded_parent:
        raise ConfigError(
            f"sweep {name!r} stopped before it recorded its MLflow parent run: there is nothing "
            f"to {purpose} yet. Continue it with `selab resume {name} --storage "
            f"{shell_arg(folder.storage)}` (it takes over that run if it was created)"
        )
    return SavedSweep(folder, spec, None, start)


def read_parent(folder: SweepFolder) -> ParentRun:
    """The MLflow parent run a sweep's folder names (OSError or ValueError if it names none)."""
    meta = _read_json(folder, SWEEP_META_FILE, ("tracking_uri", "experiment_id", "run_id"))
    return ParentRun(meta["tracking_uri"], meta["experiment_id"], meta["run_id"])


def read_start(folder: SweepFolder) -> SweepStart:
    """The start a sweep's folder records (OSError or ValueError if none)."""
    start = _read_json(
        folder, SWEEP_START_FILE, ("tracking_uri", "experiment", "since_ms", "spec_yaml")
    )
    return SweepStart(
        start["tracking_uri"], start["experiment"], int(start["since_ms"]), start["spec_yaml"]
    )


def _read_json(folder: SweepFolder, name: str, keys: tuple[str, ...]) -> dict:
    """The JSON object in `name`, with every one of `keys` (ValueError otherwise)."""
    data = json.loads(folder.read_text(name))
    missing = [key for key in keys if not isinstance(data, dict) or key not in data]
    if missing:
        raise ValueError(f"{name} lacks {', '.join(missing)}")
    return data


def save_start(
    folder: SweepFolder, spec: SweepSpec, spec_yaml: str, tracking_uri: str, experiment: str
) -> SweepStart:
    """Make the folder a sweep before its parent run exists: the spec as the trials see it,
    then the start (the spec first: a folder with a start always has its spec)."""
    start = SweepStart(tracking_uri, experiment, int(time.time() * 1000), spec_yaml)
    folder.write_text(SWEEP_SPEC_FILE, spec.to_yaml())
    folder.write_text(SWEEP_START_FILE, json.dumps(asdict(start), indent=2))
    return start


def record_parent(folder: SweepFolder, parent: ParentRun) -> None:
    """The sweep's MLflow parent run, written as soon as it exists."""
    folder.write_text(SWEEP_META_FILE, json.dumps(asdict(parent), indent=2))


def forget_start(folder: SweepFolder) -> None:
    """Remove what `save_start` wrote (a start that failed before its parent was recorded)."""
    for name in (SWEEP_START_FILE, SWEEP_SPEC_FILE):
        with contextlib.suppress(OSError, FileNotFoundError):
            folder.delete(name)


def mark_done(folder: SweepFolder, statuses: Counter) -> None:
    """Every trial ended as the spec allows: `selab resume` then has nothing to do."""
    with contextlib.suppress(OSError):  # storage unwritable: resume asks Ray's state instead
        folder.write_text(SWEEP_DONE_FILE, json.dumps({"statuses": dict(statuses)}))
