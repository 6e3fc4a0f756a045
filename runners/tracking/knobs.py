"""The knobs a sweep varies, as a reader sees them beside each trial: a short name per knob
("r" for arch.se.reduction, "lr" for train.lr) and the trial's value in words ("8", "0.0457",
"on"/"off" for a switch). A knob the trial's point does not set shows the value the trial runs
with (the spec's), except an SE setting of a trial without SE (the no-SE baseline), which has
none: "—".

The same names and words head the progress table's columns (runners.sweep.progress) and are
the tags `selab.knob.<name>` of each trial run in MLflow, which the runs view that
`selab report` saves shows as columns (docs/mlflow-schema.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runners.spec.points import SHORT_NAMES, format_value

KNOB_TAG_PREFIX = "selab.knob."
NOT_SET = "—"


def short_names(varied: Iterable[str]) -> dict[str, str]:
    """{dotted key: short name}: the last part of the key (or SHORT_NAMES'), the whole key
    where two knobs would share a short name."""
    keys = list(varied)
    short = {key: SHORT_NAMES.get(key, key.rsplit(".", 1)[-1]) for key in keys}
    taken = list(short.values())
    return {key: name if taken.count(name) == 1 else key for key, name in short.items()}


def knob_text(value: Any) -> str:
    """A knob's value in words: on/off for a switch (also the params' "true"/"false"), the
    number or name otherwise."""
    if value is None or value == "":
        return NOT_SET
    if isinstance(value, bool) or value in ("true", "false"):
        return "on" if value in (True, "true") else "off"
    return format_value(value)


def _without_se(overrides: Mapping[str, Any], params: Mapping[str, str]) -> bool:
    enabled = overrides.get("arch.se.enabled", params.get("arch.se.enabled", "true"))
    attention = overrides.get("arch.attention", params.get("arch.attention", "se"))
    return enabled in (False, "false") or attention == "none"


def knob_values(
    varied: Iterable[str], overrides: Mapping[str, Any], params: Mapping[str, str]
) -> dict[str, str]:
    """{short name: value in words} of every varied knob of one trial: its point's override,
    else ``params`` (the trial's flat params, or the fixed spec's)."""
    off = _without_se(overrides, params)
    out = {}
    for key, name in short_names(varied).items():
        if off and key.startswith("arch.se.") and key != "arch.se.enabled":
            out[name] = NOT_SET
        else:
            out[name] = knob_text(overrides[key] if key in overrides else params.get(key))
    return out


def knob_tags(
    varied: Iterable[str], overrides: Mapping[str, Any], params: Mapping[str, str]
) -> dict[str, str]:
    """The MLflow tags of a trial run that name its knobs: selab.knob.<short name>."""
    return {
        KNOB_TAG_PREFIX + name: value
        for name, value in knob_values(varied, overrides, params).items()
    }
