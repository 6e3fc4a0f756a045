"""`selab export SWEEP --trial ...`: a trained network of a sweep as one loadable file.

The file is selab's own (`search_space.serialize`: the config and the weights, read by
`torch.load(path, weights_only=True)` or `search_space.serialize.load_model(path)`).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from runners.tracking.store import choose_tracking_uri
from search_space.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="write a trained network of a sweep to a file")
    p.add_argument("sweep", help="the sweep's name")
    p.add_argument(
        "--trial",
        required=True,
        help='the trial: its MLflow run id, or its label and seed ("r=8 seed=1")',
    )
    p.add_argument("--out", default=None, help="file to write (default: <label>_seed<N>.pt)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default as selab report)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from runners.cli.trial_names import load_sweep_or_fail, select_trials
    from runners.storage.models import fetch_model
    from search_space.serialize import load_model

    uri = choose_tracking_uri(args.tracking_uri)
    # A model download is a detail of this command: no MLflow progress bar in its output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    sweep = load_sweep_or_fail(uri, args.sweep)
    rows = select_trials(sweep.trials, [args.trial])
    if len(rows) != 1:
        seeds = ", ".join(str(s) for s in rows["seed"])
        raise ConfigError(
            f"--trial: {args.trial!r} names {len(rows)} trials (seeds {seeds}); "
            "add seed=N or give a run id"
        )
    row = rows.iloc[0]
    client = MlflowClient(uri)
    source = fetch_model(client, client.get_run(row["run_id"]))
    load_model(source)  # refuse a file that does not rebuild before writing it anywhere
    default = f"{str(row['label']).replace(' ', '_').replace('=', '')}_seed{row['seed']}.pt"
    out = Path(args.out or default)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out)
    print(
        f"{out}: {row['label']} seed {row['seed']} (run {row['run_id']}); load it with "
        "search_space.serialize.load_model or torch.load(..., weights_only=True)"
    )
    return 0
