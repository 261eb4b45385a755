"""Named workflows (Gradient: "Named workflows can be re-run with a default workflow spec, or be
passed a new spec every time"): a name with numbered spec versions, each update a new version
kept as history. A run names the workflow and gives its inputs (declared at the top of the spec,
typed string or dataset, with defaults); it runs the newest version, a given one, or a new spec
saved first; a run can be run again with some inputs changed."""

from __future__ import annotations

import asyncio
import getpass
import re
from typing import Any, Optional

from pydantic import ValidationError

from ..domain.errors import JobNotFound, SpecError
from ..domain.job import utcnow
from ..domain.replies import WorkflowDefinitionInput, WorkflowRunInput
from ..storage.store import Store
from .runs import WorkflowRuns
from .spec import plan

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def _read(model: type[Any], body: Any) -> Any:
    if not isinstance(body, dict):
        raise SpecError.one("body", "must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise SpecError.from_validation(exc) from None


class Definitions:
    def __init__(self, store: Store, runs: WorkflowRuns, resolve_workspace: Any):
        self.store, self.runs, self.resolve_workspace = store, runs, resolve_workspace
        self.user = getpass.getuser()

    async def save(self, name: str, body: Any) -> dict[str, Any]:
        """A new spec version: checked whole (its inputs as placeholders) before it is kept."""
        if not _NAME.fullmatch(name):
            raise SpecError.one("name", f"{name!r} is not a workflow name: a-z, 0-9, '.', '_' and '-'")
        given = _read(WorkflowDefinitionInput, body)
        plan(given.spec)
        await asyncio.to_thread(self.resolve_workspace, given.workspace)  # a 400 now, rather than at its first run
        return await self.store.add_definition({"name": name, "spec": given.spec, "workspace": given.workspace,
                                                "created_at": utcnow().isoformat(), "created_by": self.user})

    async def list(self) -> dict[str, Any]:
        names: dict[str, dict[str, Any]] = {}
        for row in await self.store.definition_versions():  # newest first within each name
            entry = names.setdefault(row["name"], {"name": row["name"], "versions": 0, "latest": row})
            entry["versions"] += 1
        return {"workflows": list(names.values())}

    async def history(self, name: str) -> dict[str, Any]:
        versions = await self.store.definition_versions(name)
        if not versions:
            raise JobNotFound(f"no workflow named {name!r}")
        return {"name": name, "versions": versions}

    async def run(self, name: str, body: Any) -> dict[str, Any]:
        """A run of the newest spec (or `version`, or a new `spec` saved first), with `inputs`;
        `rerun`: a run of it again, its version and inputs, with `inputs` changing some."""
        given = _read(WorkflowRunInput, body or {})
        inputs, version = dict(given.inputs), given.version
        if given.rerun:
            before = await self.store.workflow(given.rerun)
            if before is None or before.get("definition") != name:
                raise SpecError.one("rerun", f"{given.rerun!r} is not a run of workflow {name!r}")
            inputs, version = {**before["inputs"], **given.inputs}, version or before["definition_version"]
        if given.spec is not None:
            saved = await self.save(name, {"spec": given.spec, "workspace": given.workspace or ""})
            version = saved["version"]
        found = await self.store.definition(name, version)
        if found is None:
            raise (SpecError.one("version", f"workflow {name!r} has no version {version}") if version
                   else JobNotFound(f"no workflow named {name!r}"))
        body = {"spec": found["spec"], "workspace": found["workspace"] if given.workspace is None else given.workspace,
                "inputs": inputs}
        return await self.runs.submit(body, {"definition": name, "definition_version": found["version"]})

    async def run_list(self, name: str, limit: int = 50, cursor: Optional[int] = None) -> dict[str, Any]:
        await self.history(name)  # a 404 for a name never saved
        runs, after = await self.store.workflows(definition=name, limit=limit, cursor=cursor)
        return {"workflows": runs, "next_cursor": after}
