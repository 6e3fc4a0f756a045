"""Bring a sweep's MLflow runs up to date from its journal, outside any driver (`selab sync`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runners.storage.local_state import local_state_dir
from runners.storage.paths import shell_arg
from runners.storage.saved_sweep import open_saved_sweep
from runners.storage.sweep_lock import SweepLock
from runners.tracking.journal import JOURNAL_FILE, Journal, read_events
from runners.tracking.journal_mirror import JournalMirror
from runners.tracking.mlflow_writer import MlflowWriter


@dataclass
class SyncReport:
    unsent: int
    message: str


def sync_sweep(name: str, *, storage: str | None = None) -> SyncReport:
    """Send what the journal holds and MLflow lacks; close the parent run of a sweep whose
    driver is gone (FAILED: `selab resume` continues it)."""
    saved = open_saved_sweep(name, storage, "sync")
    folder, spec, parent = saved.folder, saved.spec, saved.parent
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
        return SyncReport(
            unsent,
            f"sweep {name}: MLflow at {parent.tracking_uri} does not "
            f"answer; {unsent} journal events are still to send: run "
            f"`selab sync {name} --storage {shell_arg(folder.storage)}` again later",
        )
    return SyncReport(
        0, f"sweep {name}: MLflow is up to date ({parent.tracking_uri}, parent run {parent.run_id})"
    )


def last_sweep_status(state_dir: Path) -> str | None:
    """The sweep status the journal last recorded (None: none recorded)."""
    status = None
    for event, _ in read_events(state_dir / JOURNAL_FILE):
        if event.get("kind") == "sweep":
            status = event["status"]
    return status
