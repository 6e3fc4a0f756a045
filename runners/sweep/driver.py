"""What one sweep driver holds while it runs: the sweep's lock, its journal and MLflow writer.

`selab run` and `selab resume` open a `SweepDriver` before anything else, their checks
included. It refuses a second driver of the same sweep at once, records the sweep's start and
its parent run in the folder (and takes all of it back if the driver stops before its parent
run was recorded, killing aside), hands Tune the callback that writes the journal,
sends the journal to MLflow in the background, and closes the parent run through the same
writer: FINISHED or FAILED as the sweep ended, FAILED when the driver stops on an exception
(Ctrl-C included), never left RUNNING by a driver that is gone, except by SIGKILL, which
`selab sync` or `selab resume` then settle.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runners.spec.points import TrialRecord
from runners.spec.sweep import SweepSpec
from runners.storage.local_state import local_state_dir, register_driver, unregister_driver
from runners.storage.paths import SWEEP_START_FILE, SweepFolder, shell_arg
from runners.storage.saved_sweep import (
    SweepStart,
    forget_start,
    read_parent,
    read_start,
    record_parent,
    save_start,
)
from runners.storage.sweep_lock import LOCK_FILE, SweepLock
from runners.tracking.journal import JOURNAL_FILE, SENT_FILE, Journal
from runners.tracking.journal_mirror import JournalMirror
from runners.tracking.mlflow_writer import MlflowWriter
from runners.tracking.schema import ParentRun

# How long a driver waits at the end for a tracking server that does not answer, before it
# leaves the rest in the journal for `selab sync`.
FLUSH_S = float(os.environ.get("SELAB_MLFLOW_FLUSH_S", "30"))


class SweepDriver:
    def __init__(self, name: str, folder: SweepFolder) -> None:
        """Takes the sweep's lock (SweepLocked if another driver holds it)."""
        self.name = name
        self.folder = folder
        self.spec: SweepSpec | None = None
        self.state_dir = local_state_dir(folder.location)
        self.lock = SweepLock(self.state_dir, name, folder.location).acquire()
        self.started: SweepStart | None = None  # the start this driver wrote
        self.recorded = False  # whether the sweep's parent run is recorded in its folder
        register_driver(name, str(self.state_dir), folder.location)
        self.writer: MlflowWriter | None = None
        # Storage behind a URI: the journal comes from there (this machine may not have run
        # the sweep so far), and goes back there as it grows.
        self.mirror = JournalMirror.of(folder.location, self.state_dir)
        try:
            self.mirror.pull()
        except BaseException:
            unregister_driver(name)
            self.lock.release()
            raise

    # --- the sweep's life

    def mark_started(
        self, spec: SweepSpec, spec_yaml: str, tracking_uri: str, experiment: str
    ) -> SweepStart:
        """Make the folder a sweep (its spec and start) before its parent run is created."""
        self.started = save_start(self.folder, spec, spec_yaml, tracking_uri, experiment)
        return self.started

    def record(self, parent: ParentRun) -> None:
        """Write the sweep's parent run into its folder, as soon as it exists."""
        record_parent(self.folder, parent)
        self.recorded = True

    def start(self, spec: SweepSpec, parent: ParentRun) -> None:
        """Start sending the journal to `parent`'s runs; mark the sweep running (again)."""
        self.spec = spec
        self.journal.append("sweep", status="RUNNING")
        self.writer = MlflowWriter(spec, parent, self.state_dir).start()

    def callbacks(self) -> list[Any]:
        """Tune's callback that writes the journal (and resolves each trial as it starts)."""
        from runners.tracking.journal_logger import JournalLogger

        return [JournalLogger(self.spec, str(self.state_dir), self.folder.location)]

    def started_trials(self, spec: SweepSpec) -> dict[str, TrialRecord]:
        """Trial id -> the trial as resolved when it (last) started, from the journal."""
        return {
            event["trial_id"]: TrialRecord.from_event(spec, event)
            for event in self.journal.events()
            if event.get("kind") == "trial_start"
        }

    def finish(self, status: str) -> int:
        """Record the sweep's final status and wait (bounded) until MLflow has everything;
        returns the number of journal events left for `selab sync`."""
        self.journal.append("sweep", status=status)
        if self.writer is None:
            return 0
        unsent = self.writer.close(FLUSH_S)
        self.writer = None
        self.mirror.push_quietly()
        if unsent:
            print(
                f"selab: MLflow did not answer within {FLUSH_S:g} s; {unsent} results are "
                f"kept in {self.state_dir / JOURNAL_FILE}. Send them when it is back with: "
                f"selab sync {self.name} --storage {shell_arg(self.folder.storage)}",
                file=sys.stderr,
                flush=True,
            )
        return unsent

    @contextlib.contextmanager
    def failing_on_error(self) -> Iterator[None]:
        """The parent run is marked FAILED (through the writer) if the block raises."""
        try:
            yield
        except BaseException:
            if self.writer is not None:
                self.finish("FAILED")
            raise

    def release(self) -> None:
        if self.writer is not None:  # stopped before finish(): keep what is sent so far
            self.writer.close(0)
        self.mirror.push_quietly()
        if not self.recorded:
            self._take_back()
        unregister_driver(self.name)
        self.lock.release()

    def _take_back(self) -> None:
        """Stopped before its parent run was recorded (a check refused the sweep, or the run
        could not be made): leave nothing that would block the next `selab run`: the start
        this driver wrote (and a parent run it made, closed), the lock file and folders that
        taking the lock made. Done while the lock is held; a sweep that was there stays."""
        if self.started is not None:
            from runners.sweep.parent_run import close_unrecorded

            close_unrecorded(self.started, self.folder.location)
            forget_start(self.folder)
        if self.state_dir == Path(self.folder.location) and not self.folder.is_sweep():
            self.lock.remove_made()

    def __enter__(self) -> SweepDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- starting over (--overwrite)

    def clear(self) -> None:
        """Remove the sweep's earlier state (not the lock this driver holds), and close the
        earlier parent run (recorded, or made by a start that never recorded it) so that it
        is not left RUNNING with no driver."""
        self._close_earlier_parent()
        if self.folder.has(SWEEP_START_FILE):
            from runners.sweep.parent_run import close_unrecorded

            # A start file that cannot be read names no run to close.
            with contextlib.suppress(OSError, ValueError, KeyError):
                close_unrecorded(read_start(self.folder), self.folder.location)
        Journal.of(self.state_dir).unwritten.clear()
        if self.state_dir == Path(self.folder.location):
            for entry in self.state_dir.iterdir():
                if entry.name == LOCK_FILE:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            return
        if self.folder.exists():
            self.folder.remove()
        self.mirror.reset()
        for name in (JOURNAL_FILE, SENT_FILE):
            (self.state_dir / name).unlink(missing_ok=True)

    def _close_earlier_parent(self) -> None:
        try:
            earlier = read_parent(self.folder)
        except (OSError, ValueError, TypeError):
            return
        try:
            from mlflow import MlflowClient

            client = MlflowClient(earlier.tracking_uri)
            if client.get_run(earlier.run_id).info.status == "RUNNING":
                client.set_terminated(earlier.run_id, status="FAILED")
        except Exception as err:  # noqa: BLE001 - best effort: the new sweep goes on
            print(
                f"selab: could not close the earlier parent run {earlier.run_id}: {err}",
                file=sys.stderr,
                flush=True,
            )

    @property
    def journal(self) -> Journal:
        return Journal.of(self.state_dir)
