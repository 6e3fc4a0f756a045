"""selab's own efficiency: the quickstart through `selab run`, against a plain PyTorch loop.

In one invocation, on the same machine:

1. selab: `selab run experiments/quickstart.yaml` through the command's entry point in this
   process, on a local Ray started here (timed), logging to a fresh SQLite MLflow store. Its
   seeds are raced, so the trials it runs depend on its results;
2. plain: exactly those trials (configuration and seed) as a sequential loop in this process:
   the dataset loaded once, then per trial build the network and train its epochs (validation
   included), with freed memory kept as in selab's trials; no Ray, MLflow, cost counting, time
   measurement or checkpoints. Its torch threads: one or every core, whichever trains the
   first trial's epochs faster in a short probe (on small networks, and on cores that other
   processes share, two threads can be far slower than one), or `--plain-threads`.

Prints for each the wall time, the time spent training (the sum of the epochs as
`Trainer.run_epoch` measures them) and its share of the capacity (selab: of wall time times the
trials that run at once), the ratio of the wall times (goal: selab within 1.25x of the plain
loop on 2 cores), and where selab's time goes beyond the epochs, by phase: Ray start, the
driver until the first trial, starting a trial on a new worker (process, imports) and on a
reused one, per trial the network build, fvcore count, data load and time measurement
(reported by the trials), the reports and checkpoint writes between epochs and at the end,
the MLflow writer (a thread of the driver, timed here), and the driver after the last trial.

    python -m benchmarks.sweep_efficiency [--spec experiments/quickstart.yaml]
        [--set train.epochs=2 ...] [--plain-threads N] [--device cpu|cuda] [--json OUT]
        [--selab-only] [--keep DIR]

On a GPU machine: `--device cuda --set resources.gpus_per_trial=0.5` (the plain loop then
trains on the GPU, the sweep's trials on halves of it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from runners.spec.load import load_spec
from runners.spec.points import decode_point, resolve_trial
from runners.spec.sweep import SweepSpec
from runners.tracking.journal import JOURNAL_FILE, read_events

SETUP_PHASES = ("build", "cost", "data", "timing")


@dataclass
class Trial:
    """One trial of the selab run, from the driver's journal and the trial's result.json."""

    trial_id: str
    point: dict[str, Any]
    seed: int
    status: str = ""
    started_ms: int = 0  # the driver's trial_start
    ended_ms: int = 0  # the driver's trial_end
    result_ms: list[int] = field(default_factory=list)  # each result as the driver got it
    epochs_s: list[float] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # result.json

    @property
    def pid(self) -> int | None:
        return self.rows[0].get("pid") if self.rows else None

    def setup(self, phase: str) -> float:
        return float(self.rows[0].get(f"setup.{phase}_s", 0.0)) if self.rows else 0.0

    @property
    def entered_ms(self) -> float:
        """When its function started on the worker (setup.entered_at), else its trial_start."""
        entered = self.rows[0].get("setup.entered_at") if self.rows else None
        return 1e3 * entered if entered else float(self.started_ms)


@dataclass
class WriterClock:
    """Wall and CPU time the MLflow writer's thread spends applying journal events."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    events: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def installed(self):
        from runners.tracking.mlflow_writer import MlflowWriter

        original = MlflowWriter._apply

        def timed_apply(writer: Any, event: dict[str, Any]) -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                original(writer, event)
            finally:
                with self.lock:
                    self.wall_s += time.perf_counter() - wall
                    self.cpu_s += time.thread_time() - cpu
                    self.events += 1

        MlflowWriter._apply = timed_apply
        try:
            yield self
        finally:
            MlflowWriter._apply = original


def run_selab(spec_file: str, overrides: list[str], workdir: Path) -> dict[str, Any]:
    """`selab run` of the spec in this process; its wall time, Ray's start, the MLflow
    writer's time, this process's CPU time and the trials."""
    import ray

    from runners.cli.main import main

    storage, uri = workdir / "runs", f"sqlite:///{workdir / 'mlflow.db'}"
    sets = [arg for item in overrides for arg in ("--set", item)]
    spec = load_spec(spec_file, overrides)
    store_s = create_store(spec, uri, workdir)
    clock = WriterClock()
    began, cpu = time.perf_counter(), time.process_time()
    ray.init(
        address="local",
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        logging_level="WARNING",
    )
    ray_start_s = time.perf_counter() - began
    run_began_ms = time.time() * 1e3
    try:
        with (
            clock.installed(),
            open(workdir / "selab_run.log", "w") as log,
            contextlib.redirect_stdout(log),
            contextlib.redirect_stderr(log),
        ):
            code = main(["run", spec_file, "--storage", str(storage), "--tracking-uri", uri, *sets])
    finally:
        ended_ms = time.time() * 1e3
        ray.shutdown()
    return {
        "exit_code": code,
        "wall_s": time.perf_counter() - began,
        "ray_start_s": ray_start_s,
        "store_create_s": store_s,
        "run_began_ms": run_began_ms,
        "run_ended_ms": ended_ms,
        "writer": clock,
        "driver_cpu_s": time.process_time() - cpu,
        "spec": spec,
        "trials": trials_of(storage / spec.name),
    }


