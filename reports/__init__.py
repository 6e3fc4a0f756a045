"""Reports on selab sweeps, read from MLflow only (see docs/mlflow-schema.md).

    sweep = load_sweep("sqlite:///mlflow.db", "r-ablation")
    tables = ablation_tables(sweep)            # {axis: numeric frame}
    rec = recommend(sweep, margin=0.01)        # cheapest r shown equivalent to the best
    write_report(sweep, "selab_reports/r-ablation")
"""

from .decide import Arm, Choice, SeVerdict, choose, se_helps
from .frame import Sweep, SweepNotFound, list_sweeps, load_sweep, trials_frame
from .pareto import pareto_front, pareto_mask
from .points import point_summary
from .recommend import Recommendation, recommend
from .report import Report, write_report
from .stats import (
    MeanCI,
    TestResult,
    compare,
    diff_ci,
    equivalence,
    holm,
    mean_ci,
    power,
    seeds_needed,
)
from .tables import ablation_tables, format_table, to_markdown, write_tables
from .units import parse_quantity

__all__ = [
    "Arm",
    "Choice",
    "MeanCI",
    "SeVerdict",
    "choose",
    "equivalence",
    "holm",
    "power",
    "se_helps",
    "seeds_needed",
    "Recommendation",
    "Report",
    "Sweep",
    "SweepNotFound",
    "TestResult",
    "ablation_tables",
    "compare",
    "diff_ci",
    "format_table",
    "list_sweeps",
    "load_sweep",
    "mean_ci",
    "parse_quantity",
    "pareto_front",
    "pareto_mask",
    "point_summary",
    "recommend",
    "to_markdown",
    "trials_frame",
    "write_report",
    "write_tables",
]
