"""The sweep's progress table in the terminal: Tune's table reporter with selab's columns, and
the sweep's own folder named where Tune would name its temporary driver folder.

The varied knobs are shown as the MLflow runs view shows them (runners.tracking.knobs): a
short name per knob and a value on every row ("on"/"off" for a switch, "—" for an SE setting
of the no-SE baseline). A race has no fixed number of trials: the count says how many it
may run at most.
"""

from __future__ import annotations

import re
from typing import Any

from ray.tune import CLIReporter

from runners import compat
from runners.spec.points import count_trials, decode_point, fixed_settings
from runners.spec.sweep import SweepSpec
from runners.tracking.knobs import knob_values, short_names

_TUNE_LOGDIR = "Result logdir: "
_COUNT = re.compile(r"^Number of trials: (\d+)/\S+ ")
KNOB = "knob"  # the shown config's key that holds the knobs' words


class _ShownTrial:
    """A trial as the table shows it: its config's point replaced by its knobs in words.
    Everything else is the trial's own."""

    def __init__(self, trial: Any, knobs: dict[str, str]) -> None:
        self._trial = trial
        self.config = {KNOB: knobs, "seed": trial.config.get("seed")}
        self.last_result = {**(trial.last_result or {}), "config": self.config}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    def __str__(self) -> str:
        return str(self._trial)


class SweepReporter(CLIReporter):
    """CLIReporter whose "Result logdir" line (Ray's session folder of the driver, which holds
    nothing a user needs) names the sweep's folder: where its results, checkpoints and journal
    are kept and what `selab resume` / `selab sync` take."""

    def __init__(
        self,
        sweep_folder: str,
        spec: SweepSpec | None = None,
        fixed_params: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sweep_folder = sweep_folder
        self.spec = spec
        self.fixed_params = fixed_params or {}

    def report(self, trials: list[Any], done: bool, *sys_info: str) -> None:
        # A reporter pickled by an earlier selab (a resumed sweep) has no spec: Tune's columns.
        spec = getattr(self, "spec", None)
        shown = [self._shown(spec, t) for t in trials] if spec is not None else trials
        text = compat.reporter_progress_text(self, shown, done, *sys_info)
        lines = [line for line in text.split("\n") if not line.startswith(_TUNE_LOGDIR)]
        if len(lines) < len(text.split("\n")):
            at = next(
                (i for i, line in enumerate(lines) if line.startswith("Number of trials")),
                len(lines),
            )
            lines.insert(at, f"Sweep folder: {self.sweep_folder}")
        compat.reporter_print(self, "\n".join(_counted(spec, line) for line in lines))

    def _shown(self, spec: SweepSpec, trial: Any) -> _ShownTrial:
        point = decode_point(spec, (trial.config or {}).get("point") or {})
        return _ShownTrial(trial, knob_values(spec.search.varied_keys, point, self.fixed_params))


def _counted(spec: SweepSpec | None, line: str) -> str:
    """Tune counts a race's trials out of "infinite": say how many it may run at most."""
    if spec is None or spec.race is None:
        return line
    return _COUNT.sub(
        lambda m: f"Number of trials: {m.group(1)} of at most {count_trials(spec)} (seeds raced) ",
        line,
    )


def progress_reporter(spec: SweepSpec, sweep_folder: str) -> SweepReporter:
    """The table of a sweep (the spec as preflight checked it)."""
    params = {f"{KNOB}/{name}": name for name in short_names(spec.search.varied_keys).values()}
    params["seed"] = "seed"
    metrics = {"epoch": "epoch", "train_loss": "loss", "val_acc": "val_acc", "best_val_acc": "best"}
    for objective in spec.search.objectives:
        metrics.setdefault(objective.metric, objective.metric)
    return SweepReporter(
        sweep_folder,
        spec,
        # The value of a knob a point does not set: the fixed spec's.
        fixed_settings(spec).flat_params(),
        parameter_columns=params,
        metric_columns=metrics,
        max_report_frequency=20,
        max_progress_rows=30,
        # Tune's default reads its global verbosity when the reporter is built (the table only
        # at verbosity 3, which the Tuner lowers to run's verbose=1): say it, so the table
        # does not depend on whether another Tuner ran in this process before.
        print_intermediate_tables=True,
    )
