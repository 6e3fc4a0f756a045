"""`selab report NAME`: tables, plots and a recommendation for one sweep, from MLflow."""

from __future__ import annotations

import argparse
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
    p.add_argument("name", help="sweep name, or the spec file (.yaml/.yml) that ran it")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: the spec's tracking.uri, else "
                        f"$MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI} in the current "
                        "directory)")
    p.add_argument("--budget-flops", default=None,
                   help="FLOP budget per image for the budget pick, e.g. 40M or 1.2G")
    p.add_argument("--budget-params", default=None,
                   help="parameter budget for the budget pick, e.g. 2.5M")
    p.add_argument("--margin", type=float, default=None,
                   help="equivalence margin in accuracy points: configurations within ±MARGIN "
                        "of the best count as equally good (default: the raced sweep's margin, "
                        "else 1.0)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="family-wise error rate of every claim (default 0.05)")
    p.add_argument("--out", default=None, help="output folder (default: selab_reports/NAME)")
    p.add_argument("--no-log", action="store_true",
                   help="do not log the report as artifacts of the parent run")
    p.set_defaults(func=handle)


def _from_spec(path: Path) -> tuple[str, str | None, str | None]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"spec file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(spec, dict) or not spec.get("name"):
        raise ConfigError(f"{path}: name: missing (the spec must name its sweep)")
    tracking = spec.get("tracking") or {}
    if not isinstance(tracking, dict):
        raise ConfigError(f"{path}: tracking: must be a mapping")
    return str(spec["name"]), tracking.get("uri"), tracking.get("experiment")


def _budget(text: str | None, flag: str) -> float | None:
    from reports.units import parse_quantity

    if text is None:
        return None
    try:
        return parse_quantity(text)
    except ValueError as err:
        raise ConfigError(f"{flag}: {err}") from err


def _check_store(uri: str) -> None:
    # Opening a missing SQLite file would silently create an empty store; say so instead.
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if str(db) != ":memory:" and not db.is_file():
            raise ConfigError(f"--tracking-uri: no MLflow store at {db.resolve()} ({uri}); "
                              "pass --tracking-uri or set MLFLOW_TRACKING_URI")


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


def handle(args: argparse.Namespace) -> int:
    name, spec_uri, experiment = args.name, None, None
    if name.lower().endswith((".yaml", ".yml")):
        name, spec_uri, experiment = _from_spec(Path(args.name))
    uri = choose_tracking_uri(args.tracking_uri, spec_uri)
    budget_flops = _budget(args.budget_flops, "--budget-flops")
    budget_params = _budget(args.budget_params, "--budget-params")
    _check_store(uri)
    if args.margin is not None and not 0 < args.margin < 100:
        raise ConfigError(f"--margin: accuracy points between 0 and 100, got {args.margin}")
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha: a probability between 0 and 1, got {args.alpha}")
    margin = args.margin / 100 if args.margin is not None else None

    import reports  # heavy (pandas, scipy, matplotlib, mlflow): only when the command runs

    try:
        sweep = reports.load_sweep(uri, name, experiment=experiment)
    except reports.SweepNotFound as err:
        listing = "\n".join(f"  {s}" for s in err.available) or "  (none)"
        raise ConfigError(f"name: no sweep {name!r} in {uri}; sweeps there:\n{listing}") from err
    out = Path(args.out) if args.out else Path("selab_reports") / name
    report = reports.write_report(sweep, out, budget_flops=budget_flops,
                                  budget_params=budget_params, log_to_mlflow=not args.no_log,
                                  alpha=args.alpha, margin=margin)
    counts = ", ".join(f"{n} {s}" for s, n in sweep.status_counts().items()) or "no trials"
    print(f"sweep {name}: {counts}")
    if report.recommendation is not None:
        for line in report.recommendation.lines():
            print(line)
        print(report.recommendation.rule)
    else:
        print("No recommendation yet: no SE configuration has a finished trial.")
    if report.recommendation is not None and not args.no_log:
        kept = _keep_models(uri, sweep, report)
        if kept:
            print(f"models of the recommended configuration and the Pareto front: {kept} "
                  "logged to MLflow (model/model.pt of their trial runs)")
    print(f"report: {report.html_path}")
    if report.logged:
        print(f"logged under {reports.report.ARTIFACT_DIR}/ of run {sweep.run_id}")
    return 0