def create_store(spec: SweepSpec, uri: str, workdir: Path) -> float:
    """A new SQLite store creates its tables once (a user's store already has them): timed
    apart, with a parent run of a sweep of another name."""
    from runners.tracking.schema import open_parent_run

    began = time.perf_counter()
    other = spec.model_copy(update={"name": f"{spec.name}-store"})
    open_parent_run(other, other.to_yaml(), uri, str(workdir / "unused"))
    return time.perf_counter() - began


def trials_of(folder: Path) -> list[Trial]:
    trials: dict[str, Trial] = {}
    for event, _ in read_events(folder / JOURNAL_FILE):
        tid = event.get("trial_id")
        if event["kind"] == "trial_start":
            trial = trials.setdefault(tid, Trial(tid, event["point"], int(event["seed"])))
            trial.started_ms = event["time"]  # the last start, after a retry
        elif event["kind"] == "result" and tid in trials:
            trials[tid].result_ms.append(event["time"])
            trials[tid].epochs_s.append(event["metrics"].get("epoch_time_s", 0.0))
        elif event["kind"] == "trial_end" and tid in trials:
            trials[tid].status, trials[tid].ended_ms = event["status"], event["time"]
    for path in folder.glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows and rows[0]["trial_id"] in trials:
            trials[rows[0]["trial_id"]].rows = rows
    return sorted(trials.values(), key=lambda t: t.started_ms)


def slot_idle(
    trials: list[Trial], slots: int, began_ms: float, ended_ms: float, pids: dict[str, bool]
) -> dict[str, float]:
    """Capacity (slot-seconds) in which no trial ran: before the first trials, between a
    trial's end and the start of the trial that took its slot (split by whether that one
    found a warm worker), and after the last trials."""
    starts = sorted((t.started_ms, t.trial_id) for t in trials)
    ends = sorted(t.ended_ms for t in trials)
    idle = {
        "before_first_s": 0.0,
        "refill_new_worker_s": 0.0,
        "refill_warm_worker_s": 0.0,
        "after_last_s": 0.0,
    }
    for i, (start, tid) in enumerate(starts):
        if i < slots:
            idle["before_first_s"] += (start - began_ms) / 1e3
        else:  # the i-th start takes the slot the (i - slots)-th end freed
            gap = max(0.0, (start - ends[i - slots]) / 1e3)
            idle["refill_new_worker_s" if pids[tid] else "refill_warm_worker_s"] += gap
    idle["after_last_s"] = sum((ended_ms - end) / 1e3 for end in ends[-slots:])
    return idle


def selab_phases(run: dict[str, Any], slots: int) -> dict[str, Any]:
    """Where the sweep's time goes beyond the epochs: seconds in all, and per trial."""
    trials: list[Trial] = run["trials"]
    seen_pids: set[int] = set()
    start_cold, start_warm = [], []
    new_worker: dict[str, bool] = {}
    for t in trials:  # the first trial a worker process runs pays its start and imports
        wait_s = (t.entered_ms - t.started_ms) / 1e3
        new_worker[t.trial_id] = t.pid not in seen_pids
        (start_cold if new_worker[t.trial_id] else start_warm).append(wait_s)
        seen_pids.add(t.pid)
    between, ending = [], []
    for t in trials:
        if not t.result_ms:
            continue
        setup_s = sum(t.setup(p) for p in SETUP_PHASES)
        marks = [t.entered_ms / 1e3 + setup_s, *(ms / 1e3 for ms in t.result_ms)]
        # Between two results: one epoch, then its report and checkpoint write.
        between += [b - a - e for a, b, e in zip(marks, marks[1:], t.epochs_s, strict=False)]
        ending.append((t.ended_ms - t.result_ms[-1]) / 1e3)
    writer: WriterClock = run["writer"]
    last_end = max((t.ended_ms for t in trials), default=run["run_ended_ms"])
    return {
        "ray_start_s": run["ray_start_s"],
        "driver_until_first_trial_s": (min(t.started_ms for t in trials) - run["run_began_ms"])
        / 1e3
        if trials
        else 0.0,
        "worker_start_cold_s": start_cold,
        "trial_start_warm_s": start_warm,
        **{f"setup_{p}_s": [t.setup(p) for t in trials if t.rows] for p in SETUP_PHASES},
        "reports_and_checkpoints_s": between,
        "trial_end_s": ending,
        "mlflow_writer_wall_s": writer.wall_s,
        "mlflow_writer_cpu_s": writer.cpu_s,
        "mlflow_events": writer.events,
        "driver_cpu_s": run["driver_cpu_s"] - writer.cpu_s,
        "driver_after_last_trial_s": (run["run_ended_ms"] - last_end) / 1e3,
        "store_create_s": run["store_create_s"],
        "new_workers": sum(new_worker.values()),
        "idle": slot_idle(trials, slots, run["run_began_ms"], run["run_ended_ms"], new_worker),
    }


