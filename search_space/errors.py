"""One error type for every bad input, so the CLI can print it without a traceback.

`from_validation_error` words pydantic's report for a user: one line per bad field, named by
its dotted path in the spec (pydantic's union-member and discriminator labels left out), and
an unknown key answered with the nearest valid one ("did you mean `reduction`?") and the
fields that section has.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

# Parts of pydantic's error locations that name its validators, not a field.
_WRAPPERS = ("function-after", "function-before", "function-wrap", "function-plain")


class ConfigError(ValueError):
    """A configuration or spec value is invalid; the message names the field and what is allowed."""


def allowed(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


def nearest(name: object, candidates: Iterable[str]) -> str | None:
    """The candidate closest to a mistyped `name`, if one is close enough to be meant."""
    matches = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(name: object, fields: Iterable[str], section: str = "") -> str:
    """'unknown field; did you mean `x`? (<section> has: ...)' for the key `name`."""
    fields = list(fields)
    guess = nearest(name, fields)
    where = f"{section} has" if section else "allowed"
    hint = f"; did you mean `{guess}`?" if guess else ""
    return f"unknown field (check its spelling){hint} ({where}: {allowed(fields)})"


def from_validation_error(
    err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> ConfigError:
    """Turn pydantic's report into one readable message per bad field (dotted path first).
    `model`, the model that was validated, lets an unknown key get its nearest valid key."""
    by_field: dict[str, list[str]] = {}  # a union's members each say why: one line, "or"
    for item in err.errors():
        parts, fields, inner = _locate(model, item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        # A whole-model check: its message starts with the field it is about.
        field, _, rest = msg.partition(": ")
        if item["type"] == "value_error" and rest and field in inner:
            parts, msg = [*parts, field], rest
        path = ".".join(str(p) for p in parts)
        if not path:
            by_field.setdefault(f"{prefix}{msg}", [])
            continue
        field = f"{prefix}{path}"
        if item["type"] == "extra_forbidden":
            section = f"{prefix}{'.'.join(str(p) for p in parts[:-1])}".rstrip(".")
            msg = (
                unknown_key_message(parts[-1], fields, section)
                if fields is not None
                else "unknown field (check its spelling)"
            )
        elif item["type"] == "literal_error":
            expected = item.get("ctx", {}).get("expected", "")
            msg = f"got {item.get('input')!r}; allowed: {expected}"
        by_field.setdefault(field, []).append(msg)
    lines = [
        f"{field}: {'; or '.join(dict.fromkeys(msgs))}" if msgs else field
        for field, msgs in by_field.items()
    ]
    return ConfigError("\n".join(lines))


# ----------------------------------------------------------------------------- locations


def _locate(
    model: type[BaseModel] | None, loc: tuple[int | str, ...]
) -> tuple[list[int | str], list[str] | None, list[str]]:
    """(the location as the spec spells it, the fields of the model holding its last part,
    the fields of the model it points at, if it points at one).

    Walks `model`'s annotations along `loc`: a model's field, a dict's key, a list's index;
    the tag of a discriminated union and the label pydantic gives a union's member are
    dropped. Without a model (or where the walk loses track) the parts pass through."""
    parts: list[int | str] = []
    annotation: Any = model
    holder: list[str] | None = None
    for part in loc:
        if part in _WRAPPERS:
            continue
        annotation, keep, holder = _step(annotation, part)
        if keep:
            parts.append(part)
    inner = _strip(annotation)
    if _is_model(inner):
        return parts, holder, [info.alias or name for name, info in inner.model_fields.items()]
    return parts, holder, []


def _is_model(annotation: Any) -> bool:
    """Whether `annotation` is a pydantic model class. Generic aliases (tuple[int, ...]) pass
    isinstance(..., type) on Python 3.10 and make issubclass raise: they are not models."""
    return (
        isinstance(annotation, type)
        and typing.get_origin(annotation) is None
        and issubclass(annotation, BaseModel)
    )


def _step(annotation: Any, part: int | str) -> tuple[Any, bool, list[str] | None]:
    """(the annotation at `part`, whether `part` is a location the user wrote, the fields of
    the model `part` is a key of)."""
    annotation = _strip(annotation)
    if annotation is None:
        return None, True, None
    if _is_model(annotation):
        fields = {
            (info.alias or name): info.annotation for name, info in annotation.model_fields.items()
        }
        return fields.get(str(part)), True, list(fields)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        tagged = {_tag(a): a for a in args if _tag(a) is not None}
        if part in tagged:
            return tagged[part], False, None
        models = [a for a in args if _is_model(_strip(a))]
        if isinstance(part, str) and not models:  # a member's label, e.g. `tuple[int, ...]`
            return None, False, None
        if len(models) == 1:
            return _step(models[0], part)
        return None, True, None
    if origin is dict:
        return (args[1] if len(args) == 2 else None), True, None
    if origin in (list, tuple, set, frozenset):
        return (args[0] if args else None), True, None
    return None, True, None


def _strip(annotation: Any) -> Any:
    """`annotation` without Annotated[...] and without `None` in an optional union."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _strip(members[0])
    return annotation


def _tag(annotation: Any) -> str | None:
    """The pydantic Tag of one member of a discriminated union, if it has one."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    return next((m.tag for m in typing.get_args(annotation)[1:] if hasattr(m, "tag")), None)
