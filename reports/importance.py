"""Which knob mattered: parameter importance of a search sweep (TPE, NSGA-II) from Optuna's own
evaluators, PED-ANOVA and fANOVA, over the sweep's finished trials, with how stable each is.

The finished trials become an in-memory Optuna study (``optuna.trial.create_trial`` with the
distributions of the spec's ``search.space``); each evaluator gives importances that sum to 1.
Their stability comes from resampling the trials: random subsets of 80% of them, drawn without
replacement (seeded), each evaluated again; the report gives the 2.5-97.5 percentile range of
each knob's importance over the subsets and how often it ranks first. Subsets rather than
bootstrap draws with replacement, because a trial drawn twice is a spurious point mass to
PED-ANOVA's density estimates and to fANOVA's trees. A knob whose range spans much of [0, 1]
is not known to matter or not, whatever its point value.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .frame import FINISHED, coerce

SEARCHES = ("tpe", "nsga2")
MIN_TRIALS = 10  # PED-ANOVA's top 10% needs a few trials; fANOVA's trees need more than that
RESAMPLES = 20
SUBSET = 0.8  # share of the finished trials in each resample
EVALUATORS = ("PED-ANOVA", "fANOVA")


@dataclass
class Importance:
    """Importances per knob and evaluator (``table``), or why there are none (``reason``)."""

    table: pd.DataFrame  # knob, evaluator, importance, low, high, top_share
    trials: int
    resamples: int
    metric: str
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return not self.reason

    def summary(self) -> str:
        """``PED-ANOVA ranks train.lr first (0.61, range 0.35-0.88, first in 85% of 20
        resamples)``."""
        if not self.available:
            return f"Parameter importance: not computed ({self.reason})."
        parts = []
        for name, rows in self.table.groupby("evaluator", sort=False):
            top = rows.sort_values("importance", ascending=False).iloc[0]
            parts.append(
                f"{name} ranks {top['knob']} first ({top['importance']:.2f}, "
                f"{top['low']:.2f}-{top['high']:.2f} over resamples, first in "
                f"{top['top_share']:.0%} of {self.resamples})"
            )
        return (
            f"Parameter importance over {self.trials} finished trials ({self.metric}): "
            + "; ".join(parts)
            + "."
        )


def space_of(spec_text: str | None) -> dict[str, dict[str, Any]]:
    """The spec's ``search.space`` ({knob: {choice: [...]} | {float: [lo, hi], log} | ...})."""
    try:
        spec = yaml.safe_load(spec_text or "") or {}
    except yaml.YAMLError:
        return {}
    search = spec.get("search") if isinstance(spec, dict) else None
    space = search.get("space") if isinstance(search, dict) else None
    return space if isinstance(space, dict) else {}


def distributions(space: dict[str, dict[str, Any]], trials: pd.DataFrame) -> dict[str, Any]:
    """Optuna distributions of the knobs; a stage mask is categorical over the masks that ran,
    a choice over its values as the trials frame types them."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for knob, rule in space.items():
        if knob not in trials or not isinstance(rule, dict):
            continue
        if "choice" in rule:
            out[knob] = CategoricalDistribution([coerce(v) for v in rule["choice"]])
        elif "float" in rule:
            lo, hi = rule["float"]
            out[knob] = FloatDistribution(float(lo), float(hi), log=bool(rule.get("log")))
        elif "int" in rule:
            lo, hi = rule["int"]
            out[knob] = IntDistribution(int(lo), int(hi), log=bool(rule.get("log")))
        elif rule.get("mask"):
            out[knob] = CategoricalDistribution(
                sorted({str(coerce(v)) for v in trials[knob].dropna()})
            )
    return out


def _study(rows: pd.DataFrame, dists: dict[str, Any], metric: str, mode: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per in-memory study
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for _, row in rows.iterrows():
        params = {k: _param(row[k], d) for k, d in dists.items()}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, value=float(row[metric]))
        )
    return study


def _param(value: Any, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        value = coerce(value)
        return value if value in dist.choices else str(value)
    return float(value) if isinstance(dist.low, float) else int(value)


def _evaluate(study: Any, name: str, seed: int) -> dict[str, float]:
    from optuna.importance import (
        FanovaImportanceEvaluator,
        PedAnovaImportanceEvaluator,
        get_param_importances,
    )

    evaluator = (
        PedAnovaImportanceEvaluator()
        if name == "PED-ANOVA"
        else FanovaImportanceEvaluator(seed=seed)
    )
    with warnings.catch_warnings():  # experimental-feature notices, once per call
        warnings.simplefilter("ignore")
        return dict(get_param_importances(study, evaluator=evaluator, normalize=True))


def _finished(trials: pd.DataFrame, metric: str, knobs: list[str]) -> pd.DataFrame:
    done = trials[trials["status"] == FINISHED] if "status" in trials else trials
    values = pd.to_numeric(done.get(metric), errors="coerce")
    return done[np.isfinite(values.astype(float)) & done[knobs].notna().all(axis=1)]


def parameter_importance(
    trials: pd.DataFrame,
    spec_text: str | None,
    search: str,
    metric: str = "val_acc",
    mode: str = "max",
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Importance:
    """Importance of each knob of a search sweep; ``reason`` says why there is none (a grid,
    too few finished trials, no space in the spec)."""
    empty = pd.DataFrame(columns=["knob", "evaluator", "importance", "low", "high", "top_share"])
    if search not in SEARCHES:
        return Importance(
            empty,
            0,
            0,
            metric,
            f"a {search} sweep, not a search: the ablation "
            "tables compare its configurations directly",
        )
    dists = distributions(space_of(spec_text), trials)
    if len(dists) < 2:
        return Importance(empty, 0, 0, metric, "fewer than 2 knobs in the spec's search.space")
    done = _finished(trials, metric, list(dists))
    if len(done) < MIN_TRIALS:
        return Importance(
            empty,
            len(done),
            0,
            metric,
            f"{len(done)} finished trials, at least {MIN_TRIALS} needed",
        )
    rng = np.random.default_rng(seed)
    rows = []
    for name in EVALUATORS:
        point = _evaluate(_study(done, dists, metric, mode), name, seed)
        size = max(MIN_TRIALS, round(SUBSET * len(done)))
        draws = [
            _evaluate(
                _study(done.iloc[rng.choice(len(done), size, replace=False)], dists, metric, mode),
                name,
                seed + b,
            )
            for b in range(resamples)
        ]
        rows += _rows(name, point, draws, list(dists))
    return Importance(pd.DataFrame(rows), len(done), resamples, metric)


def _rows(
    name: str, point: dict[str, float], draws: list[dict[str, float]], knobs: list[str]
) -> list[dict[str, Any]]:
    firsts = [max(d, key=d.get) if d else None for d in draws]
    out = []
    for knob in knobs:
        values = np.array([d.get(knob, 0.0) for d in draws])
        out.append(
            {
                "knob": knob,
                "evaluator": name,
                "importance": point.get(knob, 0.0),
                "low": float(np.percentile(values, 2.5)) if values.size else math.nan,
                "high": float(np.percentile(values, 97.5)) if values.size else math.nan,
                "top_share": float(np.mean([f == knob for f in firsts])) if firsts else math.nan,
            }
        )
    return sorted(out, key=lambda r: -r["importance"])