def probe_threads(spec: SweepSpec, trial: Trial, device: torch.device) -> dict[int, float]:
    """Seconds per epoch of the first trial with 1 thread and with every core (median of 3
    epochs after one of warm-up)."""
    from runners.trial.data.load import load_splits
    from runners.trial.training import Trainer
    from search_space import build_model

    settings = resolve_trial(spec, decode_point(spec, trial.point), trial.seed)
    splits = load_splits(settings.data, device)
    seconds = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        trainer = Trainer(build_model(settings.arch), splits, settings.train, device, 0)
        epochs = [trainer.run_epoch().epoch_time_s for _ in range(min(4, settings.train.epochs))]
        seconds[threads] = statistics.median(epochs[1:] or epochs)
    return seconds


def run_plain(
    spec: SweepSpec, trials: list[Trial], device: torch.device, threads: int
) -> dict[str, Any]:
    """The same trials, one after another in this process; wall and training seconds."""
    from runners.trial.data.load import load_splits
    from runners.trial.training import Trainer
    from search_space import build_model

    torch.set_num_threads(threads)
    began = time.perf_counter()
    data: dict[str, Any] = {}
    epochs_s = []
    for t in trials:
        settings = resolve_trial(spec, decode_point(spec, t.point), t.seed)
        key = settings.data.model_dump_json()
        if key not in data:  # a plain loop loads its dataset once
            data[key] = load_splits(settings.data, device, workers=threads)
        torch.manual_seed(settings.seed)
        trainer = Trainer(
            build_model(settings.arch),
            data[key],
            settings.train,
            device,
            settings.seed,
            augment=settings.data.augment,
        )
        while not trainer.done:
            epochs_s.append(trainer.run_epoch().epoch_time_s)
    return {
        "wall_s": time.perf_counter() - began,
        "train_s": sum(epochs_s),
        "trials": len(trials),
        "epochs": len(epochs_s),
        "threads": threads,
    }


