"""Run or resume a sweep: validate the spec, open the MLflow parent run, hand the trials to Tune.

The sweep's Ray folder (<storage>/<name>) also keeps the spec and the MLflow parent run
(`selab_sweep.json`, `selab_spec.yaml`), which is all `selab resume NAME` needs.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from runners.cluster import connect_ray
from runners.points import SHORT_NAMES, validate
from runners.spec import SweepSpec, parse_spec
from search_space.errors import ConfigError

SWEEP_META_FILE = "selab_sweep.json"
SWEEP_SPEC_FILE = "selab_spec.yaml"
DEFAULT_STORAGE = "./selab_runs"

TrialFunction = Callable[..., None]  # train_trial's signature: (config, spec)


@dataclass
class SweepResult:
    name: str
    folder: Path
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    statuses: Counter  # selab.status -> number of trials
    complete: bool  # False when the driver stopped before every trial ended


def sweep_folder(storage: str | os.PathLike, name: str) -> Path:
    return Path(storage).expanduser().resolve() / name


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
    from runners.tracking import open_parent_run, resolve_tracking_uri

    validate(spec)
    folder = sweep_folder(storage or spec.storage, spec.name)
    if folder.exists():
        if not overwrite:
            raise ConfigError(
                f"sweep {spec.name!r} already has a Ray folder at {folder}.\n"
                f"Continue it with `selab resume {spec.name} --storage {folder.parent}`, or start "
                f"over with `selab run ... --overwrite` (a new MLflow parent run)."
            )
        shutil.rmtree(folder)
    spec_yaml = spec_yaml or spec.to_yaml()
    uri = resolve_tracking_uri(tracking_uri, spec)
    parent = open_parent_run(spec, spec_yaml, uri, str(folder))
    folder.mkdir(parents=True)
    (folder / SWEEP_SPEC_FILE).write_text(spec_yaml)
    (folder / SWEEP_META_FILE).write_text(json.dumps(asdict(parent), indent=2))

    connect_ray(address)
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from runners import search
    from runners.tracking import MlflowTrialLogger

    tuner = tune.Tuner(
        _trainable(spec, trial_function),
        param_space=search.param_space(spec),
        tune_config=tune.TuneConfig(
            search_alg=search.search_algorithm(spec),
            scheduler=search.scheduler(spec),
            num_samples=1 if spec.is_grid else spec.search.num_samples,
            max_concurrent_trials=spec.resources.max_concurrent,
            # Trials share a process when they can: no new Python, torch import or dataset
            # load per trial.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=str(folder.parent),
            failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
            # Two, so the checkpoint Ray's saved state points at is never the one just deleted.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # result.json per trial is what Ray's ResultGrid reads; MLflow is the record.
            callbacks=[MlflowTrialLogger(spec, parent), JsonLoggerCallback()],
            progress_reporter=progress_reporter(spec),
            verbose=1,
        ),
    )
    return _fit(tuner, spec, parent, folder)


def resume_sweep(
    name: str,
    *,
    storage: str | None = None,
    address: str | None = None,
    trial_function: TrialFunction | None = None,
) -> SweepResult:
    """Continue a sweep whose driver stopped: finished trials stay as they are (in Ray and in
    MLflow), unfinished ones continue from their last checkpoint in their own MLflow run."""
    from runners.tracking import ParentRun, set_parent_status

    folder = sweep_folder(storage or DEFAULT_STORAGE, name)
    meta_file, spec_file = folder / SWEEP_META_FILE, folder / SWEEP_SPEC_FILE
    if not meta_file.is_file() or not spec_file.is_file() or not (folder / "tuner.pkl").is_file():
        known = sorted(p.parent.name for p in folder.parent.glob(f"*/{SWEEP_META_FILE}"))
        raise ConfigError(
            f"no sweep {name!r} to resume in {folder.parent} (looked for {folder}).\n"
            f"Sweeps there: {', '.join(known) or 'none'}; pass --storage if it lives elsewhere."
        )
    spec = parse_spec(yaml.safe_load(spec_file.read_text()), source=str(spec_file))
    parent = ParentRun(**json.loads(meta_file.read_text()))

    connect_ray(address)
    from ray import tune

    tuner = tune.Tuner.restore(
        str(folder),
        trainable=_trainable(spec, trial_function),
        resume_unfinished=True,
        # Trials that used up their retries get a fresh start only if the spec allows retries.
        restart_errored=spec.failure.max_retries > 0,
    )
    set_parent_status(parent, "RUNNING")
    return _fit(tuner, spec, parent, folder)


def _trainable(spec: SweepSpec, trial_function: TrialFunction | None) -> Any:
    from ray import tune

    if trial_function is None:
        from runners.trainable import train_trial

        trial_function = train_trial
    resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(trial_function, spec=spec), resources)


def _fit(tuner: Any, spec: SweepSpec, parent: Any, folder: Path) -> SweepResult:
    from runners.outcome import outcome
    from runners.tracking import set_parent_status

    _tune_environment()
    try:
        grid = tuner.fit()
    except BaseException:
        set_parent_status(parent, "FAILED")
        raise
    statuses: Counter = Counter()
    for result in grid:
        statuses["failed" if result.error else outcome(result.metrics)] += 1
    complete = grid.num_errors + grid.num_terminated == len(grid)
    # A driver stopped by Ctrl-C leaves unfinished trials: FAILED until `selab resume`.
    set_parent_status(parent, "FINISHED" if complete else "FAILED")
    return SweepResult(
        name=spec.name,
        folder=folder,
        tracking_uri=parent.tracking_uri,
        experiment_id=parent.experiment_id,
        parent_run_id=parent.run_id,
        statuses=statuses,
        complete=complete,
    )


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


def progress_reporter(spec: SweepSpec) -> Any:
    from ray.tune import CLIReporter

    params = {
        f"point/{key}": SHORT_NAMES.get(key, key.rsplit(".", 1)[-1])
        for key in spec.search.varied_keys
    }
    params["seed"] = "seed"
    metrics = {"epoch": "epoch", "train_loss": "loss", "val_acc": "val_acc",
               "best_val_acc": "best"}
    for objective in spec.search.objectives:
        metrics.setdefault(objective.metric, objective.metric)
    return CLIReporter(
        parameter_columns=params,
        metric_columns=metrics,
        max_report_frequency=20,
        max_progress_rows=30,
    )
