"""The base of the typed config sections (`data:`, `train:`): strict, with errors naming fields."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from search_space.errors import from_validation_error


class ConfigModel(BaseModel):
    """Base of the config sections: unknown keys are errors, and so is every bad value.

    `model_validate` raises `ConfigError` with one line per bad field, named by its dotted path
    (`data.val_fraction: ...`). Nested inside a bigger model (the sweep spec), errors surface in
    that model's ValidationError with the same dotted locations; the plain constructor, meant
    for code rather than user input, raises pydantic's ValidationError (also a ValueError).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    section: ClassVar[str] = ""

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any):  # type: ignore[override]
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as err:
            raise from_validation_error(err, f"{cls.section}.", cls) from None
