"""Reports on selab sweeps, read from MLflow only (see docs/mlflow-schema.md).

    sweep = load_sweep("sqlite:///mlflow.db", "r-ablation")
    tables = ablation_tables(sweep)            # {axis: numeric frame}
    rec = recommend(sweep, margin=0.01)        # cheapest r shown equivalent to the best
    write_report(sweep, "selab_reports/r-ablation")

Names are imported lazily (PEP 562): ``reports.stats`` and ``reports.best`` need only numpy,
scipy and statsmodels, so a racing searcher can import them without pandas, matplotlib or
MLflow coming along.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "Arm": ".decide",
    "Choice": ".decide",
    "SeVerdict": ".decide",
    "choose": ".decide",
    "se_helps": ".decide",
    "BestComparison": ".best",
    "compare_with_best": ".best",
    "Sweep": ".frame",
    "SweepNotFound": ".frame",
    "list_sweeps": ".frame",
    "load_sweep": ".frame",
    "trials_frame": ".frame",
    "pareto_front": ".pareto",
    "pareto_mask": ".pareto",
    "point_summary": ".points",
    "Recommendation": ".recommend",
    "recommend": ".recommend",
    "Report": ".report",
    "write_report": ".report",
    "MeanCI": ".stats",
    "TestResult": ".stats",
    "compare": ".stats",
    "diff_ci": ".stats",
    "equivalence": ".stats",
    "holm": ".stats",
    "mean_ci": ".stats",
    "power": ".stats",
    "seeds_needed": ".stats",
    "ablation_tables": ".tables",
    "format_table": ".tables",
    "to_markdown": ".tables",
    "write_tables": ".tables",
    "parse_quantity": ".units",
    "compare_sweeps": ".multi",
    "publish_summary": ".publish",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    try:  # a sub-module, as `reports.report.ARTIFACT_DIR` reads it
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


class _Package(types.ModuleType):
    """Importing the sub-module `reports.recommend` binds it to the package's name
    `recommend`, which means the function (as when this package imported everything at once):
    keep the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _EXPORTS:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
