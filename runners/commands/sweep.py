"""`selab run | resume | validate`: sweeps from the command line.

Heavy imports (Ray, MLflow, torch) happen inside the handlers, so `selab --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run a sweep spec (YAML) as Ray Tune trials")
    run.add_argument("spec", help="sweep spec, e.g. experiments/quickstart.yaml")
    _add_cluster_args(run)
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: spec, "
                     "$MLFLOW_TRACKING_URI, sqlite:///mlflow.db)")
    run.add_argument("--storage", help="Ray storage folder (default: the spec's storage)")
    run.add_argument("--overwrite", action="store_true",
                     help="start over if the sweep's Ray folder exists (new MLflow parent run)")
    run.set_defaults(func=run_command)

    resume = subparsers.add_parser("resume", help="continue a sweep whose driver stopped")
    resume.add_argument("name", help="the sweep's name (the spec's `name`)")
    _add_cluster_args(resume)
    resume.add_argument("--storage", help="Ray storage folder (default: ./selab_runs)")
    resume.set_defaults(func=resume_command)

    validate = subparsers.add_parser(
        "validate", help="check a sweep spec and list the trials it expands to"
    )
    validate.add_argument("spec", nargs="+", help="sweep spec(s)")
    validate.set_defaults(func=validate_command)


def _add_cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a "
                        "fresh local Ray instance)")


def run_command(args: argparse.Namespace) -> int:
    from runners.spec import load_spec
    from runners.sweep import run_sweep

    spec = load_spec(args.spec)
    result = run_sweep(
        spec,
        Path(args.spec).read_text(),
        address=args.address,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        overwrite=args.overwrite,
    )
    return _print_result(result)


def resume_command(args: argparse.Namespace) -> int:
    from runners.sweep import resume_sweep

    return _print_result(resume_sweep(args.name, storage=args.storage, address=args.address))


def _print_result(result) -> int:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.statuses.items()))
    print(f"\nsweep {result.name}: {counts or 'no trials'}")
    print(f"MLflow: {result.tracking_uri}, experiment {result.experiment_id}, "
          f"parent run {result.parent_run_id}")
    if not result.complete:
        print(f"not every trial ended; continue with: selab resume {result.name} "
              f"--storage {result.folder.parent}")
        return 1
    return 0


def validate_command(args: argparse.Namespace) -> int:
    from runners.points import count_trials, validate
    from runners.spec import load_spec

    for path in args.spec:
        spec = load_spec(path)
        points = validate(spec)
        total = count_trials(spec)
        if spec.is_grid:
            seeds = len(spec.seeds)
            print(f"{path}: {spec.name}: grid, {len(points)} points x {seeds} seed(s) = "
                  f"{total} trials")
            for point in points:
                tag = " (baseline)" if point.baseline else ""
                print(f"  {point.label}{tag}: {point.as_json()}")
        else:
            objectives = ", ".join(f"{o.metric} {o.mode}" for o in spec.search.objectives)
            print(f"{path}: {spec.name}: {spec.search.kind} search, {total} trials "
                  f"({objectives}) over {', '.join(spec.search.space)}")
    return 0
