"""A sweep as its folder keeps it: the one way to save and open what `resume` and `sync` need.

`selab run` writes two files into the sweep's folder (<storage>/<name>) once its checks have
passed: the spec as the trials see it (`selab_spec.yaml`, absolute paths) and the MLflow parent
run (`selab_sweep.json`). A sweep whose every trial ended as the spec allows also gets a done
marker (`selab_done.json`, the trials' statuses), so that `selab resume` has nothing to do.
Everything that reads a saved sweep (resume, sync, the driver closing an earlier parent run on
--overwrite) opens it here.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import asdict, dataclass

import yaml

from runners.spec.defaults import DEFAULT_STORAGE
from runners.spec.load import parse_spec
from runners.spec.sweep import SweepSpec
from runners.storage.paths import (
    SWEEP_DONE_FILE,
    SWEEP_META_FILE,
    SWEEP_SPEC_FILE,
    SweepFolder,
    absolute_storage,
)
from runners.tracking.schema import ParentRun
from search_space.errors import ConfigError


@dataclass
class SavedSweep:
    folder: SweepFolder
    spec: SweepSpec
    parent: ParentRun

    def done_statuses(self) -> Counter | None:
        """selab.status -> number of trials, when the sweep has ended (None while it has not)."""
        if not self.folder.has(SWEEP_DONE_FILE):
            return None
        return Counter(json.loads(self.folder.read_text(SWEEP_DONE_FILE))["statuses"])


def open_saved_sweep(name: str, storage: str | None, purpose: str) -> SavedSweep:
    """The sweep `name` in `storage` (default: DEFAULT_STORAGE); ConfigError naming the sweeps
    that are there when it is not. `purpose` ("resume", "sync") words the error."""
    folder = SweepFolder(absolute_storage(storage or DEFAULT_STORAGE), name)
    if not (folder.has(SWEEP_META_FILE) and folder.has(SWEEP_SPEC_FILE)):
        known = folder.sibling_sweeps()
        raise ConfigError(
            f"no sweep {name!r} to {purpose} in {folder.storage} (looked for {folder}).\n"
            f"Sweeps there: {', '.join(known) or 'none'}; pass --storage if it lives elsewhere."
        )
    spec = parse_spec(yaml.safe_load(folder.read_text(SWEEP_SPEC_FILE)),
                      source=f"{folder}/{SWEEP_SPEC_FILE}")
    return SavedSweep(folder, spec, read_parent(folder))


def read_parent(folder: SweepFolder) -> ParentRun:
    """The MLflow parent run a sweep's folder names (OSError or ValueError if it names none)."""
    return ParentRun(**json.loads(folder.read_text(SWEEP_META_FILE)))


def save_sweep(folder: SweepFolder, spec: SweepSpec, parent: ParentRun) -> None:
    """Write what `open_saved_sweep` reads: the spec as the trials see it, the parent run."""
    folder.write_text(SWEEP_SPEC_FILE, spec.to_yaml())
    folder.write_text(SWEEP_META_FILE, json.dumps(asdict(parent), indent=2))


def mark_done(folder: SweepFolder, statuses: Counter) -> None:
    """Every trial ended as the spec allows: `selab resume` then has nothing to do."""
    with contextlib.suppress(OSError):  # storage unwritable: resume asks Ray's state instead
        folder.write_text(SWEEP_DONE_FILE, json.dumps({"statuses": dict(statuses)}))
