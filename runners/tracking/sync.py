"""Bring a sweep's MLflow runs up to date from its journal, outside any driver (`selab sync`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from runners.journal import JOURNAL_FILE, Journal, local_state_dir, read_events
from runners.journal_mirror import JournalMirror
from runners.paths import (
    SWEEP_META_FILE,
    SWEEP_SPEC_FILE,
    SweepFolder,
    absolute_storage,
    shell_arg,
)
from runners.sweep_lock import SweepLock
from search_space.errors import ConfigError

DEFAULT_STORAGE = "./selab_runs"


@dataclass
class SyncReport:
    unsent: int
    message: str


def sync_sweep(name: str, *, storage: str | None = None) -> SyncReport:
    """Send what the journal holds and MLflow lacks; close the parent run of a sweep whose
    driver is gone (FAILED: `selab resume` continues it)."""
    from runners.mlflow_writer import MlflowWriter
    from runners.spec import parse_spec
    from runners.tracking import ParentRun

    folder = SweepFolder(absolute_storage(storage or DEFAULT_STORAGE), name)
    if not (folder.has(SWEEP_META_FILE) and folder.has(SWEEP_SPEC_FILE)):
        known = folder.sibling_sweeps()
        raise ConfigError(
            f"no sweep {name!r} in {folder.storage} (looked for {folder}).\n"
            f"Sweeps there: {', '.join(known) or 'none'}; pass --storage if it lives elsewhere."
        )
    spec = parse_spec(yaml.safe_load(folder.read_text(SWEEP_SPEC_FILE)),
                      source=f"{folder}/{SWEEP_SPEC_FILE}")
    parent = ParentRun(**json.loads(folder.read_text(SWEEP_META_FILE)))
    state_dir = local_state_dir(folder.location)
    mirror = JournalMirror.of(folder.location, state_dir)  # storage behind a URI
    # A running driver sends its own results; a second sender could open duplicate runs.
    with SweepLock(state_dir, name, folder.location):
        mirror.pull()
        if last_sweep_status(state_dir) == "RUNNING":
            # The lock was free, so the driver that set RUNNING is gone.
            Journal.of(state_dir).append("sweep", status="FAILED")
        unsent = MlflowWriter(spec, parent, state_dir).send()
        mirror.push_quietly()
    if unsent:
        return SyncReport(unsent, f"sweep {name}: MLflow at {parent.tracking_uri} does not "
                          f"answer; {unsent} journal events are still to send: run "
                          f"`selab sync {name} --storage {shell_arg(folder.storage)}` again later")
    return SyncReport(0, f"sweep {name}: MLflow is up to date ({parent.tracking_uri}, "
                      f"parent run {parent.run_id})")


def last_sweep_status(state_dir) -> str | None:
    """The sweep status the journal last recorded (None: none recorded)."""
    status = None
    for event, _ in read_events(state_dir / JOURNAL_FILE):
        if event.get("kind") == "sweep":
            status = event["status"]
    return status
