"""Run or resume a sweep: lock it, check everything, open the MLflow parent run, hand the trials
to Tune.

The start, in this order, so that a driver killed at any moment leaves something `selab resume`
or `selab run --overwrite` accepts (runners.sweep.kill_points names the moments):
1. the sweep's lock (a second driver is refused at once, naming the first);
2. every check (runners.sweep.preflight), which creates nothing; a refusal takes back the lock
   file and the folders taking it made;
3. the folder becomes a sweep: the spec and its start (runners.storage.saved_sweep);
4. the MLflow parent run is created and recorded in the folder at once (a parent created but
   not recorded is found again by runners.sweep.parent_run: resume adopts it, --overwrite
   closes it);
5. Ray, and the trials.
The sweep's Ray folder (<storage>/<name>) then keeps the spec and the MLflow parent run, which is
all `selab resume NAME` needs. The parent run is never left RUNNING when the driver stops,
unless the process is killed.

Each trial is resolved (its label, baseline flag, overrides and MLflow params) once, by the
driver's journal callback when the trial starts (runners.tracking.journal_logger); the MLflow
writer and the failure lines printed here read that from the journal. Preflight validates every
point before anything starts, and each trial resolves its own settings inside its process.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runners import compat
from runners.spec.points import TrialRecord, decode_point, make_point
from runners.spec.sweep import SweepSpec
from runners.storage.paths import TUNER_FILE, SweepFolder, with_absolute_paths
from runners.storage.saved_sweep import SavedSweep, mark_done, open_saved_sweep
from runners.storage.sweep_lock import SweepLocked
from runners.sweep import kill_points
from runners.sweep.cluster import connect_ray
from runners.sweep.driver import SweepDriver
from runners.sweep.preflight import Checked, preflight
from search_space.errors import ConfigError

if TYPE_CHECKING:
    from runners.tracking.schema import ParentRun

TrialFunction = Callable[..., None]  # train_trial's signature: (config, spec)


@dataclass
class SweepResult:
    name: str
    folder: str  # <storage>/<name>: a local path or a storage URI
    storage: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    statuses: Counter  # selab.status -> number of trials
    complete: bool  # False when the driver stopped before every trial ended
    failed: list[str] = field(default_factory=list)  # "label seed=s: error" per failed trial

    @property
    def exit_code(self) -> int:
        """0 when every trial ended as the spec allows (finished, stopped early, diverged)."""
        return 0 if self.complete and not self.failed else 1


def run_sweep(
    spec: SweepSpec,
    spec_yaml: str | None = None,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage: str | None = None,
    overwrite: bool = False,
    trial_function: TrialFunction | None = None,
) -> SweepResult:
    """Run `spec` as a new sweep. `trial_function` replaces train_trial (tests inject faults)."""
    spec_yaml = spec_yaml or spec.to_yaml()
    folder = SweepFolder(with_absolute_paths(spec, storage).storage, spec.name)
    checks = {
        "address": address,
        "tracking_uri": tracking_uri,
        "storage": storage,
        "overwrite": overwrite,
    }
    with _locked(spec, folder, checks) as driver:
        kill_points.reached("locked")
        checked = preflight(spec, **checks)
        _print_notes(checked)
        spec = checked.spec
        if folder.is_sweep():  # --overwrite, of a selab sweep (checked), after every check
            driver.clear()
        parent = _open_parent(driver, spec, spec_yaml, checked.tracking_uri)
        driver.start(spec, parent)
        with driver.failing_on_error():
            kill_points.reached("ray")
            connect_ray(address)
            tuner = _new_tuner(spec, folder, driver, trial_function)
        return _fit(tuner, spec, SavedSweep(folder, spec, parent), driver)


def _locked(spec: SweepSpec, folder: SweepFolder, checks: dict[str, Any]) -> SweepDriver:
    """The sweep's driver, its lock taken before anything is checked or created. Storage that
    cannot hold the lock (a file in the way, a bucket that does not answer) is reported with
    every other problem the checks find."""
    try:
        return SweepDriver(spec.name, folder)
    except SweepLocked:
        raise
    except ConfigError:
        preflight(spec, **checks)  # raises, naming every problem
        raise


def _open_parent(driver: SweepDriver, spec: SweepSpec, spec_yaml: str, uri: str) -> ParentRun:
    """The folder made a sweep, then its MLflow parent run created and recorded at once."""
    from runners.tracking.schema import experiment_name, open_parent_run

    driver.mark_started(spec, spec_yaml, uri, experiment_name(spec))
    kill_points.reached("folder")
    parent = _mlflow_call(uri, open_parent_run, spec, spec_yaml, uri, driver.folder.location)
    kill_points.reached("parent")
    driver.record(parent)
    return parent


def _print_notes(checked: Checked) -> None:
    """What the checks noticed that is not an error (the identity-path note)."""
    for note in checked.notes:
        print(f"note: {note}", flush=True)


def _new_tuner(
    spec: SweepSpec, folder: SweepFolder, driver: SweepDriver, trial_function: TrialFunction | None
) -> Any:
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from runners.storage.checkpoints import PruneFinishedCheckpoints
    from runners.storage.paths import STATE_SYNC_S
    from runners.storage.remote_checkpoints import PruneStoredCheckpoints
    from runners.sweep import search
    from runners.sweep.progress import progress_reporter

    remote = folder.is_remote
    return tune.Tuner(
        _trainable(spec, trial_function),
        param_space=search.param_space(spec),
        tune_config=tune.TuneConfig(
            search_alg=search.search_algorithm(spec),
            scheduler=search.scheduler(spec),
            # A race (runners.sweep.race) says itself when it is done: no fixed number of trials.
            num_samples=-1 if spec.race else 1 if spec.is_grid else spec.search.num_samples,
            max_concurrent_trials=spec.resources.max_concurrent,
            # Trials share a process when they can: no new Python, torch import or dataset
            # load per trial.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=folder.storage,
            failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
            # Two, so the checkpoint Ray's saved state points at is never the one just deleted;
            # behind a URI, where that state is uploaded now and then, every one until the state
            # there is past it (runners.storage.remote_checkpoints).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if remote else 2),
            sync_config=tune.SyncConfig(sync_period=STATE_SYNC_S) if remote else None,
            # result.json per trial is what Ray's ResultGrid reads; the journal is what MLflow
            # receives, in the background (runners.tracking.mlflow_writer).
            callbacks=[
                *driver.callbacks(),
                JsonLoggerCallback(),
                PruneStoredCheckpoints(folder.location) if remote else PruneFinishedCheckpoints(),
            ],
            progress_reporter=progress_reporter(spec, folder.location),
            verbose=1,
        ),
    )


def resume_sweep(
    name: str,
    *,
    storage: str | None = None,
    address: str | None = None,
    trial_function: TrialFunction | None = None,
) -> SweepResult:
    """Continue a sweep whose driver stopped: finished trials stay as they are (in Ray and in
    MLflow), unfinished ones continue from their last checkpoint in their own MLflow run."""
    saved = open_saved_sweep(name, storage, "resume", unrecorded_parent=True)
    folder = saved.folder
    done = saved.done_statuses()
    if done is not None:
        print(f"sweep {name} has finished: nothing to resume")
        return _result(name, saved, done, complete=True)
    with SweepDriver(name, folder) as driver:
        checked = preflight(
            saved.spec,
            address=address,
            tracking_uri=saved.tracking_uri,
            storage=folder.storage,
            folder_must_be_free=False,
        )
        _print_notes(checked)
        spec = checked.spec
        parent = saved.parent or _adopted_parent(driver, spec, saved)
        driver.start(spec, parent)  # the parent run is RUNNING again
        with driver.failing_on_error():
            connect_ray(address)
            tuner = _restored_tuner(spec, folder, driver, trial_function)
        return _fit(tuner, spec, SavedSweep(folder, spec, parent), driver)


def _adopted_parent(driver: SweepDriver, spec: SweepSpec, saved: SavedSweep) -> ParentRun:
    """The parent run of a sweep whose driver was killed before it recorded one: the one its
    start created, or a new one; recorded now."""
    from runners.sweep.parent_run import open_or_adopt

    parent = _mlflow_call(saved.tracking_uri, open_or_adopt, spec, saved.folder, saved.start)
    driver.record(parent)
    return parent


def _restored_tuner(
    spec: SweepSpec, folder: SweepFolder, driver: SweepDriver, trial_function: TrialFunction | None
) -> Any:
    """Ray's saved sweep, or, when the driver stopped before Ray saved anything (killed while
    Ray started, say), the sweep started afresh in the same MLflow parent run."""
    from ray import tune

    if not folder.has(TUNER_FILE):
        return _new_tuner(spec, folder, driver, trial_function)
    return tune.Tuner.restore(
        folder.location,
        trainable=_trainable(spec, trial_function),
        resume_unfinished=True,
        # Failed trials continue from their last checkpoint: asking to resume is asking for
        # them (their storage was full, say); one that fails again is recorded failed again.
        resume_errored=True,
    )


def _mlflow_call(uri: str, function: Callable[..., Any], *args: Any) -> Any:
    """An MLflow call whose failure is the tracking store's fault, reported as such."""
    from mlflow.exceptions import MlflowException

    try:
        return function(*args)
    except MlflowException as err:
        raise ConfigError(f"tracking.uri (or --tracking-uri): {uri}: {err.message}") from None


