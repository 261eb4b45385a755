"""Instance types: machine shapes the admin names (`c.JobsApp.instance_types`), so a spec can
say `"instance_type": "gpu-small"` instead of resources, backend and image. The type's fields
are defaults: what the spec sets itself wins (resources key by key)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .spec import JobSpec
from .errors import SpecError

#: what a type may set: the fields that describe a machine
FIELDS = {"resources", "backend", "image", "slurm", "env", "timeout"}


class InstanceTypes:
    def __init__(self, types: dict[str, dict[str, Any]]):
        """Checked at start-up: a type that cannot work stops the server with the reason."""
        self.types: dict[str, dict[str, Any]] = {}
        for name, given in types.items():
            fields = {k: v for k, v in given.items() if k not in ("gpus", "cpus", "memory", "nodes")}
            resources = {k: given[k] for k in ("gpus", "cpus", "memory", "nodes") if k in given}
            if resources:
                fields["resources"] = {**fields.get("resources", {}), **resources}
            unknown = set(fields) - FIELDS
            if unknown:
                raise ValueError(f"c.JobsApp.instance_types[{name!r}]: unknown {sorted(unknown)}; a type sets "
                                 f"gpus, cpus, memory, nodes and {', '.join(sorted(FIELDS - {'resources'}))}")
            try:
                JobSpec.model_validate({**fields, "command": "true"})
            except ValidationError as exc:
                raise ValueError(f"c.JobsApp.instance_types[{name!r}]: {SpecError.from_validation(exc)}") from None
            self.types[name] = fields

    def apply(self, spec: JobSpec) -> JobSpec:
        """The spec with its instance type's fields filled in where the spec sets none."""
        if spec.instance_type is None:
            return spec
        base = self.types.get(spec.instance_type)
        if base is None:
            known = ", ".join(sorted(self.types)) or "none are configured"
            raise SpecError.one("instance_type", f"unknown instance type {spec.instance_type!r}; known: {known}")
        own = spec.model_dump(mode="json", exclude_unset=True)
        merged = {**base, **own}
        merged["resources"] = {**base.get("resources", {}), **own.get("resources", {})}
        merged["env"] = {**base.get("env", {}), **own.get("env", {})}
        return JobSpec.model_validate(merged)
