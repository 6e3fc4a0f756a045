"""`selab ui`: the MLflow UI on the sweeps' tracking store, bound to 127.0.0.1.

The command replaces itself with the MLflow server (`os.execv`), so the process a user starts is
the server: Ctrl-C or a kill of its id stops it (MLflow forwards the signal to its web worker),
and nothing is left running behind it.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from search_space.errors import ConfigError

HOST = "127.0.0.1"
# MLflow 3 opens on its GenAI overview; classic training runs are listed under this view.
RUNS_VIEW = "#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def register(subparsers: argparse._SubParsersAction) -> None:
    ui = subparsers.add_parser("ui", help="open the MLflow UI on the sweeps' tracking store")
    ui.add_argument("--tracking-uri", help="store to browse (default: $MLFLOW_TRACKING_URI, "
                    "sqlite:///mlflow.db)")
    ui.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    ui.add_argument("--sweep", help="print only this sweep's runs page (default: every sweep)")
    ui.set_defaults(func=ui_command)


def ui_command(args: argparse.Namespace) -> int:
    from runners.tracking.store import choose_tracking_uri

    uri = choose_tracking_uri(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise ConfigError(f"--tracking-uri: {uri} is a tracking server already; open it in a "
                          "browser")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port: {args.port} is not a TCP port; allowed: 1..65535")
    if port_in_use(args.port):
        raise ConfigError(f"--port: 127.0.0.1:{args.port} is already in use; pick another "
                          "with --port")
    address = f"http://{HOST}:{args.port}/"
    pages = sweep_pages(uri, address, args.sweep)
    print(f"MLflow UI on {uri}: {address}")
    for name, page in pages:
        print(f"  sweep {name}: {page}")
    if not pages:
        print("  no selab sweeps in this store yet")
    print("Stop it with Ctrl-C.", flush=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--host", HOST, "--port", str(args.port), "--workers", "1"]
    os.execv(sys.executable, command)
    return 0  # not reached: execv replaces this process


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((HOST, port)) == 0


def sweep_pages(uri: str, address: str, only: str | None) -> list[tuple[str, str]]:
    """(sweep name, the runs page of its experiment) for every sweep in the store."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiments = client.search_experiments()
    if not experiments:
        return []
    runs = client.search_runs([e.experiment_id for e in experiments],
                              "tags.`selab.role` = 'sweep'", max_results=5000)
    pages: dict[str, str] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):  # the newest parent wins
        name = run.data.tags.get("selab.sweep", run.info.run_name)
        pages[name] = address + RUNS_VIEW.format(experiment_id=run.info.experiment_id)
    if only is not None:
        if only not in pages:
            raise ConfigError(f"--sweep: no sweep {only!r} in {uri}; sweeps there: "
                              f"{', '.join(sorted(pages)) or 'none'}")
        return [(only, pages[only])]
    return sorted(pages.items())
