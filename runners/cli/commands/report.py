"""`selab report NAME`: tables, plots and a recommendation for one sweep, from MLflow;
`selab report A B C` (or `selab report A --by KEY`): its configurations compared across
several tasks (reports.multi)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from runners.tracking.store import DEFAULT_TRACKING_URI, choose_tracking_uri
from search_space.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="write an HTML report (tables, plots, recommendation) for a sweep",
        description="Read a sweep from MLflow and write report.html, PNG plots and CSV/Markdown "
        "tables; the files are also logged under report/ of the sweep's parent run.",
    )
    p.add_argument(
        "name",
        nargs="+",
        help="sweep name, or the spec file (.yaml/.yml) that ran it; several names "
        "compare their configurations across the sweeps (tasks)",
    )
    p.add_argument(
        "--by",
        default=None,
        metavar="KEY",
        help="compare configurations across the values of this varied key of one "
        "sweep (e.g. arch.backbone or data.name), each value a task",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: the spec's tracking.uri, else "
        f"$MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI} in the current "
        "directory)",
    )
    p.add_argument(
        "--budget-flops",
        default=None,
        help="FLOP budget per image for the budget pick, e.g. 40M or 1.2G",
    )
    p.add_argument(
        "--budget-params", default=None, help="parameter budget for the budget pick, e.g. 2.5M"
    )
    # reports.cost.COSTS, named here so that `selab report --help` imports no pandas
    p.add_argument(
        "--cost",
        choices=("flops", "params", "latency", "latency_ratio"),
        default="flops",
        help="the cost the Pareto pick minimises among equally accurate "
        "configurations: fvcore FLOPs (default), parameters, measured latency "
        "at batch 1, or latency / the plain network's (falls back to FLOPs "
        "when the trials measured no time)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="equivalence margin in accuracy points: configurations within ±MARGIN "
        "of the best count as equally good (default: the raced sweep's margin, "
        "else 1.0)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="family-wise error rate of every claim (default 0.05)",
    )
    p.add_argument("--out", default=None, help="output folder (default: selab_reports/NAME)")
    p.add_argument(
        "--no-log", action="store_true", help="do not log the report as artifacts of the parent run"
    )
    p.set_defaults(func=handle)


def _from_spec(path: Path) -> tuple[str, str | None, str | None]:
    from runners.spec.yaml_input import read_yaml_file  # the one YAML reader of user input

    if not path.is_file():
        raise ConfigError(f"spec file not found: {path}")
    spec = read_yaml_file(path, "spec")
    if not isinstance(spec, dict) or not spec.get("name"):
        raise ConfigError(f"{path}: name: missing (the spec must name its sweep)")
    tracking = spec.get("tracking") or {}
    if not isinstance(tracking, dict):
        raise ConfigError(f"{path}: tracking: must be a mapping")
    if not isinstance(tracking.get("uri") or "", str):
        raise ConfigError(f"{path}: tracking.uri: must be a string, e.g. sqlite:///mlflow.db")
    return str(spec["name"]), tracking.get("uri"), tracking.get("experiment")


def _budget(text: str | None, flag: str) -> float | None:
    from reports.units import parse_quantity

    if text is None:
        return None
    try:
        return parse_quantity(text)
    except ValueError as err:
        raise ConfigError(f"{flag}: {err}") from err


def _check_uri(uri: str) -> None:
    """A URI MLflow can read a sweep from, before MLflow opens it (its errors for a malformed
    one are tracebacks): a server, a SQLite file, a store folder, or a scheme it knows."""
    from urllib.parse import urlsplit

    from runners import compat

    where = f"--tracking-uri (or the spec's tracking.uri, $MLFLOW_TRACKING_URI): {uri}"
    examples = "e.g. sqlite:///mlflow.db or http://127.0.0.1:5000"
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError as err:
        raise ConfigError(f"{where}: not a valid URI ({err}); {examples}") from None
    scheme = parts.scheme.lower() if "://" in uri else ""
    if scheme in ("http", "https") and not host:
        raise ConfigError(f"{where}: names no host; {examples}")
    if scheme in ("", "file") and not Path(parts.path if scheme else uri).is_dir():
        raise ConfigError(f"{where}: neither a tracking URI nor an MLflow store folder; {examples}")
    if scheme not in ("", "file", "http", "https", "sqlite") and not compat.has_tracking_store(uri):
        raise ConfigError(
            f"{where}: unknown scheme; MLflow stores are "
            f"{', '.join(s for s in compat.tracking_store_schemes() if s)} "
            f"({examples})"
        )


def _check_store(uri: str) -> None:
    _check_uri(uri)
    # Opening a missing SQLite file would silently create an empty store; say so instead.
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if str(db) != ":memory:" and not db.is_file():
            raise ConfigError(
                f"--tracking-uri: no MLflow store at {db.resolve()} ({uri}); "
                "pass --tracking-uri or set MLFLOW_TRACKING_URI"
            )


def _keep_models(uri: str, sweep: Any, report: Any) -> int:
    """Log to MLflow the kept models of the trials of the recommended configuration and of
    the accuracy/FLOPs Pareto front, when the spec's tracking.models is `recommended`."""
    import yaml
    from mlflow import MlflowClient

    from runners.storage.models import keep_models

    spec = yaml.safe_load(sweep.spec_text() or "") or {}
    if ((spec.get("tracking") or {}).get("models") or "recommended") != "recommended":
        return 0
    keys = {report.recommendation.pick.point_key}
    for front in report.fronts.values():
        keys |= set(front["point_key"])
    trials = sweep.trials
    chosen = trials[trials["finished"] & trials["point_key"].isin(keys)]
    client = MlflowClient(uri)
    return len(keep_models(client, [client.get_run(r) for r in chosen["run_id"]]))