def _trainable(spec: SweepSpec, trial_function: TrialFunction | None) -> Any:
    from ray import tune

    if trial_function is None:
        from runners.trial.trainable import train_trial

        trial_function = train_trial
    resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(trial_function, spec=spec), resources)


def _fit(tuner: Any, spec: SweepSpec, sweep: SavedSweep, driver: SweepDriver) -> SweepResult:
    _tune_environment()
    with driver.failing_on_error():
        grid = tuner.fit()
        statuses, failed = _tally(grid, spec, driver.started_trials(spec))
        complete = grid.num_errors + grid.num_terminated == len(grid)
    # FAILED when a trial failed, or when the driver stopped (Ctrl-C) before every trial
    # ended: `selab resume` continues it.
    ok = complete and not failed
    driver.finish("FINISHED" if ok else "FAILED")
    if ok:
        mark_done(sweep.folder, statuses)
    return _result(spec.name, sweep, statuses, complete, failed)


def _tally(
    grid: Any, spec: SweepSpec, started: dict[str, TrialRecord]
) -> tuple[Counter, list[str]]:
    """(selab.status -> number of trials, "label seed=s: error" per failed trial)."""
    from runners.spec.outcome import outcome

    statuses: Counter = Counter()
    failed = []
    # Ray's trial status decides, not the error object: a trial whose error Ray could not
    # write (storage turned read-only) has none, and is failed all the same.
    for trial, result in zip(compat.result_grid_trials(grid), grid, strict=True):
        if trial.status != "ERROR":
            statuses[outcome(result.metrics)] += 1
            continue
        statuses["failed"] += 1
        record = started.get(trial.trial_id)
        name = record.run_name if record else _unstarted_name(spec, result.config)
        failed.append(f"{name}: {_error_text(result.error)}")
    return statuses, failed


