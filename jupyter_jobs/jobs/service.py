"""JobService: the one service layer. Every face (REST handlers, the kernel's embedded service,
the CLI) calls it, gets the public shapes of `replies` back, and catches the domain errors of
`models` (each carries its HTTP status). Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional, TypeVar

from ..storage.artifacts import ArtifactMissing, list_artifacts, open_artifact
from ..backends import notebooks
from ..backends.base import Backend
from ..storage.files import private_dir, remove_tree
from .gpus import GPUAllocator
from .housekeeping import Housekeeper, Retention
from ..endpoints.endpoints import Endpoints
from ..environments.venvs import Environments
from ..environments.git import GitError, GitSources
from ..domain.instance_types import InstanceTypes
from ..storage.logs import LogRegistry, follow
from ..telemetry.webhooks import Webhooks
from ..domain.status import FailureReason, JobStatus
from ..domain.job import Job, Outcome
from ..domain.errors import FieldError, JobConflict, JobNotFound, SpecError
from ..domain.spec import JobSpec
from ..domain.spec import read_spec
from ..domain.job import utcnow
from .queue import JobQueue
from ..domain.replies import (
    ArtifactList,
    BackendInfo,
    BackendsReply,
    Capabilities,
    GPUInfo,
    InstanceTypeInfo,
    JobPage,
)
from ..domain.replies import EnvironmentInfo, EnvironmentList, ListQuery, LogEnd
from ..domain.replies import MetricsQuery
from ..storage.schedules import Fired
from ..schedules.schedules import Schedules
from ..storage.series import Cursor, MetricsReader, progress
from ..telemetry.sampler import GPUSampler, Telemetry
from ..workflows.runs import WorkflowRuns
from .runner import JobRunner, RunnerEnv, record_end
from ..storage.store import Store
from .tasks import TaskSet
from ..storage.snapshots import SnapshotError, SnapshotStore


T = TypeVar("T")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _unhonoured(spec: JobSpec, capabilities: Capabilities, backend: str) -> dict[str, str]:
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


def _end(job: Job) -> dict[str, Any]:
    """The last line of a followed log or metrics stream: how the job ended."""
    return LogEnd(status=job.status, exit_code=job.exit_code, message=job.message,
                  reason=job.reason.value if job.reason else None).model_dump(mode="json")


class JobService:
    """Submit, list, watch, cancel, rerun and delete jobs; recover them after a restart."""

    def __init__(self, *, store: Store, snapshots: SnapshotStore, root_dir: Path, jobs_dir: Path, storage_dir: Path,
                 backends: dict[str, Backend], default_backend: str, gpus: GPUAllocator, kill_grace: float = 10.0,
                 max_running: int = 0, max_log_size: int = 0, retention: Optional[dict[str, Any]] = None,
                 housekeeping_interval: float = 3600.0, strict_specs: bool = False, metrics_interval: float = 2.0,
                 max_metrics_size: int = 1 << 30, nvml: Any = None, webhooks: Optional[Webhooks] = None,
                 instance_types: Optional[InstanceTypes] = None, git: Optional[GitSources] = None,
                 environments: Optional[Environments] = None, default_requirements: str = ""):
        if default_backend not in backends:
            raise ValueError(f"default backend {default_backend!r} is not a configured backend")
        self.store, self.snapshots, self.root_dir = store, snapshots, Path(root_dir)
        self.backends, self.default_backend, self.gpus = backends, default_backend, gpus
        self.strict_specs = strict_specs  # refuse what a backend does not apply, rather than note it
        self.tasks = TaskSet()
        self.log_files = LogRegistry(max_log_size)
        self.env = RunnerEnv(store=store, snapshots=snapshots, logs=self.log_files, jobs_dir=Path(jobs_dir),
                             storage_dir=Path(storage_dir), kill_grace=kill_grace, spawn=self.tasks.spawn,
                             gpu_inventory=gpus.total > 0, gpus=gpus,
                             environments=environments or Environments(Path(jobs_dir).parent / "envs"),
                             default_requirements=default_requirements)
        self.queue = JobQueue(backends=backends, gpus=gpus, max_running=max_running, tasks=self.tasks,
                              launch=self._launch, reject=self._reject, hold=lambda job: self.runs.hold(job))
        self.housekeeper = Housekeeper(store=store, snapshots=snapshots, retention=Retention(retention or {}),
                                       interval=housekeeping_interval, delete=self.delete,
                                       environments=self._collect_environments)
        self.runs = WorkflowRuns(self)
        self.schedules = Schedules(self)
        self.webhooks = webhooks or Webhooks([])
        self.instance_types = instance_types or InstanceTypes({})
        self.git = git or GitSources(Path(jobs_dir).parent / "git")
        self.env.ended, self.env.launched, self.env.depends = self._ended, self.runs.launched, self.runs.depends
        self.env.started = lambda job: self.notify("job.started", job.id)
        self.env.requeued = lambda job_id: self.tasks.spawn(self._requeued(job_id))
        self.telemetry = Telemetry(self._sampled, metrics_interval, GPUSampler(nvml), self.store.add_note)
        self.metrics_reader = MetricsReader(max_metrics_size)
        self.endpoints = Endpoints(lambda: self.queue.active)
        self._started: Optional[asyncio.Future] = None
        self._stopping = self._closed = False

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover once: reattach running jobs, start queued ones. Safe to await many times."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._recover())
        await asyncio.shield(self._started)

    async def _recover(self) -> None:
        await asyncio.to_thread(self.env.storage_dir.mkdir, parents=True, exist_ok=True)
        cursor = None
        while True:  # running jobs, and queued ones whose launch was recorded (held, or pending)
            jobs, cursor = await self.store.list(status=[JobStatus.RUNNING, JobStatus.QUEUED], limit=500,
                                                 cursor=cursor)
            self.queue.add(j for j in jobs if j.status == JobStatus.QUEUED and not j.backend_state)
            for job in jobs:
                if job.status == JobStatus.QUEUED and not job.backend_state:
                    continue  # never launched: the queue starts it
                backend = self.backends.get(job.backend)
                if backend is None:
                    await record_end(self.env, job, Outcome(None, FailureReason.LOST,
                                                            f"backend {job.backend!r} is no longer configured"))
                    continue
                runner = JobRunner(self.env, job, backend, job.gpus)
                self.queue.adopt(runner)
                self._drive(runner, runner.reattach())
            if cursor is None:
                break
        await self.runs.recover()  # first: the queue then knows each run's max_parallel
        self.queue.kick()
        self.tasks.spawn(self.housekeeper.run_forever())
        if self.webhooks.hooks:
            self.tasks.spawn(self.webhooks.run())
        await self.schedules.recover()  # runs missed while down: once now, or skipped
        self.tasks.spawn(self.schedules.run_forever())
        if self.telemetry.interval > 0:
            self.tasks.spawn(self.telemetry.run())
        self.tasks.spawn(self.endpoints.run())

    def _sampled(self) -> list[tuple[str, Path, list[int], Any]]:
        """The jobs telemetry samples: those whose command runs now."""
        return [(r.id, self.env.job_dir(r.job), r.gpus, r.execution) for r in list(self.queue.active.values())
                if r.execution is not None and r.job.status == JobStatus.RUNNING and not r.execution.done()]

    async def stop(self) -> None:
        """Stop watching; running jobs keep running and are reattached on the next start."""
        self._stopping = True
        launching = [r.launching for r in self.queue.active.values() if r.launching and not r.launching.done()]
        if launching:  # a job being started gets recorded as running before we go
            await asyncio.wait(launching, timeout=30)
        self.queue.close()
        for runner in list(self.queue.active.values()):
            runner.detach()
        await self.tasks.cancel_all()
        for backend in self.backends.values():
            await backend.close()
        await self.endpoints.close()

    async def close(self) -> None:
        """Stop, then release the history and the snapshot store (this service owns them)."""
        if self._closed:
            return
        self._closed = True
        await self.stop()
        await asyncio.to_thread(self.store.close)
        self.snapshots.close()

    def _drive(self, runner: JobRunner, coro: Any) -> None:
        async def drive() -> None:
            try:
                await coro
            finally:
                coro.close()  # cancelled before its first step, `coro` was never awaited
                self.queue.done(runner)

        self.tasks.spawn(drive())

    def _launch(self, job: Job, backend: Backend, gpus: list[int]) -> JobRunner:
        runner = JobRunner(self.env, job, backend, gpus)
        self._drive(runner, runner.run(lambda: self._stopping))
        return runner

    async def _reject(self, job: Job, message: str) -> None:
        await record_end(self.env, job, Outcome(None, FailureReason.BACKEND_ERROR, message))

    # -- submitting -------------------------------------------------------------------------
    async def submit(self, body: Any, origin: Optional[str] = None) -> dict[str, Any]:
        """Validate a spec (a JSON object), snapshot its workspace, queue it. A bad spec gets every
        error at once: what the model accepts of it goes through the service's checks too."""
        spec, error = read_spec(body)
        if error is None:
            return self._public(await self.submit_spec(spec, origin=origin))  # type: ignore[arg-type]
        if spec is not None:
            try:  # a backend left out for its own error would be checked as the default one: skip it
                await self._validate(spec, with_backend=not error.names("backend"))
            except SpecError as more:
                error = error.plus(more)
        raise error

    async def submit_spec(self, spec: JobSpec, fired: Optional[Fired] = None, origin: Optional[str] = None) -> Job:
        """Check, snapshot and record a job; `fired`: a schedule's due time it is recorded with
        (AlreadyFired if that time was taken meanwhile)."""
        spec, folder = await self._checkout(spec)
        name, workspace, notes = await self._validate(spec, folder=folder)
        spec = self.instance_types.apply(spec)  # recorded as it runs: the type's fields filled in
        try:
            snap = await asyncio.to_thread(self.snapshots.snapshot, workspace)
        except SnapshotError as exc:
            raise SpecError.one("workspace", str(exc)) from None
        try:
            skipped = [f"left out of the workspace: {path} ({why})" for path, why in snap.skipped[:50]]
            job = self.new_job(spec, name, snap.id, workspace, notes=notes + skipped)
            job.origin = origin
            if fired is not None:
                job.schedule, fired = fired.schedule, dataclasses.replace(fired, job=job.id)
            await self.record_many([job], fired=fired)
            return job
        finally:
            self.snapshots.unpin(snap.id)  # recorded (or not): garbage collection decides now

    def new_job(self, spec: JobSpec, backend: str, snapshot: Optional[str], workspace: Path, *,
                job_id: Optional[str] = None, notes: Optional[list[str]] = None) -> Job:
        """A job to record (not yet recorded): its id, folder and project."""
        job_id = job_id or secrets.token_hex(6)
        job_dir = (self.backends[backend].jobs_root() or self.env.jobs_dir) / job_id
        return Job(
            id=job_id, dir=str(job_dir), spec=spec, backend=backend, snapshot=snapshot,
            project=spec.project or (_repository(spec.git.url) if spec.git else workspace.name if spec.workspace
                                     else self.root_dir.resolve().name) or "default",
            notes=notes or [],
        )

    async def record_many(self, jobs: list[Job], workflow: Optional[dict[str, Any]] = None,
                          fired: Optional[Fired] = None) -> None:
        """Record jobs (and the workflow run they make up) at once, then let the queue look."""
        await asyncio.to_thread(lambda: [private_dir(Path(j.dir)) for j in jobs if j.dir])
        await self.store.insert_many([(j, Path(j.dir or self.env.jobs_dir / j.id)) for j in jobs], workflow, fired)
        if self.webhooks.wants("job.queued"):
            for job in jobs:
                self.webhooks.emit("job.queued", {"job": job.public()})
        self.queue.add(jobs)

    def _ended(self, job: Job) -> None:
        self.queue.discard(job.id)
        self.runs.moved(job)
        self.notify("job.ended", job.id)

    async def _requeued(self, job_id: str) -> None:
        """A job back in the queue (a retry, a launch a restart interrupted)."""
        job = await self.store.get(job_id)
        if job is not None and job.status == JobStatus.QUEUED:
            self.queue.add([job])

    def notify(self, event: str, job_id: str) -> None:
        """Tell the webhooks about a job as it is now (read in a task: never holds the caller)."""
        if self.webhooks.wants(event):
            async def send() -> None:
                job = await self.store.get(job_id)
                if job is not None:
                    self.webhooks.emit(event, {"job": job.public()})

            self.tasks.spawn(send())

    async def validate(self, spec: JobSpec) -> tuple[str, Path, list[str]]:
        """The backend a spec runs on, its workspace folder and notes for the job; SpecError
        names every problem."""
        spec, folder = await self._checkout(spec)
        return await self._validate(spec, folder=folder)

    async def _checkout(self, spec: JobSpec) -> tuple[JobSpec, Optional[Path]]:
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

    async def _validate(self, spec: JobSpec, with_backend: bool = True,
                        folder: Optional[Path] = None) -> tuple[str, Path, list[str]]:
        """Everything that can be known before a snapshot is taken: the backend's name, the
        workspace, and notes for the job. Raises one SpecError naming every bad field, not the first."""
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
        backend = await check(self._backend(name)) if with_backend else None
        why = spec.notebook and workspace and await asyncio.to_thread(notebooks.missing, workspace, spec.notebook)
        if why:
            errors.append(FieldError(field="notebook", message=why))
        given = spec.requirements
        if isinstance(given, str) and given != "auto" and workspace and not (workspace / given).is_file():
            errors.append(FieldError(field="requirements", message=f"no file {given!r} in the workspace"))
        notes: list[str] = []
        if backend is not None:
            await check(backend.validate(spec))
            if backend.host_gpus and spec.resources.gpus > self.gpus.total:
                errors.append(FieldError(field="resources.gpus", message=f"asks for {spec.resources.gpus} GPU(s) "
                                         f"but this host has {self.gpus.total}"))
            unhonoured = _unhonoured(spec, backend.capabilities(), name)
            if self.strict_specs:
                errors += [FieldError(field=field, message=why) for field, why in unhonoured.items()]
            else:
                notes = [f"{field} {why}" for field, why in unhonoured.items()]
        if errors:
            raise SpecError(errors)
        assert workspace is not None
        return name, workspace, notes

    async def _backend(self, name: str) -> Backend:
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
        if not _inside(path, root):
            raise SpecError.one("workspace", f"{workspace!r} is outside the server's root folder")
        if not os.path.isdir(path):
            raise SpecError.one("workspace", f"{workspace!r} is not a folder under the server's root")
        return Path(path)

    def _collect_environments(self, max_age: Optional[float], max_size: Optional[int]) -> dict[str, int]:
        """Housekeeping's part for environments: the host's venvs, then each backend's own."""
        envs = self.env.environments
        done = envs.collect(max_age, max_size)
        for backend in self.backends.values():
            done.update(backend.collect_environments(envs, max_age, max_size))
        return done

    async def environments_info(self) -> dict[str, Any]:
        """The environments built from requirements, with their sizes and last use."""
        def gather() -> list[dict[str, Any]]:
            envs = self.env.environments
            return envs.listing() + [e for b in self.backends.values() for e in b.environment_list(envs)]

        found = await asyncio.to_thread(gather)
        return EnvironmentList(environments=[EnvironmentInfo(**e) for e in found]).model_dump(mode="json")

    async def export(self, job_id: str, fmt: str = "yaml") -> tuple[str, list[str]]:
        """The job's spec as a job file (`yaml` or `json`), and the secret env keys left out."""
        if fmt not in ("yaml", "json"):
            raise SpecError.one("format", "yaml or json")
        return (await self._job(job_id)).spec.as_file(fmt)

    async def rerun(self, job_id: str, origin: Optional[str] = None) -> dict[str, Any]:
        """The same spec again, with a new snapshot of the workspace as it is now."""
        return self._public(await self.submit_spec((await self._job(job_id)).spec, origin=origin))

    # -- reading ----------------------------------------------------------------------------
    async def _job(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        return job

    def _public(self, job: Job) -> dict[str, Any]:
        if job.status == JobStatus.QUEUED:
            job.waiting = self.queue.why_waiting(job)
        if job.spec.expose:
            job.endpoints = self.endpoints.describe(job)
        return job.public()

    async def get(self, job_id: str) -> dict[str, Any]:
        """The job with its status changes and a summary of its metrics."""
        job = await self._job(job_id)
        summary = await asyncio.to_thread(self.metrics_reader.summary, job.id, self.env.job_dir(job),
                                          job.status.is_terminal())
        job.progress = progress(summary["series"])
        return {**self._public(job), "events": await self.store.events(job_id), "metrics": summary}

    async def list(self, **query: Any) -> dict[str, Any]:
        """A page of jobs, newest first: status (list or comma-separated), project, q (search text),
        tag, limit, cursor."""
        q = ListQuery.parse(**query)
        jobs, cursor = await self.store.list(status=q.status or None, project=q.project, q=q.q, tag=q.tag,
                                             workflow=q.workflow, schedule=q.schedule, origin=q.origin or None,
                                             limit=q.limit,
                                             cursor=q.cursor)
        running = [j for j in jobs if j.status == JobStatus.RUNNING]
        if running:  # their progress, from summaries kept up incrementally
            read = self.metrics_reader.summary
            for job, summary in zip(running, await asyncio.to_thread(
                    lambda: [read(j.id, self.env.job_dir(j), False) for j in running])):
                job.progress = progress(summary["series"])
        return JobPage(jobs=[self._public(j) for j in jobs], next_cursor=cursor).model_dump()

    async def backends_info(self) -> dict[str, Any]:
        async def one(name: str, backend: Backend) -> BackendInfo:
            availability = await backend.availability()
            return BackendInfo(name=name, description=backend.description, default=name == self.default_backend,
                               available=availability.available, reason=availability.reason,
                               capabilities=backend.capabilities(), details=availability.details)

        infos = await asyncio.gather(*(one(n, b) for n, b in self.backends.items()))
        usage = await asyncio.to_thread(self.gpus.usage)  # the host's pool: read off the event loop
        gpus = [GPUInfo(**g) for g in self.gpus.describe(usage)]
        free = sum(self.gpus.share - n for n in usage.values())
        up = {i.name: i for i in infos}
        types = [self._instance_type(n, f, up, free) for n, f in self.instance_types.types.items()]
        return BackendsReply(backends=list(infos), gpus=gpus, webhooks=self.webhooks.status(),
                             instance_types=types).model_dump(mode="json")

    def _instance_type(self, name: str, fields: dict[str, Any], up: dict[str, BackendInfo],
                       free: int) -> InstanceTypeInfo:
        """A type as the form offers it: what it sets, and whether a job of it could start now."""
        backend = fields.get("backend") or self.default_backend
        gpus = int(fields.get("resources", {}).get("gpus", 0))
        info, reason = up.get(backend), None
        if info is None or not info.available:
            reason = f"backend {backend} is not available" + (f": {info.reason}" if info and info.reason else "")
        elif self.backends[backend].host_gpus and gpus > free:
            reason = f"{free} of the {gpus} GPU(s) it needs are free now"
        return InstanceTypeInfo(name=name, spec=fields, backend=backend, available=reason is None, reason=reason)

    # -- cancel / delete --------------------------------------------------------------------
    async def cancel(self, job_id: str, wait: float = 1.0) -> dict[str, Any]:
        """Cancel a queued or running job; waits up to `wait` s for a running one to end."""
        job = await self._job(job_id)
        if job.status.is_terminal():
            raise JobConflict(f"job {job_id} is already {job.status.value}")
        if job.status == JobStatus.QUEUED and await self.store.transition(
            job_id, JobStatus.CANCELLED, utcnow(), only_from=JobStatus.QUEUED, finished_at=utcnow(),
            message="cancelled before it started",
        ):
            self.log_files.close(job_id)  # a job being prepared notices and does not start
            self.env.ended(job)
        if (runner := self.queue.active.get(job_id)) is not None:
            await runner.cancel(wait)  # also one held, or pending in its backend
        return self._public(await self._job(job_id))

    async def delete(self, job_id: str) -> None:
        job = await self._job(job_id)
        if not job.status.is_terminal():
            raise JobConflict(f"job {job_id} is {job.status.value}: cancel it before deleting it")
        job_dir = await self.store.job_dir(job_id)
        left = await asyncio.to_thread(remove_tree, job_dir) if job_dir is not None else []
        if left:  # the job stays, so nothing is forgotten while its files remain
            shown = "; ".join(left[:5]) + (f"; and {len(left) - 5} more" if len(left) > 5 else "")
            raise JobConflict(f"job {job_id} was kept: {len(left)} of its files could not be removed ({shown})")
        await self.store.delete(job_id)
        self.log_files.forget(job_id)
        self.metrics_reader.forget(job_id)

    # -- metrics ----------------------------------------------------------------------------
    async def _metrics_page(self, job: Job, cursor: Cursor, names: Optional[set[str]],
                            encode: bool = False) -> tuple[Any, Cursor]:
        """A MetricsPage after `cursor` (a plain dict: a page may hold a million values, too many
        to validate again), or its JSON when `encode`: both made in a worker thread."""
        job_dir, final = self.env.job_dir(job), job.status.is_terminal()

        def make() -> tuple[Any, Cursor]:
            batch, after = self.metrics_reader.read(job_dir, cursor, names, final)
            page = {"series": batch.public(), "next": str(after), "more": after != cursor, "bad_lines": batch.bad}
            return (json.dumps(page) if encode else page), after

        return await asyncio.to_thread(make)

    async def metrics(self, job_id: str, *, names: Any = None, since: Optional[str] = None) -> dict[str, Any]:
        """The job's series after `since` (a previous page's `next`), a page of at most a few MB."""
        q = MetricsQuery.parse(names=names, since=since)
        page, _ = await self._metrics_page(await self._job(job_id), Cursor.parse(q.since), set(q.names) or None)
        return page

    async def follow_metrics(self, job_id: str, *, names: Any = None, since: Optional[str] = None,
                             gone: Callable[[], bool] = lambda: False) -> AsyncIterator[str]:
        """NDJSON lines (encoded off the event loop): pages as points arrive, until the job
        ended and all is read, then its final status."""
        q = MetricsQuery.parse(names=names, since=since)
        cursor, wanted = Cursor.parse(q.since), set(q.names) or None
        while not gone():
            job = await self._job(job_id)
            line, after = await self._metrics_page(job, cursor, wanted, encode=True)
            if after != cursor:
                cursor = after
                yield line
                continue
            if job.status.is_terminal():
                yield json.dumps(_end(job))
                return
            await asyncio.sleep(0.25)

    # -- logs and artifacts -----------------------------------------------------------------
    async def logs(self, job_id: str, offset: int = 0, *, follow_: bool = False,
                   gone: Callable[[], bool] = lambda: False) -> AsyncIterator[dict[str, Any]]:
        """The job's log as public chunks from `offset`; with `follow_`, until the job ends (then
        one LogEnd item) or `gone()` (the reader left)."""
        job = await self._job(job_id)
        folder = self.env.job_dir(job)
        if job.status.is_terminal():
            job_log = await self.log_files.finished(folder)
        else:
            job_log = await self.log_files.active(job_id, folder)
            if (await self._job(job_id)).status.is_terminal():  # it ended in between
                self.log_files.close(job_id)
        async for chunk in follow(job_log, offset, follow=follow_, gone=gone):
            yield chunk.to_json()
        if follow_ and not gone():
            yield _end(await self._job(job_id))

    async def artifacts(self, job_id: str) -> dict[str, Any]:
        root = self.env.job_dir(await self._job(job_id)) / "artifacts"
        found = await asyncio.to_thread(list_artifacts, root)
        return ArtifactList(artifacts=found, folder=await asyncio.to_thread(self._under_root, root)).model_dump()

    def _under_root(self, path: Path) -> Optional[str]:
        """`path` relative to the server's root, when it is a real folder under it."""
        root, real = os.path.realpath(self.root_dir), os.path.realpath(path)
        return os.path.relpath(real, root).replace(os.sep, "/") if _inside(real, root) and os.path.isdir(real) else None

    async def open_artifact(self, job_id: str, path: str) -> tuple[BinaryIO, int]:
        """One artifact, opened (never through a link), and its size at opening."""
        root = self.env.job_dir(await self._job(job_id)) / "artifacts"
        try:
            return await asyncio.to_thread(open_artifact, root, path)
        except ArtifactMissing:
            raise JobNotFound(f"no artifact {path!r}") from None


def _repository(url: str) -> str:
    """A repository's name from its URL: `.../team/mnist.git` -> `mnist`."""
    return url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
