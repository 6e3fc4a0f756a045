"""Notes beside a report's rows: a row that trained at chance, and what may explain it.

A row trained at chance when its validation accuracy is not significantly above 1/num_classes:
scipy's exact one-sided binomial test of H0 "accuracy = 1/K" against "greater", on the n images
of the validation split, Bonferroni-corrected over the rows the table tests; its margin is the
exact (Clopper-Pearson) upper confidence bound on the accuracy at the corrected level. Seeds
share one validation split, so their images are not independent draws: the test takes the mean
accuracy over seeds on n images (not n x seeds), which only makes "at chance" easier to say.

Beside such a row the note adds what search_space knows about the network at init
(`search_space.identity_path.identity_path_note`: POST and Identity gate the identity path).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scipy import stats as sps

# Params whose empty value means "not set" (None), not the word "none".
_OPTIONAL = {"depth", "groups", "se.gate_init"}


@dataclass(frozen=True)
class ChanceTest:
    accuracy: float
    n: int  # validation images
    chance: float  # 1 / num_classes
    p_value: float  # one-sided, uncorrected
    alpha: float  # after the correction
    upper: float  # upper confidence bound on the accuracy at level 1 - alpha

    @property
    def at_chance(self) -> bool:
        return self.p_value > self.alpha

    def describe(self, rows: int) -> str:
        return (
            f"trained at chance: validation accuracy {self.accuracy:.1%} on {self.n} images"
            f" is not above 1/{round(1 / self.chance)} = {self.chance:.1%} (exact one-sided"
            f" binomial test, p = {self.p_value:.2g}, Bonferroni over {rows} rows; accuracy"
            f" <= {self.upper:.1%} at {1 - self.alpha:.1%} confidence)"
        )


def chance_test(
    accuracy: float, n_val: int, num_classes: int, rows: int = 1, alpha: float = 0.05
) -> ChanceTest:
    """Is `accuracy` (a fraction, mean over seeds) on `n_val` images above 1/num_classes?"""
    if n_val < 1 or num_classes < 2 or rows < 1:
        raise ValueError(
            f"need n_val >= 1, num_classes >= 2, rows >= 1; got {n_val}, {num_classes}, {rows}"
        )
    chance, level = 1.0 / num_classes, alpha / rows
    correct = min(max(round(accuracy * n_val), 0), n_val)
    above = sps.binomtest(correct, n_val, chance, alternative="greater")
    upper = (
        sps.binomtest(correct, n_val, chance, alternative="less")
        .proportion_ci(confidence_level=1 - level, method="exact")
        .high
    )
    return ChanceTest(correct / n_val, n_val, chance, float(above.pvalue), level, float(upper))


def arch_from_params(params: Mapping[str, Any]) -> Any:
    """The ArchConfig of a trial's flat MLflow params (`arch.*`), or None if they do not make
    one (a run from an older selab, say)."""
    from search_space.config import ArchConfig
    from search_space.errors import ConfigError

    tree: dict[str, Any] = {}
    for key, value in params.items():
        if not key.startswith("arch."):
            continue
        field = key.removeprefix("arch.")
        node = tree
        *parents, leaf = field.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _value(field, value)
    se = tree.get("se", {})
    if str(se.get("enabled", "true")).lower() == "false" or tree.get("attention") == "none":
        se.pop("stages", None)  # written as all 0s without attention: not a choice of stages
    try:
        return ArchConfig.parse(tree)
    except (ConfigError, TypeError):
        return None


def _value(field: str, value: Any) -> Any:
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if field == "se.stages" and not missing and set(str(value).split(",")) == {"1"}:
        return None  # every stage: how a config says "all"
    if field in _OPTIONAL:
        return None if missing or str(value).strip() in ("", "none") else value
    return "none" if missing else value


def row_note(
    params: Mapping[str, Any],
    accuracy: float,
    n_val: int,
    num_classes: int,
    rows: int,
    alpha: float = 0.05,
) -> str | None:
    """The note beside a row that trained at chance (None for a row that did not)."""
    from search_space.identity_path import identity_path_note

    test = chance_test(accuracy, n_val, num_classes, rows, alpha)
    if not test.at_chance:
        return None
    arch = arch_from_params(params)
    why = identity_path_note(arch) if arch is not None else None
    return test.describe(rows) + (f". {why}" if why else "")