def _sweep_name(text: str) -> tuple[str, str | None, str | None]:
    """(sweep name, the spec's tracking.uri, its tracking.experiment) of a name or spec file."""
    if text.lower().endswith((".yaml", ".yml")):
        return _from_spec(Path(text))
    return text, None, None


def _check_levels(args: argparse.Namespace) -> None:
    if args.margin is not None and not 0 < args.margin < 100:
        raise ConfigError(f"--margin: accuracy points between 0 and 100, got {args.margin}")
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha: a probability between 0 and 1, got {args.alpha}")


def handle(args: argparse.Namespace) -> int:
    # Artifact downloads (the spec, analyzed figures) are details: no MLflow progress bars.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if len(args.name) > 1 or args.by is not None:
        return handle_many(args)
    name, spec_uri, experiment = _sweep_name(args.name[0])
    uri = choose_tracking_uri(args.tracking_uri, spec_uri)
    budget_flops = _budget(args.budget_flops, "--budget-flops")
    budget_params = _budget(args.budget_params, "--budget-params")
    _check_store(uri)
    _check_levels(args)
    margin = args.margin / 100 if args.margin is not None else None

    import reports  # heavy (pandas, scipy, matplotlib, mlflow): only when the command runs

    try:
        sweep = reports.load_sweep(uri, name, experiment=experiment)
    except reports.SweepNotFound as err:
        listing = "\n".join(f"  {s}" for s in err.available) or "  (none)"
        raise ConfigError(f"name: no sweep {name!r} in {uri}; sweeps there:\n{listing}") from err
    out = Path(args.out) if args.out else Path("selab_reports") / name
    report = reports.write_report(
        sweep,
        out,
        budget_flops=budget_flops,
        budget_params=budget_params,
        log_to_mlflow=not args.no_log,
        alpha=args.alpha,
        margin=margin,
        cost=args.cost,
    )
    counts = ", ".join(f"{n} {s}" for s, n in sweep.status_counts().items()) or "no trials"
    print(f"sweep {name}: {counts}")
    if report.recommendation is not None:
        print(report.recommendation.as_text())
    else:
        print("No recommendation yet: no SE configuration has a finished trial.")
    if report.recommendation is not None and not args.no_log:
        kept = _keep_models(uri, sweep, report)
        if kept:
            print(
                f"models of the recommended configuration and the Pareto front: {kept} "
                "logged to MLflow (the experiment's Models view; each is its trial run's "
                "model)"
            )
    print(f"report: {report.html_path}")
    if report.logged:
        print(f"logged under {reports.report.ARTIFACT_DIR}/ of run {sweep.run_id}")
    return 0


def handle_many(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    """Configurations compared across sweeps, or across the values of one sweep's --by key."""
    named = [_sweep_name(text) for text in args.name]
    names = [name for name, _, _ in named]
    if args.by is not None and len(names) != 1:
        raise ConfigError(
            f"--by: splits one sweep into tasks; give one sweep name, got "
            f"{len(names)} ({', '.join(names)})"
        )
    if len(names) != len(set(names)):
        raise ConfigError(f"name: a sweep is named twice ({', '.join(names)})")
    for flag, value in (
        ("--budget-flops", args.budget_flops),
        ("--budget-params", args.budget_params),
        ("--margin", args.margin),
    ):
        if value is not None:
            raise ConfigError(
                f"{flag}: applies to the report of one sweep, not to a comparison across tasks"
            )
    uri = choose_tracking_uri(args.tracking_uri, next((u for _, u, _ in named if u), None))
    _check_store(uri)
    _check_levels(args)
    stem = f"{names[0]}-by-{args.by}" if args.by else "-".join(names)
    out = Path(args.out) if args.out else Path("selab_reports") / stem

    import reports.multi

    try:
        comparison, files = reports.multi.report_many(uri, names, out, by=args.by, alpha=args.alpha)
    except reports.SweepNotFound as err:
        listing = "\n".join(f"  {s}" for s in err.available) or "  (none)"
        raise ConfigError(
            f"name: no sweep {err.name!r} in {uri}; sweeps there:\n{listing}"
        ) from err
    except KeyError as err:
        raise ConfigError(f"--by: {err.args[0]}") from None
    except ValueError as err:
        raise ConfigError(f"{'--by' if args.by else 'name'}: {err}") from None
    for line in comparison.lines:
        print(line)
    print(f"files in {out}: {', '.join(path.name for path in files)}")
    return 0
