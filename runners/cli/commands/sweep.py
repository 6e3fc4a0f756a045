"""`selab run | resume | validate`: sweeps from the command line.

Heavy imports (Ray, MLflow, torch) happen inside the handlers, so `selab --help` stays fast.
"""

from __future__ import annotations

import argparse

from runners.spec.defaults import DEFAULT_STORAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run a sweep spec (YAML) as Ray Tune trials")
    run.add_argument("spec", help="sweep spec, e.g. experiments/quickstart.yaml")
    _add_cluster_args(run)
    run.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: spec, $MLFLOW_TRACKING_URI, sqlite:///mlflow.db)",
    )
    run.add_argument(
        "--storage",
        help=f"Ray storage folder (default: the spec's storage, else {DEFAULT_STORAGE})",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="start over if the sweep's Ray folder exists (new MLflow parent run)",
    )
    _add_set_arg(run)
    run.set_defaults(func=run_command)

    resume = subparsers.add_parser("resume", help="continue a sweep whose driver stopped")
    resume.add_argument("name", help="the sweep's name (the spec's `name`)")
    _add_cluster_args(resume)
    resume.add_argument("--storage", help=f"Ray storage folder (default: {DEFAULT_STORAGE})")
    resume.set_defaults(func=resume_command)

    validate = subparsers.add_parser(
        "validate", help="check a sweep spec and list the trials it expands to"
    )
    validate.add_argument("spec", nargs="+", help="sweep spec(s)")
    _add_cluster_args(validate)
    _add_set_arg(validate)
    validate.set_defaults(func=validate_command)


def _add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of the spec by its dotted key, the value read as YAML "
        "(e.g. --set resources.gpus_per_trial=0 --set train.epochs=2); repeatable",
    )


def _add_cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        help="Ray cluster to join (default: $RAY_ADDRESS, else a fresh local Ray instance)",
    )


def run_command(args: argparse.Namespace) -> int:
    from runners.spec.load import load_spec_with_text

    spec, text = load_spec_with_text(args.spec, args.overrides)
    from runners.sweep.run import run_sweep  # Ray, MLflow, torch: once the spec is good

    result = run_sweep(
        spec,
        text,
        address=args.address,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        overwrite=args.overwrite,
    )
    return _print_result(result)


def resume_command(args: argparse.Namespace) -> int:
    from runners.sweep.run import resume_sweep

    return _print_result(resume_sweep(args.name, storage=args.storage, address=args.address))


def _print_result(result) -> int:
    """The summary; the exit code: 0 when every trial ended as the spec allows, 1 when a trial
    failed or the driver stopped before every trial ended."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.statuses.items()))
    print(f"\nsweep {result.name}: {counts or 'no trials'}")
    print(
        f"MLflow: {result.tracking_uri}, experiment {result.experiment_id}, "
        f"parent run {result.parent_run_id}"
    )
    if result.failed:
        print(
            f"{len(result.failed)} trial(s) failed (the full traceback is the artifact "
            "error.txt of each trial's MLflow run):"
        )
        for line in result.failed:
            print(f"  {line}")
    if not result.complete:
        from runners.storage.paths import shell_arg

        print(
            f"not every trial ended; continue with: selab resume {result.name} "
            f"--storage {shell_arg(result.storage)}"
        )
    return result.exit_code


def validate_command(args: argparse.Namespace) -> int:
    from runners.spec.load import load_spec
    from runners.spec.points import count_trials

    for path in args.spec:
        spec = load_spec(path, args.overrides)
        from runners.sweep.preflight import preflight  # torch: once a spec is good

        checked = preflight(spec, address=args.address, folder_must_be_free=False)
        spec, points, total = checked.spec, checked.points, count_trials(spec)
        if spec.is_grid:
            seeds = len(spec.seeds)
            print(
                f"{path}: {spec.name}: grid, {len(points)} points x {seeds} seed(s) = "
                f"{total} trials"
            )
            for point in points:
                tag = " (baseline)" if point.baseline else ""
                print(f"  {point.label}{tag}: {point.as_json()}")
        else:
            objectives = ", ".join(f"{o.metric} {o.mode}" for o in spec.search.objectives)
            print(
                f"{path}: {spec.name}: {spec.search.kind} search, {total} trials "
                f"({objectives}) over {', '.join(spec.search.space)}"
            )
        print(f"  data: {_describe_data(spec, checked.dataset)}")
        print(f"  storage: {checked.folder}; MLflow: {checked.tracking_uri}")
        for note in checked.notes:  # worth knowing, not an error: the exit code stays 0
            print(f"note: {note}")
    return 0


def _describe_data(spec, info) -> str:
    where = f" in {spec.data.root}" if spec.data.reads_files else ""
    sizes = f"{info.num_train} train / {info.num_val} val"
    if info.num_test:
        sizes += f" / {info.num_test} test"
    shape = f"{info.in_channels}x{info.image_size}x{info.image_size}"
    memory = (
        "streamed from disk"
        if info.streamed
        else f"{info.memory_bytes / 2**20:.0f} MiB uint8 per trial process"
    )
    return f"{spec.data.name}{where}: {sizes}, {shape}, {memory}"
