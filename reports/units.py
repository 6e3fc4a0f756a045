"""Reading and writing counts such as FLOPs and parameters (40M, 1.2G) for humans."""

from __future__ import annotations

import math
import re

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
# "1.2G", "40M", "500k", "3e9", "1.2GFLOPs", "25M params": the unit word after the suffix is
# tolerated because users paste values from the report itself.
_QUANTITY = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)\s*(?:flops?|params?)?\s*$", re.I
)


def parse_quantity(text: str | float | int) -> float:
    """Parse a positive count such as ``40M`` or ``1.2G`` (k=1e3, M=1e6, G=1e9, T=1e12).

    A lower-case ``m`` means mega too: milli-FLOPs make no sense, and users type 40m.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _QUANTITY.match(str(text))
        if not match:
            raise ValueError(
                f"cannot read {text!r} as a count; use a number with an optional suffix "
                "k, M, G or T, e.g. 40M or 1.2G"
            )
        value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a budget must be a positive number, got {text!r}")
    return value


def scale_for(values: list[float] | float) -> tuple[float, str]:
    """Divisor and prefix (k/M/G) that keep the largest value readable (1 to 999)."""
    vals = [values] if isinstance(values, (int, float)) else list(values)
    finite = [abs(v) for v in vals if v is not None and math.isfinite(v)]
    top = max(finite) if finite else 0.0
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if top >= div:
            return div, prefix
    return 1.0, ""


def human(value: float | None, digits: int = 3) -> str:
    """``28088024`` -> ``28.1M``; NaN/None -> ``n/a``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    div, prefix = scale_for(value)
    return f"{value / div:.{digits}g}{prefix}"
