"""The sweep's progress table in the terminal: Tune's table reporter with selab's columns, and
the sweep's own folder named where Tune would name its temporary driver folder."""

from __future__ import annotations

from typing import Any

from ray.tune import CLIReporter

from runners import compat
from runners.spec.points import SHORT_NAMES
from runners.spec.sweep import SweepSpec

_TUNE_LOGDIR = "Result logdir: "


class SweepReporter(CLIReporter):
    """CLIReporter whose "Result logdir" line (Ray's session folder of the driver, which holds
    nothing a user needs) names the sweep's folder: where its results, checkpoints and journal
    are kept and what `selab resume` / `selab sync` take."""

    def __init__(self, sweep_folder: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sweep_folder = sweep_folder

    def report(self, trials: list[Any], done: bool, *sys_info: str) -> None:
        text = compat.reporter_progress_text(self, trials, done, *sys_info)
        lines = [line for line in text.split("\n") if not line.startswith(_TUNE_LOGDIR)]
        if len(lines) < len(text.split("\n")):
            at = next((i for i, line in enumerate(lines) if line.startswith("Number of trials")),
                      len(lines))
            lines.insert(at, f"Sweep folder: {self.sweep_folder}")
        compat.reporter_print(self, "\n".join(lines))


def progress_reporter(spec: SweepSpec, sweep_folder: str) -> SweepReporter:
    params = {
        f"point/{key}": SHORT_NAMES.get(key, key.rsplit(".", 1)[-1])
        for key in spec.search.varied_keys
    }
    params["seed"] = "seed"
    metrics = {"epoch": "epoch", "train_loss": "loss", "val_acc": "val_acc",
               "best_val_acc": "best"}
    for objective in spec.search.objectives:
        metrics.setdefault(objective.metric, objective.metric)
    return SweepReporter(
        sweep_folder,
        parameter_columns=params,
        metric_columns=metrics,
        max_report_frequency=20,
        max_progress_rows=30,
    )
