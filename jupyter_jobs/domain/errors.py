"""Errors every face reports the same way: each carries its HTTP status, and a spec error
names each bad field (so a form can show every error beside its field)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

_TYPE_TAG = re.compile(r"^(str|int|float|bool|constrained-\w+|.*\[.*\])$")
_NAMED = re.compile(r"^(\w+): (.+)$", re.S)


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
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
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