def _unstarted_name(spec: SweepSpec, config: dict[str, Any] | None) -> str:
    """The name of a trial that failed before it started (no trial_start in the journal: Ray
    could not place it), from its Tune config."""
    config = config or {}
    point = make_point(spec, decode_point(spec, config.get("point", {})))
    return f"{point.label} seed={config.get('seed', '?')}"


def _result(
    name: str, sweep: SavedSweep, statuses: Counter, complete: bool, failed: list[str] | None = None
) -> SweepResult:
    parent = sweep.parent
    return SweepResult(
        name=name,
        folder=sweep.folder.location,
        storage=sweep.folder.storage,
        tracking_uri=parent.tracking_uri,
        experiment_id=parent.experiment_id,
        parent_run_id=parent.run_id,
        statuses=statuses,
        complete=complete,
        failed=sorted(failed or []),
    )


def _error_text(error: BaseException | None) -> str:
    """The first line of the exception the trial raised (not Ray's wrapper around it)."""
    if error is None:
        return "error not recorded (Ray could not write it: is the storage folder writable?)"
    cause = getattr(error, "cause", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".strip()


def _tune_environment() -> None:
    """Ray Tune settings for a sweep driver; Tune reads them when `fit` starts."""
    # The classic table reporter (with our columns) instead of the newer per-trial log lines.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # No per-trial CSV and TensorBoard files (the JSON one is passed explicitly).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Save Ray's experiment state (small for a sweep) at least every second rather than every
    # 10 s or more, so a killed driver loses little: `selab resume` reruns no trial that
    # finished more than about a second before the kill. One that finished inside that window
    # is trained again (Ray's saved state still has it running); its MLflow run is reopened,
    # already logged epochs are not logged again, and it is closed again when done.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
