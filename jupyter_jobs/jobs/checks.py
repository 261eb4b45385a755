"""What the core checks of a spec before anything is snapshotted or recorded: its backend is
configured and up, its workspace lies under the server's root (or is a git commit), what it
asks for is honoured or said not to be. Every bad field is reported at once, never the first."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Optional, TypeVar

from ..backends import notebooks
from ..backends.base import Backend
from ..domain.errors import FieldError, SpecError
from ..domain.instance_types import InstanceTypes
from ..domain.replies import Capabilities
from ..domain.spec import JobSpec, pip_option
from ..environments.git import GitError, GitSources
from .gpus import GPUAllocator
from .plugins import Checked

T = TypeVar("T")


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def unhonoured(spec: JobSpec, capabilities: Capabilities, backend: str) -> dict[str, str]:
    """What a spec asks for that the backend would not do (field -> why): never silently dropped."""
    res = spec.resources
    asked = [  # field, the value asked for (None: nothing asked), honoured, what the backend does instead
        ("image", spec.image, capabilities.containers, "runs no containers"),
        ("resources.cpus", res.cpus, capabilities.cpus, "does not limit CPUs here"),
        ("resources.memory", res.memory, capabilities.memory, "does not limit memory here"),
        ("resources.nodes", res.nodes if res.nodes > 1 else None, capabilities.nodes, "runs a job on one machine"),
        ("resources.gpus", res.gpus or None, capabilities.gpus, "gives jobs no GPUs"),
        ("requirements", spec.requirements, capabilities.environments, "builds no environments yet (use an image "
         "with the packages)"),
    ]
    return {field: f"{value!r} is not applied: the {backend} backend {why}"
            for field, value, honoured, why in asked if value is not None and not honoured}


class SpecChecks:
    """The checks every submission goes through, whichever face or feature submits."""

    def __init__(self, *, root_dir: Path, backends: dict[str, Backend], default_backend: str, gpus: GPUAllocator,
                 instance_types: InstanceTypes, git: GitSources, strict: bool):
        self.root_dir, self.backends, self.default_backend = Path(root_dir), backends, default_backend
        self.gpus, self.instance_types, self.git = gpus, instance_types, git
        self.strict = strict  # refuse what a backend does not apply, rather than note it

    async def checkout(self, spec: JobSpec) -> tuple[JobSpec, Optional[Path]]:
        """A git workspace's commit (recorded on the spec) and the folder of its files."""
        if spec.git is None:
            return spec, None
        given = spec.git
        try:
            commit, folder = await asyncio.to_thread(self.git.checkout, given.url, given.ref, given.subdir,
                                                     given.commit)
        except GitError as exc:
            raise SpecError.one(exc.field, str(exc)) from None
        return spec.model_copy(update={"git": given.model_copy(update={"commit": commit})}), folder

    async def check(self, spec: JobSpec, with_backend: bool = True, folder: Optional[Path] = None) -> Checked:
        """Everything that can be known before a snapshot is taken: the backend's name, the
        workspace, and notes for the job. Raises one SpecError naming every bad field."""
        errors: list[FieldError] = []

        async def check(step: Awaitable[T]) -> Optional[T]:
            try:
                return await step
            except SpecError as exc:
                errors.extend(exc.errors)
                return None

        try:
            spec = self.instance_types.apply(spec)
        except SpecError as exc:  # the other checks go on, on the spec as given
            errors.extend(exc.errors)
        name = spec.backend or self.default_backend
        workspace = folder or await check(asyncio.to_thread(self.resolve_workspace, spec.workspace))
        backend = await check(self.backend(name)) if with_backend else None
        if spec.notebook or isinstance(spec.requirements, str):
            errors += await asyncio.to_thread(self._files, spec, workspace)  # only a spec naming files waits
        notes = self.git.left_out(folder) if folder else []  # a git tree's symlinks out of it
        if backend is not None:
            await check(backend.validate(spec))
            if backend.host_gpus and spec.resources.gpus > self.gpus.total:
                errors.append(FieldError(field="resources.gpus", message=f"asks for {spec.resources.gpus} GPU(s) "
                                         f"but this host has {self.gpus.total}"))
            ignored = unhonoured(spec, backend.capabilities(), name)
            if self.strict:
                errors += [FieldError(field=field, message=why) for field, why in ignored.items()]
            else:
                notes += [f"{field} {why}" for field, why in ignored.items()]
        if errors:
            raise SpecError(errors)
        assert workspace is not None
        return Checked(name, workspace, notes)

    @staticmethod
    def _files(spec: JobSpec, workspace: Optional[Path]) -> list[FieldError]:
        """The files a spec names in its workspace (a notebook, a requirements file) are there, and
        its requirements file holds packages, not installer options."""
        if workspace is None:
            return []
        errors = []
        why = spec.notebook and notebooks.missing(workspace, spec.notebook)
        if why:
            errors.append(FieldError(field="notebook", message=why))
        given = spec.requirements
        if isinstance(given, str):
            path = workspace / ("requirements.txt" if given == "auto" else given)
            if not path.is_file():
                if given != "auto":
                    errors.append(FieldError(field="requirements", message=f"no file {given!r} in the workspace"))
            elif why := pip_option(path.read_text(errors="replace").splitlines()):
                errors.append(FieldError(field="requirements", message=f"{path.name}: {why}"))
        return errors

    async def backend(self, name: str) -> Backend:
        """The named backend, if it is configured and takes jobs now."""
        backend = self.backends.get(name)
        if backend is None:
            raise SpecError.one("backend", f"unknown backend {name!r}; configured: {', '.join(sorted(self.backends))}")
        availability = await backend.availability()
        if not availability.available:
            raise SpecError.one("backend", f"backend {name!r} is unavailable: {availability.reason}")
        return backend

    def resolve_workspace(self, workspace: str) -> Path:
        root = os.path.realpath(self.root_dir)
        path = os.path.realpath(os.path.join(root, workspace))
        if not inside(path, root):
            raise SpecError.one("workspace", f"{workspace!r} is outside the server's root folder")
        if not os.path.isdir(path):
            raise SpecError.one("workspace", f"{workspace!r} is not a folder under the server's root")
        return Path(path)
