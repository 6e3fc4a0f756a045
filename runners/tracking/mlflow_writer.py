"""Sends the sweep's journal to MLflow, in the background, so that MLflow never gates training.

`MlflowWriter` applies journal events (runners.tracking.journal) in order: it creates or reopens
each trial's nested run (found by its `selab.trial_id` tag, so a resumed sweep continues the
same runs) with the name, tags and params its trial_start event carries (the trial as the
driver resolved it when it started; resolved here only for a journal an earlier selab wrote),
logs each epoch once (a cursor per run: the last epoch MLflow already has), closes runs,
deletes the runs of trials Ray forgot (a driver killed before Ray saved them) and sets the
parent run's status. Every event is idempotent against what MLflow already holds, so a journal
can be sent again after any crash (`selab sync`). A call that got no answer may have been applied
all the same, so after one the writer reads the runs again; a trial's run made twice (MLflow's
client retries a create whose reply was lost) is made one.

While the tracking server does not answer, the writer backs off and retries; the driver prints
one line when it goes away and one when it is back. What has been sent is remembered in
`selab_journal.sent` (a byte offset into the journal), so a later driver or `selab sync` starts
where this one stopped.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.spec.points import TrialRecord
from runners.tracking.journal import JOURNAL_FILE, SENT_FILE, Event, Journal, read_events

# MLflow's HTTP client retries for minutes by default; the writer has its own patient loop, so
# each call gives up in seconds and a server that went away is noticed at once.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# MLflow error codes that mean "try again later" (the server or its database is away).
TRANSIENT_CODES = {
    "INTERNAL_ERROR",
    "TEMPORARILY_UNAVAILABLE",
    "REQUEST_LIMIT_EXCEEDED",
    "DEADLINE_EXCEEDED",
    "ABORTED",
    "UNAVAILABLE",
}
POLL_S = 0.2
MAX_BACKOFF_S = 5.0


def bound_http_retries() -> None:
    """Bounded MLflow HTTP retries for this process (explicit settings win)."""
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


class Unreachable(Exception):
    """The tracking store did not answer; the event stays unsent."""


@dataclass
class _TrialState:
    run_id: str
    tags: dict[str, str]
    has_cost: bool
    start_time: int  # ms; runs of earlier drivers started before this driver's `live` event
    has_params: bool = False  # False: the run was created but its parameters never arrived
    last_step: int | None = None  # loaded from MLflow when first needed
    end_steps: set[int] | None = None


@dataclass
class _Progress:
    offset: int = 0  # bytes of the journal file already sent
    memory: int = 0  # events already sent from the journal's in-memory part
    deleted: set[str] = field(default_factory=set)


class MlflowWriter:
    """Applies `<state_dir>/selab_journal.jsonl` to the sweep's MLflow runs.

    `send()` sends what is there now (one pass: `selab sync`); `start()` / `close()` run it in
    a background thread for a driver.
    """

    def __init__(
        self, spec: Any, parent: Any, state_dir: str | os.PathLike, *, echo: bool = True
    ) -> None:
        self.spec = spec
        self.parent = parent
        self.state_dir = Path(state_dir)
        self.journal = Journal.of(self.state_dir)
        self.echo = echo
        self._client: Any = None
        self._trials: dict[str, _TrialState] | None = None
        self._saved = self._saved_offset()
        self._progress = _Progress(offset=self._saved)
        self._away_since: float | None = None
        self._missed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- driving it

    def start(self) -> MlflowWriter:
        bound_http_retries()
        self._thread = threading.Thread(target=self._loop, name="selab-mlflow", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float = 30.0) -> int:
        """Stop after sending what is there (waiting at most `timeout_s` for an absent server);
        returns the number of events left unsent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._thread = None  # stuck in a call to a dead server: leave it (daemon)
        return self.pending()

    def send(self) -> int:
        """Send every event the journal holds now; returns how many are left unsent (0 unless
        the tracking store does not answer)."""
        bound_http_retries()
        try:
            self._send_available()
        except Unreachable as err:
            self._say_away(err)
        return self.pending()

    def pending(self) -> int:
        events = read_events(self.state_dir / JOURNAL_FILE, self._progress.offset)
        return len(events) + len(self.journal.unwritten_since(self._progress.memory))

    def _loop(self) -> None:
        delay = POLL_S
        while True:
            stopping = self._stop.is_set()
            try:
                self._send_available()
                delay = POLL_S
                if stopping:
                    return
            except Unreachable as err:
                self._say_away(err)
                delay = min(MAX_BACKOFF_S, delay * 2)
            # Wake early when asked to stop, except while backing off from an absent server.
            if self._stop.wait(delay) and self._away_since is None:
                delay = 0.0

    # --- sending

    def _send_available(self) -> None:
        try:
            for event, end in read_events(self.state_dir / JOURNAL_FILE, self._progress.offset):
                self._apply(event)
                self._progress.offset = end
        finally:
            self._save_offset()
        for event in self.journal.unwritten_since(self._progress.memory):
            self._apply(event)
            self._progress.memory += 1
        self._say_back()

    def _apply(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.get('kind')}", None)
        if handler is None:
            return
        try:
            handler(event)
        except Unreachable:
            raise
        except Exception as err:  # noqa: BLE001 - classified below
            if _is_transient(err):
                # A call that got no answer may have been applied all the same (the server
                # died before it replied): what MLflow holds is read again before going on.
                self._trials = None
                raise Unreachable(_short(err)) from err
            # A bad request stays bad: say so and go on rather than block every later event.
            print(
                f"selab: MLflow refused a {event.get('kind')} event of trial "
                f"{event.get('trial_id', '-')}: {_short(err)}",
                file=sys.stderr,
                flush=True,
            )
        self._missed += self._away_since is not None

    # --- events

    def _on_sweep(self, event: Event) -> None:
        status = event["status"]
        if status == "RUNNING":
            self.client.update_run(self.parent.run_id, status="RUNNING")
        else:
            self.client.set_terminated(self.parent.run_id, status=status, end_time=event["time"])

    def _on_trial_start(self, event: Event) -> None:
        trial_id = event["trial_id"]
        # Journal order puts every start of an orphan before the `live` event that deleted its
        # run; a start after it is Ray giving the id again, to the trial it never saved.
        self._progress.deleted.discard(trial_id)
        trial = self.trials.get(trial_id)
        record = TrialRecord.from_event(self.spec, event)
        if trial is None:
            trial = self.trials[trial_id] = self._create_run(event, record)
        else:  # a resumed or retried trial (or a start cut short): the same run, running
            self.client.update_run(trial.run_id, status="RUNNING")
            self.client.set_tag(trial.run_id, "selab.status", "running")
            trial.tags["selab.status"] = "running"
        if not trial.has_params:  # new, or its creation was cut short by an outage
            self._log_params(trial, record)

    def _on_result(self, event: Event) -> None:
        from mlflow.entities import Metric

        trial = self._trial(event)
        step = int(event["step"])
        if trial is None or step <= self._last_step(trial):
            return  # unknown, or already in MLflow
        stamp = event["time"]
        metrics = [Metric(k, float(v), stamp, step) for k, v in event["metrics"].items()]
        if not trial.has_cost and event.get("cost"):
            metrics += [Metric(k, float(v), stamp, 0) for k, v in event["cost"].items()]
        self.client.log_batch(trial.run_id, metrics=metrics)
        trial.has_cost = trial.has_cost or bool(event.get("cost"))
        trial.last_step = step

    def _on_trial_end(self, event: Event) -> None:
        from mlflow.entities import Metric, RunTag

        from runners.storage.models import MODEL_TAG, log_model, stored_model_at
        from runners.tracking.schema import ERROR_ARTIFACT

        trial = self._trial(event)
        if trial is None:
            return
        stamp, epochs = event["time"], int(event.get("epochs_done") or 0)
        metrics = []
        if epochs not in self._end_steps(trial):  # a rerun of a finished trial logs nothing new
            metrics.append(Metric("epochs_done", float(epochs), stamp, epochs))
            if event.get("best_val_acc") is not None and epochs > 0:
                metrics.append(Metric("best_val_acc", float(event["best_val_acc"]), stamp, epochs))
        tags = [RunTag("selab.status", event["status"])]
        if event.get("model"):
            tags.append(RunTag(MODEL_TAG, event["model"]))
            kept = stored_model_at(event["model"]) if self.spec.tracking.models == "all" else None
            if kept is not None:  # a local copy when the storage is behind a URI
                log_model(self.client, trial.run_id, kept)
        if event.get("device"):  # where it trained: "cpu", "cuda:0 <GPU name>"
            tags.append(RunTag("selab.device", event["device"]))
        if event.get("error"):
            tags.append(RunTag("selab.error", event["error"][:5000]))
        self.client.log_batch(trial.run_id, metrics=metrics, tags=tags)
        if not event.get("error") and "selab.error" in trial.tags:
            self.client.delete_tag(trial.run_id, "selab.error")  # an earlier attempt's error
            del trial.tags["selab.error"]
        if event.get("traceback"):
            self.client.log_text(trial.run_id, event["traceback"], ERROR_ARTIFACT)
        self.client.set_terminated(trial.run_id, status=event["mlflow_status"], end_time=stamp)
        self._end_steps(trial).add(epochs)
        trial.tags["selab.status"] = event["status"]
        if event.get("error"):
            trial.tags["selab.error"] = event["error"]

    def _on_live(self, event: Event) -> None:
        """Ray restored these trials: runs of any other trial of an earlier driver are
        orphans (the driver died after the trial started but before Ray saved it, so Ray runs
        that point again as a new trial, under a new id or the same one) and would leave the
        point with two runs."""
        live = set(event["trial_ids"])
        # Only runs started before this event: a journal sent again later (`selab sync`)
        # must not take the runs of this driver's own trials for orphans.
        earlier = {t for t, state in self.trials.items() if state.start_time < event["time"]}
        for trial_id in sorted(earlier - live):
            self.client.delete_run(self.trials.pop(trial_id).run_id)
            self._progress.deleted.add(trial_id)

    # --- MLflow state

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.parent.tracking_uri)
        return self._client

    @property
    def trials(self) -> dict[str, _TrialState]:
        """The parent's trial runs by trial id, read from MLflow once."""
        if self._trials is None:
            self._trials = {}
            for run in self._child_runs():
                trial_id = run.data.tags.get("selab.trial_id")
                if trial_id:
                    self._trials[trial_id] = _TrialState(
                        run.info.run_id,
                        dict(run.data.tags),
                        "flops" in run.data.metrics,
                        run.info.start_time or 0,
                        has_params=bool(run.data.params),
                    )
        return self._trials

    def _child_runs(self) -> list[Any]:
        from runners.tracking.schema import PARENT_RUN_TAG

        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.parent.experiment_id],
                filter_string=f"tags.`{PARENT_RUN_TAG}` = '{self.parent.run_id}'",
                page_token=token,
            )
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def _trial(self, event: Event) -> _TrialState | None:
        if event["trial_id"] in self._progress.deleted:
            return None
        return self.trials.get(event["trial_id"])

    def _last_step(self, trial: _TrialState) -> int:
        if trial.last_step is None:
            history = self.client.get_metric_history(trial.run_id, "val_acc")
            trial.last_step = max((m.step for m in history), default=0)
        return trial.last_step

    def _end_steps(self, trial: _TrialState) -> set[int]:
        if trial.end_steps is None:
            history = self.client.get_metric_history(trial.run_id, "epochs_done")
            trial.end_steps = {m.step for m in history}
        return trial.end_steps

    def _create_run(self, event: Event, record: TrialRecord) -> _TrialState:
        from runners.tracking.knobs import knob_tags
        from runners.tracking.schema import PARENT_RUN_TAG, keep_one_run

        tags = {
            PARENT_RUN_TAG: self.parent.run_id,
            "selab.role": "trial",
            "selab.sweep": self.spec.name,
            "selab.trial_id": event["trial_id"],
            "selab.point": json.dumps(record.overrides),
            "selab.label": record.label,
            "selab.baseline": str(record.baseline).lower(),
            "selab.status": "running",
        }
        # The varied knobs as short tags: columns of the runs view `selab report` saves.
        tags |= knob_tags(self.spec.search.varied_keys, record.overrides, record.params)
        run = self.client.create_run(
            self.parent.experiment_id, tags=tags, run_name=record.run_name, start_time=event["time"]
        )
        same_trial = (
            f"tags.`{PARENT_RUN_TAG}` = '{self.parent.run_id}' "
            f"and tags.`selab.trial_id` = '{event['trial_id']}'"
        )
        run_id = keep_one_run(self.client, self.parent.experiment_id, same_trial, run.info.run_id)
        return _TrialState(
            run_id, tags, has_cost=False, start_time=event["time"], last_step=0, end_steps=set()
        )

    def _log_params(self, trial: _TrialState, record: TrialRecord) -> None:
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in record.params.items()]
        self.client.log_batch(trial.run_id, params=params)
        trial.has_params = True

    # --- progress and messages

    def _saved_offset(self) -> int:
        try:
            return int(json.loads((self.state_dir / SENT_FILE).read_text())["offset"])
        except (OSError, ValueError, KeyError):
            return 0

    def _save_offset(self) -> None:
        if self._progress.offset == self._saved:
            return
        target = self.state_dir / SENT_FILE
        try:
            partial = target.with_suffix(".tmp")
            partial.write_text(json.dumps({"offset": self._progress.offset}))
            partial.replace(target)
            self._saved = self._progress.offset
        except OSError:
            pass  # unwritable storage: the offset stays in memory; resending is idempotent

    def _say_away(self, err: Exception) -> None:
        if self._away_since is None:
            self._away_since = time.monotonic()
            self._missed = 0
            self._print(
                f"MLflow at {self.parent.tracking_uri} does not answer ({err}); "
                f"training goes on, results wait in {self.state_dir / JOURNAL_FILE} "
                "and are sent when it is back"
            )

    def _say_back(self) -> None:
        if self._away_since is not None:
            away = time.monotonic() - self._away_since
            self._away_since = None
            self._print(
                f"MLflow is back after {away:.0f} s; sent the {self._missed} events it missed"
            )

    def _print(self, message: str) -> None:
        if self.echo:
            print(f"selab: {message}", file=sys.stderr, flush=True)


def _is_transient(err: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        return err.error_code in TRANSIENT_CODES
    return isinstance(err, (OSError, ConnectionError, TimeoutError))


def _short(err: BaseException) -> str:
    text = " ".join(str(getattr(err, "message", None) or err).split())
    for needle, reason in (
        ("NewConnectionError", "connection refused"),
        ("Connection refused", "connection refused"),
        ("ReadTimeout", "timed out"),
        ("ConnectTimeout", "timed out"),
    ):
        if needle in text:
            return reason
    return text[:200]
