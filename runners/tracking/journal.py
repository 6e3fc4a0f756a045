"""The sweep's journal: every trial event, appended to a local file before MLflow hears of it.

The driver's Tune callback (`JournalLogger`) appends one JSON line per event to
`<sweep folder>/selab_journal.jsonl`: a trial started (its point and seed, and the trial as the
driver resolved it: label, baseline flag, overrides, MLflow params), an epoch's result, a trial
ended (status, error, traceback), which trials Ray knows after a restart, and the sweep's own
status. Appending a line is local and fast, so the tracking server's health never holds up a
trial; `runners.tracking.mlflow_writer` sends the lines to MLflow in the background and
`selab sync` sends whatever is left at any later time.

If the file cannot be written (storage turned read-only), events are kept in memory for this
process's writer and the driver says so once.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

JOURNAL_FILE = "selab_journal.jsonl"
# How far MLflow has been sent: a byte offset into the journal (runners.tracking.mlflow_writer).
SENT_FILE = "selab_journal.sent"

Event = dict[str, Any]

# One journal object per file and process, so that the callback and the writer of one driver
# share the events that could not be written to the file.
_journals: dict[str, Journal] = {}
_journals_lock = threading.Lock()


def now_ms() -> int:
    return int(time.time() * 1000)


class Journal:
    """Appends events to the journal file; keeps the ones it could not write in `unwritten`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unwritten: list[Event] = []
        self._lock = threading.Lock()

    @classmethod
    def of(cls, folder: str | os.PathLike) -> Journal:
        path = Path(folder) / JOURNAL_FILE
        with _journals_lock:
            if str(path) not in _journals:
                _journals[str(path)] = cls(path)
            return _journals[str(path)]

    def append(self, kind: str, **fields: Any) -> Event:
        event = {"kind": kind, "time": now_ms(), **fields}
        line = json.dumps(event, allow_nan=True) + "\n"
        with self._lock:
            if not self.unwritten:  # once a line is missing, later ones follow it in memory
                try:
                    with open(self.path, "a") as journal:
                        journal.write(line)
                    return event
                except OSError as err:
                    print(
                        f"selab: cannot write {self.path} ({err.strerror or err}); results "
                        "are kept in memory and sent to MLflow from there",
                        file=sys.stderr,
                        flush=True,
                    )
            self.unwritten.append(event)
        return event

    def unwritten_since(self, index: int) -> list[Event]:
        with self._lock:
            return list(self.unwritten[index:])

    def events(self) -> list[Event]:
        """Every event so far: the file's, then those kept in memory."""
        return [event for event, _ in read_events(self.path)] + self.unwritten_since(0)


def read_events(path: Path, offset: int = 0) -> list[tuple[Event, int]]:
    """The complete lines of the journal from byte `offset` on, each with the offset just
    after it. A line cut short by a kill (no newline yet) is left for the next read."""
    try:
        with open(path, "rb") as journal:
            journal.seek(offset)
            data = journal.read()
    except FileNotFoundError:
        return []
    events = []
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        offset += len(line)
        try:
            events.append((json.loads(line), offset))
        except ValueError:
            continue  # a torn line from a crash in the middle of a write
    return events
