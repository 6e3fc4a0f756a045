"""One Ray Tune trial: build the network, count its cost, time it, train it, report every epoch.

A function trainable, as in Ray Tune's own examples. It checkpoints after every epoch and
starts from `tune.get_checkpoint()` when there is one, so ASHA pauses, retries after a failure
and `selab resume` all continue where the trial left off.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune

from runners.spec.data import DataConfig
from runners.spec.points import decode_point, resolve_trial
from runners.spec.sweep import SweepSpec
from runners.spec.timing import TimingConfig
from runners.storage.models import MODEL_FILE
from runners.storage.paths import SweepFolder
from runners.trial.data.load import load_splits
from runners.trial.data.splits import DataSplits
from runners.trial.memory import keep_freed_memory
from runners.trial.timing import trial_timing
from runners.trial.training import Trainer
from search_space import ArchConfig, build_model
from search_space.cost import count_cost
from search_space.serialize import save_model

CHECKPOINT_FILE = "trainer.pt"
# The last checkpoint of a finished trial: its network (runners.storage.models) and its last
# metrics, no optimizer state (a finished trial never trains again).
FINAL_FILE = "final.json"

# With reuse_actors one process runs many trials: keep what they share (the dataset, the cost
# of an architecture another seed already counted; its measured time: runners.trial.timing)
# instead of redoing it per trial.
_last_splits: tuple[str, Any] | None = None  # (key, DataSplits or StreamedSplits)
_cost_cache: dict[str, dict[str, float]] = {}


def train_trial(config: dict[str, Any], spec: SweepSpec) -> None:
    """The Tune entry point; `config` is {"point": {dotted key: value}, "seed": int}."""
    # When this trial's function started (unix seconds; benchmarks/sweep_efficiency.py sets it
    # against the driver's trial_start to see what starting a trial on a worker costs).
    timings: dict[str, float] = {"setup.entered_at": time.time()}
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no line per checkpoint
    settings = resolve_trial(spec, decode_point(spec, config["point"]), int(config["seed"]))
    device = _trial_device()
    device_name = _device_name(device)
    torch.set_num_threads(_trial_cpus())
    keep_freed_memory()  # no page faults per training step (runners/trial/memory.py)

    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    model = build_model(settings.arch)
    timings["setup.build_s"] = time.perf_counter() - start

    start = time.perf_counter()
    cost = _cost_metrics(settings.arch, model)
    timings["setup.cost_s"] = time.perf_counter() - start

    start = time.perf_counter()
    splits = _load_data(settings.data, device, _trial_cpus())
    timings["setup.data_s"] = time.perf_counter() - start

    # Setup draws from the global RNG only on a cold worker (the cost cache builds the plain
    # network once per process): reseed so dropout's stream depends on the seed alone.
    torch.manual_seed(_training_seed(settings.seed))
    trainer = Trainer(
        model, splits, settings.train, device, settings.seed, augment=settings.data.augment
    )
    restored = _restore(trainer)
    if isinstance(restored, dict):  # it had finished; Ray's saved state predates its end
        tune.report(restored)
        return
    best_val_acc = restored

    start = time.perf_counter()
    # A spec pickled by an earlier selab has no timing section: the defaults then.
    timing_cfg = getattr(spec, "timing", None) or TimingConfig()
    cost = cost | trial_timing(
        settings.arch, timing_cfg, trainer, SweepFolder(spec.storage, spec.name)
    )
    timings["setup.timing_s"] = time.perf_counter() - start

    while not trainer.done:
        epoch = trainer.run_epoch()
        if math.isfinite(epoch.val_acc):
            best_val_acc = max(best_val_acc, epoch.val_acc)
        metrics: dict[str, Any] = {
            **epoch.metrics(),
            **cost,
            "epoch": epoch.epoch,
            "epochs_planned": settings.train.epochs,
            "best_val_acc": best_val_acc,
            "diverged": epoch.diverged,
            "device": device_name,  # the run's tag selab.device
        }
        if timings:  # the setup cost, in the first report after (re)starting
            metrics.update(timings)
            timings = {}
        if epoch.diverged:  # NaN/inf loss: end this trial, leave the sweep running
            tune.report(metrics)
            return
        if trainer.done:
            _report_final(metrics, settings, trainer)
        elif epoch.epoch % settings.train.checkpoint_every == 0:
            with tempfile.TemporaryDirectory() as folder:
                torch.save(
                    {"trainer": trainer.state_dict(), "best_val_acc": best_val_acc},
                    Path(folder, CHECKPOINT_FILE),
                )
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(metrics)


def _report_final(metrics: dict[str, Any], settings: Any, trainer: Trainer) -> None:
    """The last report, with the checkpoint that keeps the trained network."""
    with tempfile.TemporaryDirectory() as folder:
        save_model(
            Path(folder, MODEL_FILE),
            settings.arch,
            trainer.model,
            meta={"seed": settings.seed, "epochs": trainer.epoch},
        )
        Path(folder, FINAL_FILE).write_text(json.dumps(metrics))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _training_seed(seed: int) -> int:
    """The global RNG's seed for training, distinct from the initialisation's `seed`."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


def _restore(trainer: Trainer) -> float | dict[str, Any]:
    """Load the latest checkpoint into `trainer`; returns the best val_acc so far, or the
    final metrics when the checkpoint is a finished trial's last one."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0.0
    with checkpoint.as_directory() as folder:
        if Path(folder, FINAL_FILE).is_file():
            return json.loads(Path(folder, FINAL_FILE).read_text())
        state = torch.load(
            Path(folder, CHECKPOINT_FILE), map_location=trainer.device, weights_only=True
        )
    trainer.load_state_dict(state["trainer"])
    return float(state["best_val_acc"])


def _cost_metrics(arch: ArchConfig, model: torch.nn.Module) -> dict[str, float]:
    key = json.dumps(arch.to_dict(), sort_keys=True)
    if key not in _cost_cache:
        _cost_cache[key] = count_cost(arch, model).as_metrics()
    return _cost_cache[key]


def _load_data(cfg: DataConfig, device: torch.device, cpus: int) -> DataSplits:
    """One copy of the dataset per trial process: kept for the next trial that uses it."""
    global _last_splits
    key = f"{cfg.model_dump_json()}@{device}/{cpus}"
    if _last_splits is None or _last_splits[0] != key:
        _last_splits = None  # free the previous dataset before loading the next
        _last_splits = (key, load_splits(cfg, device, workers=cpus))
    return _last_splits[1]


def _trial_resources() -> dict[str, float]:
    try:
        return dict(tune.get_context().get_trial_resources().required_resources)
    except Exception:  # outside a Tune session (direct calls in tests, the benchmark)
        return {}


def _trial_cpus() -> int:
    return max(1, int(_trial_resources().get("CPU", 1)))


def _device_name(device: torch.device) -> str:
    """What the trial ran on, in words: "cpu", or "cuda:0 NVIDIA H200"."""
    if device.type != "cuda":
        return device.type
    index = torch.cuda.current_device()
    return f"cuda:{index} {torch.cuda.get_device_name(index)}"


def _trial_device() -> torch.device:
    """CUDA when Ray gave this trial (a share of) a GPU, else the CPU."""
    if _trial_resources().get("GPU", 0) > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
