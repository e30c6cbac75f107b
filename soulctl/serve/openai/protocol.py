"""What every API surface's request body is: a pydantic model (vLLM's `protocol.py` is the model)
whose fields are the ones the surface honours. An unknown field is refused by name, a value of
the wrong type or range names its field — one error shape on every surface:
`{"error": {"message", "type": "invalid_request_error", "param", "code"}}` with 400.

Top-level fields are typed here; what is inside them (messages, input items, tools) is read
and checked where the surface reads it, naming the path (`messages[2].content`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from soulctl.engine.sampling import LIMITS, out_of_range
from soulctl.serve.errors import BadRequest

UNKNOWN_FIELD = "unknown_field"
_WHAT = {"int_type": "an integer", "int_parsing": "an integer", "bool_type": "true or false",
         "string_type": "a string", "dict_type": "an object", "list_type": "a list",
         "float_type": "a number", "int_from_float": "an integer", "string_too_short": "a non-empty string",
         "greater_than_equal": "a positive integer", "missing": "given"}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    SURFACE: ClassVar[str] = "API"

    @classmethod
    def parse(cls, body: dict):
        """The body as this model, or BadRequest naming the first field that does not fit."""
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise _refusal(cls, exc.errors()[0]) from None

    def given(self) -> dict[str, Any]:
        """The fields the request set (a field left out is not the same as a null one)."""
        return self.model_dump(exclude_unset=True)


def _refusal(cls, error: dict) -> BadRequest:
    loc = [str(p) for p in error["loc"]]
    param = loc[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:]) if loc else None
    if error["type"] == "extra_forbidden":
        return BadRequest(f"'{param}' is not supported by the soul's {cls.SURFACE} (it is refused, never ignored)",
                          param, code=UNKNOWN_FIELD)
    if error["type"] == "value_error":  # a validator's own words
        return BadRequest(f"'{param}' must be {error['msg'].removeprefix('Value error, ')}", param)
    return BadRequest(f"'{param}' must be {_WHAT.get(error['type'], error['msg'].lower())}", param)


class Sampling(BaseModel):
    """A request's sampling fields over the role's settings (soul.yaml): OpenAI's names and
    llama.cpp's server's extensions, in the limits every source shares (engine/sampling.py)."""

    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None

    @field_validator(*LIMITS, mode="after")
    @classmethod
    def _in_range(cls, value, info):
        if value is not None and (why := out_of_range(info.field_name, value)):
            raise ValueError(why)
        return value

    def sampling(self) -> dict:
        """The fields given, as the engine's Sampling takes them."""
        return {name: value if name in ("seed", "top_k") else float(value)
                for name, value in self.model_dump(exclude_unset=True).items()
                if name in LIMITS and value is not None}
