"""One error type for every bad input, so the CLI can print it without a traceback."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration or spec value is invalid; the message names the field and what is allowed."""


def allowed(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


def from_validation_error(err: ValidationError, prefix: str = "") -> ConfigError:
    """Turn pydantic's report into one readable message per bad field (dotted path first)."""
    lines = []
    for item in err.errors():
        wrappers = ("function-after", "function-before")
        path = ".".join(str(p) for p in item["loc"] if p not in wrappers)
        msg = item["msg"].removeprefix("Value error, ")
        if not path:  # a whole-model check: its message starts with the field it is about
            lines.append(f"{prefix}{msg}")
            continue
        field = f"{prefix}{path}"
        if item["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        elif item["type"] == "literal_error":
            expected = item.get("ctx", {}).get("expected", "")
            msg = f"got {item.get('input')!r}; allowed: {expected}"
        lines.append(f"{field}: {msg}")
    return ConfigError("\n".join(lines))