def concurrency(spec: SweepSpec, device: torch.device) -> int:
    """Trials that run at once on this machine."""
    cpus = max(1, int((os.cpu_count() or 1) // spec.resources.cpus_per_trial))
    slots = cpus
    if spec.resources.gpus_per_trial > 0 and device.type == "cuda":
        slots = min(slots, int(torch.cuda.device_count() // spec.resources.gpus_per_trial))
    return min(slots, spec.resources.max_concurrent or slots)


def summary(run: dict[str, Any], plain: dict[str, Any] | None, slots: int) -> dict[str, Any]:
    trials = run["trials"]
    train_s = sum(sum(t.epochs_s) for t in trials)
    plain = plain or {
        "wall_s": float("nan"),
        "train_s": float("nan"),
        "trials": 0,
        "epochs": 0,
        "threads": 0,
    }
    return {
        "selab": {
            "wall_s": run["wall_s"],
            "train_s": train_s,
            "concurrency": slots,
            "trials": len(trials),
            "epochs": sum(len(t.epochs_s) for t in trials),
            "training_share": train_s / (slots * run["wall_s"]),
            "statuses": dict(Counter(t.status for t in trials)),
        },
        "plain": plain | {"training_share": plain["train_s"] / plain["wall_s"]},
        "wall_ratio_selab_over_plain": run["wall_s"] / plain["wall_s"],
        "phases": selab_phases(run, slots),
    }


def _total(values: Any) -> tuple[float, float, int]:
    values = list(values) if isinstance(values, list) else [values]
    return sum(values), (statistics.mean(values) if values else 0.0), len(values)


def print_summary(result: dict[str, Any]) -> None:
    s, p, ph = result["selab"], result["plain"], result["phases"]
    print(f"\n{s['trials']} trials, {s['epochs']} epochs ({s['statuses']})")
    print(f"{'':28s} {'wall s':>8s} {'training s':>11s} {'training / capacity':>20s}")
    print(
        f"{'selab run':28s} {s['wall_s']:8.1f} {s['train_s']:11.1f} "
        f"{s['training_share']:20.2f}   ({s['concurrency']} trials at once)"
    )
    print(
        f"{'plain loop':28s} {p['wall_s']:8.1f} {p['train_s']:11.1f} "
        f"{p['training_share']:20.2f}   ({p['threads']} threads)"
    )
    if p.get("probe_s_per_epoch"):
        probe = ", ".join(
            f"{n} thread{'s' * (n > 1)} {v:.2f} s" for n, v in p["probe_s_per_epoch"].items()
        )
        print(f"plain loop threads probed, seconds per epoch of the first trial: {probe}")
    print(f"selab wall / plain wall: {result['wall_ratio_selab_over_plain']:.3f} (goal <= 1.25)")
    print("\nselab beyond the epochs, by phase      total s   per trial s   trials")
    rows = [
        ("Ray start", "ray_start_s"),
        ("driver until the first trial", "driver_until_first_trial_s"),
        ("worker start (new process, imports)", "worker_start_cold_s"),
        ("trial start on a reused worker", "trial_start_warm_s"),
        *((f"setup: {p_}", f"setup_{p_}_s") for p_ in SETUP_PHASES),
        ("reports + checkpoints between epochs", "reports_and_checkpoints_s"),
        ("last report to trial end", "trial_end_s"),
        ("MLflow writer (thread CPU)", "mlflow_writer_cpu_s"),
        ("MLflow writer (thread wall)", "mlflow_writer_wall_s"),
        ("driver CPU besides the writer", "driver_cpu_s"),
        ("driver after the last trial", "driver_after_last_trial_s"),
    ]
    for name, key in rows:
        total, mean, n = _total(ph[key])
        print(f"  {name:38s} {total:7.2f}   {mean:11.3f}   {n:6d}")
    print(
        f"once per new MLflow SQLite store (not in the sweep's wall): {ph['store_create_s']:.2f} s"
    )
    idle = ph["idle"]
    print(
        f"\nslot-seconds with no trial running (of {s['concurrency']} x {s['wall_s']:.1f} s; "
        f"{ph['new_workers']} worker processes started):"
    )
    for name, key in (
        ("before the first trials (Ray, driver, workers)", "before_first_s"),
        ("refilling a slot with a new worker process", "refill_new_worker_s"),
        ("refilling a slot with a warm worker", "refill_warm_worker_s"),
        ("after the last trials ended", "after_last_s"),
    ):
        print(f"  {name:50s} {idle[key]:7.1f}")
    busy = s["concurrency"] * s["wall_s"] - sum(idle.values())
    print(
        f"  trials running (setup, epochs, reports)            {busy:7.1f}"
        f"   of which epochs {s['train_s']:.1f}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="experiments/quickstart.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="spec override, as `selab run --set`",
    )
    parser.add_argument(
        "--plain-threads",
        type=int,
        default=None,
        help="the plain loop's torch threads (default: 1 or every core, "
        "whichever a probe finds faster)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="the plain loop's device"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument(
        "--selab-only", action="store_true", help="skip the plain loop (selab's phases only)"
    )
    parser.add_argument(
        "--keep", default=None, help="keep the sweep's folder, store and log in this folder"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        run = run_selab(args.spec, args.overrides, workdir)
        if run["exit_code"] != 0:
            print((workdir / "selab_run.log").read_text()[-3000:])
            raise SystemExit(f"selab run exited {run['exit_code']}")
    finished = [t for t in run["trials"] if t.status == "finished"]
    plain = None
    if not args.selab_only:
        from runners.trial.memory import keep_freed_memory

        keep_freed_memory()  # as selab's trials do: the comparison is of the harness, not malloc
        probe = probe_threads(run["spec"], finished[0], device) if finished else {1: 0.0}
        threads = args.plain_threads or min(probe, key=probe.get)
        plain = run_plain(run["spec"], finished, device, threads) | {"probe_s_per_epoch": probe}
    result = summary(run, plain, concurrency(run["spec"], device))
    print_summary(result)
    print(
        f"\n{os.cpu_count()} cores, torch {torch.__version__}, spec {args.spec} "
        f"{' '.join(args.overrides)}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
