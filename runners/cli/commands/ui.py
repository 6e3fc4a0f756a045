"""`selab ui`: the MLflow UI on the sweeps' tracking store, bound to 127.0.0.1.

It prints, for each sweep, which page to open: the answer (the sweep's parent run: the verdict,
its decision table and the `sweep.*` numbers, as `selab run` or `selab report` published them),
then its trials (the runs view saved with the answer: ranked by accuracy, the varied knobs),
and the experiment's Models view once it lists kept networks. A sweep whose answer is not
published yet gets its experiment's runs page and the command that publishes it.

The command replaces itself with the MLflow server (`os.execv`), so the process a user starts is
the server: Ctrl-C or a kill of its id stops it (MLflow forwards the signal to its web worker),
and nothing is left running behind it.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from dataclasses import dataclass

from search_space.errors import ConfigError

HOST = "127.0.0.1"
# MLflow 3 opens on its GenAI overview; classic training runs are listed under this view.
RUNS_VIEW = "#/experiments/{experiment_id}/runs?workflowType=machine_learning"
MODELS_VIEW = "#/experiments/{experiment_id}/models?workflowType=machine_learning"
VERDICT_TAG = "selab.verdict"  # set on the parent run when the answer is published


@dataclass(frozen=True)
class SweepPages:
    """Where a sweep's answer and trials are in the UI."""

    name: str
    answer: str | None  # the parent run's page, once the answer is published
    trials: str  # the saved runs view, else the experiment's runs page
    saved_view: bool
    models: str | None = None  # the experiment's Models view, when it lists kept networks

    def lines(self) -> list[str]:
        models = (
            [f"    its kept networks (MLflow's Models view): {self.models}"]
            if (self.models)
            else []
        )
        if self.answer is None:
            return [
                f"  sweep {self.name}: no answer published yet (run `selab report "
                f"{self.name}`); its runs: {self.trials}",
                *models,
            ]
        trials = (
            "its trials ranked by accuracy, with the varied knobs"
            if self.saved_view
            else "its runs"
        )
        return [
            f"  sweep {self.name}:",
            f"    open the answer (verdict, decision table, sweep.* numbers): {self.answer}",
            f"    then {trials}: {self.trials}",
            *models,
        ]


def register(subparsers: argparse._SubParsersAction) -> None:
    ui = subparsers.add_parser("ui", help="open the MLflow UI on the sweeps' tracking store")
    ui.add_argument(
        "--tracking-uri",
        help="store to browse (default: $MLFLOW_TRACKING_URI, sqlite:///mlflow.db)",
    )
    ui.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    ui.add_argument("--sweep", help="print only this sweep's pages (default: every sweep)")
    ui.set_defaults(func=ui_command)


def ui_command(args: argparse.Namespace) -> int:
    from runners.tracking.store import choose_tracking_uri

    uri = choose_tracking_uri(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise ConfigError(
            f"--tracking-uri: {uri} is a tracking server already; open it in a browser"
        )
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port: {args.port} is not a TCP port; allowed: 1..65535")
    if port_in_use(args.port):
        raise ConfigError(
            f"--port: 127.0.0.1:{args.port} is already in use; pick another with --port"
        )
    address = f"http://{HOST}:{args.port}/"
    pages = sweep_pages(uri, address, args.sweep)
    print(f"MLflow UI on {uri}: {address}")
    for page in pages:
        print("\n".join(page.lines()))
    if not pages:
        print("  no selab sweeps in this store yet")
    print("Stop it with Ctrl-C.", flush=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        HOST,
        "--port",
        str(args.port),
        "--workers",
        "1",
    ]
    os.execv(sys.executable, command)
    return 0  # not reached: execv replaces this process


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((HOST, port)) == 0


def sweep_pages(uri: str, address: str, only: str | None) -> list[SweepPages]:
    """The pages of every sweep in the store (the newest parent run of each name)."""
    from mlflow import MlflowClient

    from reports.publish import VIEW_TAG, run_url, view_url

    client = MlflowClient(uri)
    experiments = {e.experiment_id: e for e in client.search_experiments()}
    if not experiments:
        return []
    runs = client.search_runs(list(experiments), "tags.`selab.role` = 'sweep'", max_results=5000)
    pages: dict[str, SweepPages] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):  # the newest parent wins
        name = run.data.tags.get("selab.sweep", run.info.run_name)
        exp_id = run.info.experiment_id
        saved = VIEW_TAG in experiments[exp_id].tags
        answer = run_url(address, exp_id, run.info.run_id) if VERDICT_TAG in run.data.tags else None
        trials = (
            view_url(address, exp_id) if saved else address + RUNS_VIEW.format(experiment_id=exp_id)
        )
        models = (
            address + MODELS_VIEW.format(experiment_id=exp_id)
            if client.search_logged_models([exp_id], max_results=1)
            else None
        )
        pages[name] = SweepPages(name, answer, trials, saved, models)
    if only is not None:
        if only not in pages:
            raise ConfigError(
                f"--sweep: no sweep {only!r} in {uri}; sweeps there: "
                f"{', '.join(sorted(pages)) or 'none'}"
            )
        return [pages[only]]
    return [pages[name] for name in sorted(pages)]
