"""The sweep's journal, mirrored into storage behind a URI, so any machine can resume or sync.

The journal is appended on the driver's machine (runners.tracking.journal: local and fast; an object
store cannot append). For a sweep stored behind a URI (s3://...), its new bytes are copied to
the sweep's folder as parts `selab_journal/<offset>.jsonl`, each one the journal's bytes from
that offset on; every COMPACT_EVERY parts, the whole journal is written again as part 0 and
the others removed, so reading it back takes few requests. How far MLflow has been sent
(`selab_journal.sent`) is copied alongside.

The copy is made by the Tune callback each time Ray saves its sweep state, before Ray uploads
it (see JournalLogger.get_state), so the state in storage does not run ahead of the journal
there (except while an upload of Ray's that began earlier is still under way). `pull` (when a
driver or `selab sync` starts) brings the storage's journal to this machine: the storage's copy
wins unless the local one holds it all and more (this machine's driver was killed before its
last copy), which is then copied up.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

from runners.storage.paths import SweepFolder, is_uri
from runners.tracking.journal import JOURNAL_FILE, SENT_FILE

PARTS_FOLDER = "selab_journal"
COMPACT_EVERY = 50

_mirrors: dict[tuple[str, str], JournalMirror] = {}
_mirrors_lock = threading.Lock()


class JournalMirror:
    """Copies `<state_dir>/selab_journal.jsonl` to and from the sweep's remote folder; does
    nothing for a local (or shared) storage folder, where the journal already lives."""

    def __init__(self, location: str, state_dir: str | os.PathLike) -> None:
        self.folder = SweepFolder.at(location)
        self.state_dir = Path(state_dir)
        self.active = is_uri(location)
        self._pushed: int | None = None  # bytes of the local journal the storage holds
        self._parts = 0
        self._sent_pushed: bytes | None = None
        self._is_sweep = False  # the sweep's metadata is in storage (nothing is copied before)
        self._warned = False
        self._lock = threading.Lock()

    @classmethod
    def of(cls, location: str, state_dir: str | os.PathLike) -> JournalMirror:
        """One mirror per sweep and process: the driver's and its Tune callback's."""
        key = (location, str(state_dir))
        with _mirrors_lock:
            if key not in _mirrors:
                _mirrors[key] = cls(location, state_dir)
            return _mirrors[key]

    @property
    def local(self) -> Path:
        return self.state_dir / JOURNAL_FILE

    def pull(self) -> None:
        """Make the local journal the storage's (see the module's docstring)."""
        if not self.active:
            return
        with self._lock:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._is_sweep = self.folder.is_sweep()
            if not self._is_sweep:
                # No such sweep in storage: whatever this machine kept is of an earlier one.
                self._replace_local(b"", None)
                return
            remote, parts = self._read_remote()
            local = self.local.read_bytes() if self.local.is_file() else b""
            self._parts = parts
            if local.startswith(remote):
                self._pushed = len(remote)
                return  # the local one holds it all: what is more goes up with the next push
            if not remote.startswith(local):
                print(
                    f"selab: the journal on this machine ({self.local}) differs from the "
                    f"one in {self.folder}; using the one in storage (this machine's is "
                    f"kept as {self.local.name}.local)",
                    file=sys.stderr,
                    flush=True,
                )
                self.local.replace(self.local.with_name(f"{JOURNAL_FILE}.local"))
            self._replace_local(remote, self._remote_sent(len(remote)))

    def push(self) -> None:
        """Copy the journal's new complete lines and the sent offset to storage."""
        if not self.active:
            return
        if self._pushed is None:
            self.pull()
        with self._lock:
            # Before the sweep's metadata is written (or when its start failed), a copy would
            # leave a folder in storage that is no sweep and that blocks the next `selab run`.
            self._is_sweep = self._is_sweep or self.folder.is_sweep()
            if not self._is_sweep:
                return
            self._push_journal()
            self._push_sent()

    def push_quietly(self) -> None:
        """push, reporting a failure once instead of raising (the sweep goes on; the next
        push copies what this one could not)."""
        try:
            self.push()
        except Exception as err:  # noqa: BLE001 - the store's errors are many kinds
            if not self._warned:
                self._warned = True
                print(
                    f"selab: cannot copy the journal to {self.folder} ({err}); it is kept "
                    f"in {self.local} and copied when the storage answers",
                    file=sys.stderr,
                    flush=True,
                )

    def reset(self) -> None:
        """Forget what storage held (the sweep's folder was removed to start over)."""
        with self._lock:
            self._pushed, self._parts, self._sent_pushed = 0, 0, None
            self._is_sweep = False

    # --- the parts

    def _push_journal(self) -> None:
        try:
            with open(self.local, "rb") as journal:
                journal.seek(self._pushed)
                new = journal.read()
        except FileNotFoundError:
            return
        new = new[: new.rfind(b"\n") + 1]  # whole lines only: the last may be half written
        if not new:
            return
        if self._parts >= COMPACT_EVERY:
            whole = self.local.read_bytes()[: self._pushed + len(new)]
            self.folder.write_bytes(_part(0), whole)
            for name in self.folder.files(PARTS_FOLDER):
                if name != _part(0).rsplit("/", 1)[1]:
                    self.folder.delete(f"{PARTS_FOLDER}/{name}")
            self._parts = 1
        else:
            self.folder.write_bytes(_part(self._pushed), new)
            self._parts += 1
        self._pushed += len(new)

    def _read_remote(self) -> tuple[bytes, int]:
        """The journal the parts in storage hold, and how many parts there are."""
        content = b""
        names = self.folder.files(PARTS_FOLDER)
        for name in names:
            try:
                start = int(name.split(".", 1)[0])
            except ValueError:
                continue
            if start > len(content):
                break  # a gap (a part lost in a race): what follows cannot be placed
            data = self.folder.read_bytes(f"{PARTS_FOLDER}/{name}")
            if start + len(data) > len(content):
                content = content[:start] + data
        return content, len(names)

    # --- the sent offset

    def _push_sent(self) -> None:
        try:
            sent = (self.state_dir / SENT_FILE).read_bytes()
        except FileNotFoundError:
            return
        if sent != self._sent_pushed:
            self.folder.write_bytes(SENT_FILE, sent)
            self._sent_pushed = sent

    def _remote_sent(self, journal_size: int) -> int | None:
        try:
            offset = int(json.loads(self.folder.read_text(SENT_FILE))["offset"])
        except (FileNotFoundError, ValueError, KeyError):
            return None
        return min(offset, journal_size)  # past the journal's end: all of it was sent

    def _replace_local(self, content: bytes, sent: int | None) -> None:
        partial = self.local.with_suffix(".tmp")
        partial.write_bytes(content)
        partial.replace(self.local)
        sent_file = self.state_dir / SENT_FILE
        if sent is None:
            sent_file.unlink(missing_ok=True)
        else:
            sent_file.write_text(json.dumps({"offset": sent}))
        self._pushed = len(content)
        self._sent_pushed = None


def _part(offset: int) -> str:
    return f"{PARTS_FOLDER}/{offset:016d}.jsonl"
