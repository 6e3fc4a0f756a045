"""`selab analyze SWEEP`: the paper's excitation analysis (Sec. 7.2) of a sweep's trained networks.

For each chosen trial: its kept model (runners.storage.models) runs the trial's validation
split, `search_space.excitation_analysis` tabulates the excitations of the chosen blocks,
`reports.excitation` draws them; CSVs and PNGs go to --out and to the trial's MLflow run under
`excitation/`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from runners.tracking.store import choose_tracking_uri
from search_space.errors import ConfigError

ARTIFACT_DIR = "excitation"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze", help="excitation analysis of a sweep's trained networks (paper Sec. 7.2)"
    )
    p.add_argument("sweep", help="the sweep's name")
    p.add_argument(
        "--trials",
        nargs="+",
        default=None,
        help='trials to analyse: run ids or labels ("r=8", "r=8 seed=1"); default: '
        "every finished trial whose network has a gate",
    )
    p.add_argument(
        "--blocks",
        default="last",
        help='"last" (the last gated unit of each stage, default), "all", or names '
        "such as stage2.unit3,stage3.unit3",
    )
    p.add_argument("--out", default=None, help="folder (default: selab_reports/SWEEP/excitation)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default as selab report)")
    p.add_argument("--no-log", action="store_true", help="do not log the files to MLflow")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from runners.cli.trial_names import load_sweep_or_fail, select_trials
    from runners.spec.load import parse_spec

    uri = choose_tracking_uri(args.tracking_uri)
    # A model download is a detail of this command: no MLflow progress bar in its output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    sweep = load_sweep_or_fail(uri, args.sweep)
    spec_text = sweep.spec_text()
    if spec_text is None:
        raise ConfigError(f"sweep: {args.sweep!r} has no spec.yaml in its parent run")
    import yaml

    spec = parse_spec(yaml.safe_load(spec_text), source=f"{args.sweep} spec.yaml")
    rows = select_trials(sweep.trials, args.trials)
    blocks = args.blocks if args.blocks in ("last", "all") else args.blocks.split(",")
    out_root = Path(args.out) if args.out else Path("selab_reports") / args.sweep / ARTIFACT_DIR
    client = MlflowClient(uri)
    done = []
    for _, row in rows.iterrows():
        summary = analyze_trial(client, spec, row, blocks, out_root, log=not args.no_log)
        if summary is not None:
            done.append((f"{row['label']} seed {row['seed']}", summary))
    if not done:
        raise ConfigError(
            "--trials: none of the chosen trials has a network with a gate "
            "(the no-SE baseline has none)"
        )
    print_summary(done, out_root, logged=not args.no_log)
    return 0


def print_summary(done: list[tuple[str, Any]], out_root: Path, logged: bool) -> None:
    """One row per analysed trial (how class-specific its blocks are, how saturated the last
    gate is) and where the files are: one folder per trial under ``out_root``."""
    from reports.excitation import summary_table
    from reports.tables import to_text

    print(
        f"Excitation analysis of {len(done)} trial(s); the paper (Sec. 7.2) finds early "
        "blocks alike for every class, later ones class-specific, the last one saturated:"
    )
    print(to_text(summary_table(done)))
    where = f" and under {ARTIFACT_DIR}/ of each trial's MLflow run" if logged else ""
    print(f"Tables and figures: one folder per trial in {out_root}{where}.")


def analyze_trial(
    client: Any, spec: Any, row: Any, blocks: Any, out_root: Path, log: bool
) -> Any | None:
    """Analyse one trial (files in its folder under ``out_root``); returns its summary table,
    None when its network has no gate (nothing to analyse)."""
    from reports.excitation import plot_per_class, plot_summary
    from runners.spec.points import resolve_trial
    from runners.storage.models import fetch_model
    from search_space.excitation import gate_sites
    from search_space.excitation_analysis import analyze
    from search_space.serialize import load_model

    arch, model = load_model(fetch_model(client, client.get_run(row["run_id"])))
    if not gate_sites(model):
        return None
    settings = resolve_trial(spec, row["point"], int(row["seed"]))
    splits = _splits(settings.data)
    try:
        tables = analyze(
            model, splits.eval_batches("val", 512), splits.classes, arch.se.gate, blocks
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    name = f"{row['label']} seed {row['seed']}"
    folder = out_root / f"{str(row['label']).replace(' ', '_').replace('=', '')}_seed{row['seed']}"
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "per_class.csv", folder / "summary.csv"]
    tables.per_class.to_csv(files[0], index=False)
    tables.summary.to_csv(files[1], index=False)
    files.append(plot_per_class(tables.per_class, folder / "per_class.png", name))
    files.append(plot_summary(tables.summary, folder / "summary.png", name))
    if log:
        for path in files:
            client.log_artifact(row["run_id"], str(path), ARTIFACT_DIR)
    return tables.summary


_splits_cache: dict[str, Any] = {}


def _splits(data: Any) -> Any:
    """The validation split of a data config, loaded once per command."""
    from runners.trial.data.load import load_splits

    key = data.model_dump_json()
    if key not in _splits_cache:
        _splits_cache[key] = load_splits(data, "cpu")
    return _splits_cache[key]
