"""What each fault costs a sweep: trials lost, MLflow runs and epochs logged twice or never,
and wall time against the same sweep without a fault.

One small real sweep (SE-ResNet-20 on digits, batch 8, 3 reductions x 2 seeds = 6 trials of
`--epochs` epochs, 1 CPU per trial, `failure.max_retries: 1`) runs through the command line as
a user runs it: fault-free `--repeats` times (spread among the faults) and once under each
fault:

- outage: the `mlflow server` (127.0.0.1) is killed once a trial has logged an epoch and
  started again on the same port `--outage-s` later (plus the server's own start-up), longer
  than the MLflow client's retry budget, while the sweep still trains;
- outage-past-end: the same, but started again only once every trial has ended (and the retry
  budget has passed): the driver waits for it at the end, then sends what it missed;
- driver-kill: the driver SIGKILLed once a trial has ended while another trains, then
  `selab resume`;
- startup-kill: the driver SIGKILLed while it starts Ray (the sweep's folder exists, Ray has
  saved nothing), then `selab resume`;
- worker-kill: the process running a trial SIGKILLed after the trial's first epoch (Ray retries
  the trial from its checkpoint);
- node-loss: on a two-node `ray start` cluster of this machine (1 CPU each), the worker node
  (every process of it) SIGKILLed while both nodes train; read against the same sweep
  fault-free on that cluster;
- read-only: the storage folder remounted read-only in the driver's private mount namespace
  after the first epoch (needs root and `unshare`), then `selab resume`.

Every sweep logs to one `mlflow server` (without its background job workers, which tracking
does not use), on the same cores as the trials; every driver starts its own local Ray (as
`selab run` without --address does), except on the cluster. What MLflow holds is counted
against the spec (benchmarks/sweep_tally.py). Wall time: each driver from its start to its
exit (a killed one until the kill; the pause before `selab resume` not counted), plus
`selab sync` when the last driver left results unsent.

    python -m benchmarks.faults [--repeats 3] [--epochs 3] [--outage-s 2] [--faults a,b]

(from the repository's root, as a module: it runs the tests' real MLflow server and Ray nodes,
`tests.support`).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.fault_driver import Driver, events, training, unsent_bytes, worker_pid
from benchmarks.sweep_tally import Tally, expected_epochs, tally_sweep
from runners.spec.load import parse_spec
from runners.spec.sweep import SweepSpec
from runners.storage.paths import SWEEP_META_FILE, TUNER_FILE
from runners.tracking.journal import SENT_FILE
from tests.support import selab_command
from tests.support.mlflow_server import MlflowServer, retry_budget_s
from tests.support.ray_nodes import LocalCluster, cluster_env, make_token

LOCAL_FAULTS = (
    "outage",
    "outage-past-end",
    "driver-kill",
    "startup-kill",
    "worker-kill",
    "read-only",
)
CLUSTER_FAULTS = ("node-loss",)


@dataclass
class Outcome:
    fault: str
    wall_s: float
    tally: Tally
    exits: str  # each driver's exit: a code, or "killed"
    note: str = ""
    baseline: str = "local"  # which fault-free runs it is read against
    training_s: float = 0.0  # first trial's start to last trial's end, from the journal
    tail_s: float = 0.0  # last trial's end to MLflow holding the whole journal


@dataclass
class Bench:
    work: Path
    server: MlflowServer
    epochs: int
    env: dict[str, str]  # a user's shell: no RAY_ADDRESS
    drivers: list[Driver] = field(default_factory=list)

    def spec_data(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "data": {"name": "digits"},
            "arch": {"backbone": "cifar_resnet20", "se": {"reduction": 16}},
            "train": {
                "epochs": self.epochs,
                "batch_size": 8,
                "lr": 0.05,
                "schedule": "constant",
                "weight_decay": 0.0,
                "eval_batch_size": 512,
            },
            "seeds": [0, 1],
            "search": {"kind": "grid", "grid": {"arch.se.reduction": [4, 8, 16]}},
            "resources": {"cpus_per_trial": 1},
            "failure": {"max_retries": 1},
        }

    def spec(self, name: str) -> SweepSpec:
        return parse_spec(self.spec_data(name))

    def storage(self, name: str) -> Path:
        return self.work / ("ro_runs" if name == "read-only" else "runs")

    def folder(self, name: str) -> Path:
        return self.storage(name) / name

    def run_command(self, name: str, address: str | None = None) -> list[str]:
        spec_file = self.work / f"{name}.yaml"
        spec_file.write_text(yaml.safe_dump(self.spec_data(name)))
        args = [
            "run",
            str(spec_file),
            "--tracking-uri",
            self.server.uri,
            "--storage",
            str(self.storage(name)),
        ]
        return selab_command(*args, *(["--address", address] if address else []))

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Driver:
        driver = Driver(command, cwd=self.work, env=env or self.env, log=self.work / f"{name}.log")
        self.drivers.append(driver)
        return driver

    def resume(self, name: str) -> Driver:
        return self.start(name, selab_command("resume", name, "--storage", str(self.storage(name))))

    def outcome(
        self,
        fault: str,
        name: str,
        drivers: list[Driver],
        exits: list[Any],
        note: str = "",
        baseline: str = "local",
    ) -> Outcome:
        """Counted once MLflow has all the journal holds: `selab sync` (timed) if the last
        driver left some of it unsent."""
        wall = sum(d.seconds for d in drivers)
        if len(drivers) > 1:
            times = " + ".join(f"{d.seconds:.1f}" for d in drivers)
            note = f"{note}; the drivers ran {times} s".lstrip("; ")
        if unsent_bytes(self.folder(name)) > 0:
            sync = self.start(
                name, selab_command("sync", name, "--storage", str(self.storage(name)))
            )
            exits.append(f"sync {sync.wait()}")
            wall += sync.seconds
            note = f"{note}; selab sync sent what the driver left".lstrip("; ")
        tally = tally_sweep(self.server.uri, self.spec(name))
        ends = [e["time"] for e in events(self.folder(name), "trial_end")]
        starts = [e["time"] for e in events(self.folder(name), "trial_start")]
        training_s = (max(ends) - min(starts)) / 1000 if ends and starts else math.nan
        sent = self.folder(name) / SENT_FILE  # rewritten each time the driver sends events
        tail_s = sent.stat().st_mtime - max(ends) / 1000 if ends and sent.exists() else math.nan
        return Outcome(
            fault, wall, tally, " / ".join(map(str, exits)), note, baseline, training_s, tail_s
        )

    def stop_all(self) -> None:
        for driver in self.drivers:
            if driver.process.poll() is None:
                driver.stop()


# ----------------------------------------------------------------------------- faults


def fault_free(
    bench: Bench,
    name: str,
    address: str | None = None,
    env: dict[str, str] | None = None,
    baseline: str = "local",
) -> Outcome:
    driver = bench.start(name, bench.run_command(name, address), env)
    code = driver.wait()
    return bench.outcome("fault-free", name, [driver], [code], baseline=baseline)


def tracking_outage(bench: Bench, outage_s: float, past_end: bool = False) -> Outcome:
    """The server killed after the first logged epoch; started again `outage_s` later, or
    (`past_end`) once every trial has ended and the retry budget has passed."""
    name = "outage-past-end" if past_end else "outage"
    folder, trials = bench.folder(name), len(expected_epochs(bench.spec(name)))
    driver = bench.start(name, bench.run_command(name))
    driver.wait_for(lambda: mlflow_epochs(bench.server.uri, name) > 0, "an epoch in MLflow")
    bench.server.kill()
    killed = time.time()
    if past_end:
        driver.wait_for(lambda: len(events(folder, "trial_end")) == trials, "every trial's end")
        outage_s = retry_budget_s() + 1
    time.sleep(max(0.0, killed + outage_s - time.time()))
    bench.server.start()  # returns once it answers
    back = time.time()
    sent = wait_sent(folder, driver)
    code = driver.wait()
    trained = max(e["time"] for e in events(folder, "trial_end")) / 1000
    output = driver.log.read_text()
    note = (
        f"server away {back - killed:.1f} s (retry budget {retry_budget_s():.0f} s), "
        f"back {back - trained:+.1f} s after the last trial ended; MLflow had every result "
        f"{sent - back:.1f} s after the server answered; the driver said 'does not answer' "
        f"{output.count('does not answer')}x, 'MLflow is back' "
        f"{output.count('MLflow is back')}x"
    )
    fault = (
        "tracking server away until after the last trial"
        if past_end
        else "tracking server away mid-sweep"
    )
    return bench.outcome(fault, name, [driver], [code], note)


def wait_sent(folder: Path, driver: Driver) -> float:
    """When the driver had sent MLflow everything its journal held (or ended)."""
    while unsent_bytes(folder) > 0 and driver.process.poll() is None:
        time.sleep(0.05)
    return time.time()


def mlflow_epochs(uri: str, experiment: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return 0
    return sum(
        len(client.get_metric_history(r.info.run_id, "val_acc"))
        for r in client.search_runs([exp.experiment_id])
    )


def driver_killed_mid_sweep(bench: Bench) -> Outcome:
    name = "driver-kill"
    folder = bench.folder(name)
    first = bench.start(name, bench.run_command(name))
    first.wait_for(
        lambda: bool(events(folder, "trial_end") and training(folder)),
        "a trial ended while another trains",
    )
    note = (
        f"killed with {len(events(folder, 'trial_end'))} trial(s) ended, "
        f"{len(training(folder))} training"
    )
    first.kill()
    second = bench.resume(name)
    code = second.wait()
    return bench.outcome(
        "driver SIGKILLed mid-sweep, then resume", name, [first, second], ["killed", code], note
    )


def driver_killed_at_ray_start(bench: Bench) -> Outcome:
    name = "startup-kill"
    folder = bench.folder(name)
    first = bench.start(name, bench.run_command(name))
    first.wait_for(lambda: (folder / SWEEP_META_FILE).exists(), "the sweep's folder")
    first.kill()
    saved = (folder / TUNER_FILE).exists()
    second = bench.resume(name)
    code = second.wait()
    note = f"killed {first.seconds:.1f} s after start; Ray had {'' if saved else 'not '}saved it"
    return bench.outcome(
        "driver SIGKILLed while Ray starts, then resume",
        name,
        [first, second],
        ["killed", code],
        note,
    )


def worker_killed(bench: Bench) -> Outcome:
    name = "worker-kill"
    folder = bench.folder(name)
    driver = bench.start(name, bench.run_command(name))
    target: dict[str, Any] = {}

    def a_trial_worker() -> bool:
        for trial in sorted(training(folder)):
            pid = worker_pid(folder, trial)
            if pid is not None:
                target.update(trial=trial, pid=pid)
                return True
        return False

    driver.wait_for(a_trial_worker, "a trial's first epoch")
    epochs = sum(e["trial_id"] == target["trial"] for e in events(folder, "result"))
    os.kill(target["pid"], signal.SIGKILL)
    code = driver.wait()
    note = f"killed pid {target['pid']} after epoch {epochs} of trial {target['trial']}"
    return bench.outcome("trial worker SIGKILLed mid-trial", name, [driver], [code], note)


def can_unshare() -> bool:
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("unshare", "nsenter", "mount"))


def storage_read_only(bench: Bench) -> Outcome:
    name = "read-only"
    storage, folder = bench.storage(name), bench.folder(name)
    storage.mkdir()
    # The driver (and the Ray it starts) sees the storage bind-mounted onto itself in a mount
    # namespace of its own, remounted read-only below; everything else sees it writable.
    script = f"mount --bind {storage} {storage} && exec {shlex.join(bench.run_command(name))}"
    first = bench.start(name, ["unshare", "-m", "--propagation", "private", "sh", "-c", script])
    first.wait_for(lambda: bool(events(folder, "result")), "a trial's first epoch")
    subprocess.run(
        ["nsenter", "-t", str(first.pid), "-m", "mount", "-o", "remount,ro,bind", str(storage)],
        check=True,
    )
    code = first.wait()
    second = bench.resume(name)
    resumed = second.wait()
    return bench.outcome(
        "storage read-only mid-sweep, then resume", name, [first, second], [code, resumed]
    )


def node_lost(bench: Bench, cluster: LocalCluster, env: dict[str, str]) -> Outcome:
    name = "node-loss"
    folder = bench.folder(name)
    driver = bench.start(name, bench.run_command(name, cluster.address), env)
    driver.wait_for(lambda: len(training(folder)) >= 2, "two trials training, one per node")
    cluster.nodes[1].kill()  # the worker node: raylet, workers, trial actors
    code = driver.wait()
    return bench.outcome(
        "worker node SIGKILLed mid-sweep (2-node cluster)",
        name,
        [driver],
        [code],
        baseline="cluster",
    )


def on_cluster(bench: Bench, repeats: int) -> list[Outcome]:
    """Fault-free `repeats` times, then node-loss, on a fresh two-node cluster."""
    folder = bench.work / "cluster"
    folder.mkdir()
    cluster = LocalCluster(folder, make_token(folder))
    try:
        cluster.start_head()
        cluster.start_worker()
        env = cluster_env(cluster.token_file, auth_mode=None)
        outcomes = [
            fault_free(bench, f"cluster-fault-free-{i}", cluster.address, env, baseline="cluster")
            for i in range(repeats)
        ]
        return [*outcomes, node_lost(bench, cluster, env)]
    finally:
        bench.stop_all()
        cluster.stop()


def run_local(bench: Bench, faults: list[str], repeats: int, outage_s: float) -> list[Outcome]:
    """The fault-free runs spread among the faults, so that drift shows in their spread."""
    actions: dict[str, Callable[[], Outcome]] = {
        "outage": lambda: tracking_outage(bench, outage_s),
        "outage-past-end": lambda: tracking_outage(bench, outage_s, past_end=True),
        "driver-kill": lambda: driver_killed_mid_sweep(bench),
        "startup-kill": lambda: driver_killed_at_ray_start(bench),
        "worker-kill": lambda: worker_killed(bench),
        "read-only": lambda: storage_read_only(bench),
    }
    slots = [round(k * len(faults) / max(1, repeats - 1)) for k in range(repeats)]
    order = [
        step
        for index in range(len(faults) + 1)
        for step in ["fault-free"] * slots.count(index) + faults[index : index + 1]
    ]
    outcomes, free = [], 0
    for step in order:
        if step == "fault-free":
            outcomes.append(fault_free(bench, f"fault-free-{free}"))
            free += 1
        elif step == "read-only" and not can_unshare():
            print("read-only: skipped: needs root+unshare", flush=True)
            continue
        else:
            outcomes.append(actions[step]())
        print(f"{step}: {outcomes[-1].wall_s:.1f} s", flush=True)
    return outcomes


# ----------------------------------------------------------------------------- the table


def spread(walls: list[float]) -> tuple[float, str]:
    median = statistics.median(walls)
    return median, f"median of {len(walls)}, range {min(walls):.1f}-{max(walls):.1f}"


def print_table(outcomes: list[Outcome], epochs: int) -> None:
    trials = outcomes[0].tally.expected if outcomes else 0
    print(
        f"\n{trials} trials x {epochs} epochs (SE-ResNet-20 on digits, 1 CPU each), "
        f"{os.cpu_count()} cores; MLflow client retry budget {retry_budget_s():.0f} s\n"
    )
    print(
        "| fault | trials finished / expected | trials lost | duplicate MLflow runs | "
        "missing epoch steps | duplicate epoch steps | parent run | exit | wall s | "
        "wall - fault-free s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    baselines: dict[str, float] = {}
    trainings: dict[str, float] = {}
    tails: dict[str, float] = {}
    for kind in ("local", "cluster"):
        free = [o for o in outcomes if o.fault == "fault-free" and o.baseline == kind]
        if not free:
            continue
        median, text = spread([o.wall_s for o in free])
        baselines[kind] = median
        trainings[kind] = statistics.median(o.training_s for o in free)
        tails[kind] = statistics.median(o.tail_s for o in free)
        worst = max(
            free,
            key=lambda o: (
                o.tally.lost,
                o.tally.duplicate_runs,
                o.tally.missing_steps,
                o.tally.duplicate_steps,
            ),
        )
        label = "fault-free" + (", 2-node cluster" if kind == "cluster" else "")
        print(row(label, worst.tally, worst.exits, f"{median:.1f} ({text})", "0"))
    notes = []
    for outcome in outcomes:
        if outcome.fault == "fault-free":
            continue
        delta = outcome.wall_s - baselines.get(outcome.baseline, math.nan)
        print(
            row(
                outcome.fault,
                outcome.tally,
                outcome.exits,
                f"{outcome.wall_s:.1f}",
                f"{delta:+.1f}",
            )
        )
        if outcome.fault.startswith("tracking"):  # the restarting server shares the cores
            outcome.note += (
                f"; trials trained for {outcome.training_s:.1f} s (fault-free median "
                f"{trainings[outcome.baseline]:.1f} s); MLflow was complete "
                f"{outcome.tail_s:.1f} s after the last trial ended (fault-free median "
                f"{tails[outcome.baseline]:.1f} s)"
            )
        if outcome.note:
            notes.append(f"- {outcome.fault}: {outcome.note}")
    print("\n" + "\n".join(notes))


def row(label: str, tally: Tally, exits: str, wall: str, delta: str) -> str:
    return (
        f"| {label} | {tally.finished} / {tally.expected} | {tally.lost} | "
        f"{tally.duplicate_runs} | {tally.missing_steps} | {tally.duplicate_steps} | "
        f"{tally.parent_status} | {exits} | {wall} | {delta} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fault-free runs (each setting)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--outage-s",
        type=float,
        default=2.0,
        help="how long the tracking server is away, before its start-up",
    )
    parser.add_argument(
        "--faults",
        default=",".join(LOCAL_FAULTS + CLUSTER_FAULTS),
        help="which faults, comma-separated (default: all)",
    )
    parser.add_argument(
        "--keep", metavar="FOLDER", help="work in FOLDER (new) and keep it: logs, sweeps, MLflow"
    )
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(LOCAL_FAULTS + CLUSTER_FAULTS)
    if unknown:
        parser.error(
            f"unknown faults {sorted(unknown)}; known: {', '.join(LOCAL_FAULTS + CLUSTER_FAULTS)}"
        )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # The server shares the 2 cores with the trials: without MLflow's background job workers
    # (7 more processes, unused by tracking) a restart costs about 7 CPU-seconds, not 13.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    with tempfile.TemporaryDirectory(prefix="selab-faults-") as tmp:
        work = Path(args.keep or tmp)
        if args.keep:
            work.mkdir(parents=True)  # a new folder: the sweeps' names repeat across runs
        server = MlflowServer(work)
        server.start()
        bench = Bench(work, server, args.epochs, env)
        try:
            local = [f for f in faults if f in LOCAL_FAULTS]
            outcomes = run_local(bench, local, args.repeats, args.outage_s)
            if "node-loss" in faults:
                outcomes += on_cluster(bench, args.repeats)
        finally:
            bench.stop_all()
            server.kill()
    print_table(outcomes, args.epochs)


if __name__ == "__main__":
    main()
