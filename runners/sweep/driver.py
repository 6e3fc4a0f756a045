"""What one sweep driver holds while it runs: the sweep's lock, its journal and MLflow writer.

`selab run` and `selab resume` open a `SweepDriver` right after their checks. It refuses a
second driver of the same sweep at once, hands Tune the callback that writes the journal,
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
from runners.storage.paths import SWEEP_META_FILE, SweepFolder, shell_arg
from runners.storage.saved_sweep import read_parent
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
        return {event["trial_id"]: TrialRecord.from_event(spec, event)
                for event in self.journal.events() if event.get("kind") == "trial_start"}

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
            print(f"selab: MLflow did not answer within {FLUSH_S:g} s; {unsent} results are "
                  f"kept in {self.state_dir / JOURNAL_FILE}. Send them when it is back with: "
                  f"selab sync {self.name} --storage {shell_arg(self.folder.storage)}",
                  file=sys.stderr, flush=True)
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
        unregister_driver(self.name)
        self.lock.release()
        local = self.state_dir == Path(self.folder.location)
        if local and not (self.state_dir / SWEEP_META_FILE).exists():
            # Stopped before the sweep existed (its parent run could not be opened): leave
            # no folder behind that would block the next `selab run`.
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> SweepDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- starting over (--overwrite)

    def clear(self) -> None:
        """Remove the sweep's earlier state (not the lock this driver holds), and close the
        earlier parent run so that it is not left RUNNING with no driver."""
        self._close_earlier_parent()
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
            print(f"selab: could not close the earlier parent run {earlier.run_id}: {err}",
                  file=sys.stderr, flush=True)

    @property
    def journal(self) -> Journal:
        return Journal.of(self.state_dir)
