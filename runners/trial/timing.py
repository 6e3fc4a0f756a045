"""A trial's measured time: its network timed as the trial trains it, once per architecture.

The measurement itself is search_space.timing (latency and training throughput beside the
plain network of the same shape). Here: the plan a trial's own settings give (its device,
autocast dtype, memory format, batch sizes, the spec's `timing:` section) and where the
figures are kept so that other trials of the same architecture do not pay for them again:

- in the process (a worker that runs several trials: other seeds), with the plain network each
  shape is timed beside, built once;
- in the sweep's folder (`.selab_timing/`, local or behind a URI), for the other worker
  processes of the same machine: Tune keeps at most one idle worker between rounds of a raced
  sweep, so a sweep of 2 workers starts several, and each would measure every architecture
  again. A figure is shared only with workers of the same host, device and thread count (the
  key holds them), so nodes of a cluster measure their own. Two workers that measure the same
  architecture at once both measure it; the file is written whole or read as missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket

import torch

from runners.spec.timing import TimingConfig
from runners.storage.paths import SweepFolder
from runners.trial.training import Trainer
from search_space import ArchConfig, build_model
from search_space.timing import TimingPlan, time_arch

SHARED_FOLDER = ".selab_timing"

_measured: dict[str, dict[str, float]] = {}  # key -> metrics, this process
_plain_networks: dict[str, torch.nn.Module] = {}  # plain config and device -> network


def trial_timing(
    arch: ArchConfig, cfg: TimingConfig, trainer: Trainer, folder: SweepFolder | None = None
) -> dict[str, float]:
    """The metrics of search_space.timing for `arch` as `trainer` trains it (its device, autocast
    dtype, memory format, SE implementation and batch size); {} when `cfg` turns timing off."""
    if not cfg.enabled:
        return {}
    plan = TimingPlan(
        device=trainer.device,
        batch_sizes=cfg.batch_sizes,
        train_batch_size=trainer.batch_size if cfg.training else None,
        autocast_dtype=trainer.amp_dtype if trainer.amp else None,
        memory_format=trainer.memory_format,
        budget_s=cfg.budget_s,
        max_rounds=cfg.rounds,
    )
    key = _key(arch, trainer, plan)
    if key not in _measured:
        metrics = _read_shared(folder, key)
        if metrics is None:
            metrics = _measure(arch, plan, trainer)
            _write_shared(folder, key, metrics)
        _measured[key] = metrics
    return _measured[key]


def _key(arch: ArchConfig, trainer: Trainer, plan: TimingPlan) -> str:
    """What makes two measurements the same: the machine, its threads, the network as trained
    and the plan."""
    device = torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else "cpu"
    return json.dumps(
        {
            "host": socket.gethostname(),
            "device": device,
            "threads": torch.get_num_threads(),
            "arch": arch.to_dict(),
            "se_impl": trainer.cfg.se_impl,
            "plan": plan.key(),
        },
        sort_keys=True,
    )


def _measure(arch: ArchConfig, plan: TimingPlan, trainer: Trainer) -> dict[str, float]:
    plain_key = f"{arch.plain().model_dump_json()}@{trainer.device}"
    if plain_key not in _plain_networks and any(arch.stage_mask):
        devices = [trainer.device] if trainer.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the trial's RNG stays as it was
            _plain_networks[plain_key] = build_model(arch.plain())
    return time_arch(
        arch, plan, model=trainer.model, plain=_plain_networks.get(plain_key)
    ).as_metrics()


def _shared_name(key: str) -> str:
    return f"{SHARED_FOLDER}/{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _read_shared(folder: SweepFolder | None, key: str) -> dict[str, float] | None:
    if folder is None:
        return None
    try:
        found = json.loads(folder.read_text(_shared_name(key)))
    except (OSError, ValueError):  # none yet, or one being written
        return None
    return found["metrics"] if found.get("key") == key else None


def _write_shared(folder: SweepFolder | None, key: str, metrics: dict[str, float]) -> None:
    if folder is None:
        return
    # Storage that cannot be written: every worker measures for itself.
    with contextlib.suppress(OSError):
        folder.write_text(_shared_name(key), json.dumps({"key": key, "metrics": metrics}))
