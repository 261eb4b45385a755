"""Errors every face reports the same way: each carries its HTTP status, and a spec error
names each bad field (so a form can show every error beside its field)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

_TYPE_TAG = re.compile(r"^(str|int|float|bool|constrained-\w+|.*\[.*\])$")
_NAMED = re.compile(r"^(\w+): (.+)$", re.S)


#: pydantic's error types said as the product says them (the value given, then what is wrong)
_WORDS = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "int_parsing": "{value} is not a whole number", "int_type": "{value} is not a whole number",
    "int_from_float": "{value} is not a whole number",
    "float_parsing": "{value} is not a number", "float_type": "{value} is not a number",
    "bool_parsing": "{value} is not true or false", "bool_type": "{value} is not true or false",
    "string_type": "{value} is not text",
    "list_type": "{value} is not a list", "dict_type": "{value} is not an object of names and values",
    "greater_than_equal": "{value} is less than {ge}, the least allowed",
    "greater_than": "{value} is not more than {gt}",
    "less_than_equal": "{value} is more than {le}, the most allowed",
    "less_than": "{value} is not less than {lt}",
    "too_long": "{actual_length} given, at most {max_length} allowed",
    "too_short": "{actual_length} given, at least {min_length} needed",
    "string_too_long": "longer than {max_length} characters",
    "string_too_short": "shorter than {min_length} characters",
    "literal_error": "{value} is not one of {expected}", "enum": "{value} is not one of {expected}",
    "string_pattern_mismatch": "{value} is not of the form this field takes",
}


def in_our_words(err: Any) -> str:
    """One pydantic error as the product says it: the value given and what is wrong with it
    ("'abc' is not a number"), not pydantic's "Input should be a valid number"."""
    kind, message = err["type"], err["msg"]
    if kind == "value_error":  # the spec's own validators already speak the product's words
        return message.removeprefix("Value error, ")
    value = repr(err.get("input"))
    words = _WORDS.get(kind)
    if words is not None:
        try:
            return words.format(value=value if len(value) <= 60 else value[:57] + "...", **err.get("ctx", {}))
        except (KeyError, IndexError):
            pass
    return message.replace("Input should be", "must be").removeprefix("Value error, ")


class FieldError(BaseModel):
    field: str
    message: str


class JobsError(Exception):
    """A domain error every face reports the same way: `status` is its HTTP status."""

    status: int = 500

    def public(self) -> dict[str, Any]:
        return {"message": str(self)}


class SpecError(JobsError, ValueError):
    """A submitted spec (or query) that cannot be served; each bad field is named once (its
    messages joined), so a form can show every error beside its field."""

    status = 400

    def __init__(self, errors: list[FieldError]):
        by_field: dict[str, list[str]] = {}
        for err in errors:
            messages = by_field.setdefault(err.field, [])
            if err.message not in messages:
                messages.append(err.message)
        self.errors = [FieldError(field=f, message="; ".join(m)) for f, m in by_field.items()]
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))

    def public(self) -> dict[str, Any]:
        return {"message": str(self), "errors": [e.model_dump() for e in self.errors]}

    def names(self, field: str) -> bool:
        return any(e.field == field for e in self.errors)

    def plus(self, more: SpecError) -> SpecError:
        """These errors and those of `more` on other fields (a field keeps the error it has)."""
        return SpecError(self.errors + [e for e in more.errors if not self.names(e.field)])

    @classmethod
    def one(cls, field: str, message: str) -> SpecError:
        return cls([FieldError(field=field, message=message)])

    @classmethod
    def from_validation(cls, exc: ValidationError) -> SpecError:
        errors = []
        for err in exc.errors():
            # Union members add their type to the location ("command.list[str]"): drop them.
            parts = [str(p) for p in err["loc"] if not _TYPE_TAG.match(str(p))]
            message = in_our_words(err)
            if not parts and (named := _NAMED.match(message)):  # a rule over several fields names one
                parts, message = [named.group(1)], named.group(2)
            errors.append(FieldError(field=".".join(parts) or "body", message=message))
        return cls(errors)



class JobNotFound(JobsError, LookupError):
    """No job (or artifact) by that name."""

    status = 404


class JobConflict(JobsError, RuntimeError):
    """The job is in a state that does not allow this."""

    status = 409

