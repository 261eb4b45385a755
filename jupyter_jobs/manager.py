"""JobManager: the job service. Submit, queue, run, cancel, rerun, delete, recover.

Engine-neutral rules live here once: statuses and their order, GPU allocation, timeouts,
the job's folders, and what happens to running jobs across a server restart. Backends only
start and stop executions. Every blocking call (SQLite, files) runs off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from collections.abc import AsyncIterator

from .backends.base import Backend, BackendError, Execution, JobContext, Outcome
from .gpus import GPUAllocator
from .logs import Chunk, JobLog, follow
from .models import (
    FailureReason,
    Job,
    JobConflict,
    JobNotFound,
    JobSpec,
    JobStatus,
    SpecError,
    utcnow,
)
from .store import Store
from .workspace import SnapshotInfo, SnapshotStore

log = logging.getLogger(__name__)


@dataclass
class _Running:
    execution: Execution
    gpus: list[int]
    backend: str
    stop_reason: Optional[str] = None  # "cancel" | "timeout"
    timer: Optional[asyncio.TimerHandle] = None
    recorded: asyncio.Event = field(default_factory=asyncio.Event)  # its terminal status is stored


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class JobManager:
    def __init__(
        self,
        *,
        store: Store,
        snapshots: SnapshotStore,
        root_dir: Path,
        jobs_dir: Path,
        storage_dir: Path,
        backends: dict[str, Backend],
        default_backend: str,
        gpus: GPUAllocator,
        kill_grace: float = 10.0,
        max_running: int = 0,
    ):
        self.store = store
        self.snapshots = snapshots
        self.root_dir = Path(root_dir)
        self.jobs_dir = Path(jobs_dir)
        self.storage_dir = Path(storage_dir)
        self.backends = backends
        self.default_backend = default_backend
        self.gpus = gpus
        self.kill_grace = kill_grace
        self.max_running = max_running
        self._running: dict[str, _Running] = {}
        self._starting: dict[str, str] = {}  # job id -> backend, between dequeue and running
        self._logs: dict[str, JobLog] = {}
        self._tasks: set[asyncio.Task] = set()
        self._kick_wanted = False
        self._kick_task: Optional[asyncio.Task] = None
        self._started: Optional[asyncio.Task] = None
        self._launching: dict[str, asyncio.Future] = {}  # between backend.start and `running`
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover once: reattach running jobs, start queued ones. Safe to await many times."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._recover())
        await asyncio.shield(self._started)

    async def _recover(self) -> None:
        await asyncio.to_thread(self.storage_dir.mkdir, parents=True, exist_ok=True)
        cursor = None
        while True:
            jobs, cursor = await self.store.list(status=[JobStatus.RUNNING], limit=500, cursor=cursor)
            for job in jobs:
                try:
                    await self._reattach(job)
                except Exception:  # one job's trouble must not take the service down
                    log.exception("recovering job %s failed", job.id)
            if cursor is None:
                break
        self._schedule()

    async def _reattach(self, job: Job) -> None:
        backend = self.backends.get(job.backend)
        if backend is None:
            await self._finish(job, Outcome(None, FailureReason.LOST,
                                            f"backend {job.backend!r} is no longer configured"))
            return
        self.gpus.claim(job.gpus)
        try:
            execution = await backend.reattach(await self._context(job, job.gpus), job.backend_state)
        except Exception as exc:
            log.exception("reattaching job %s failed", job.id)
            self.gpus.release(job.gpus)
            await self._finish(job, Outcome(None, FailureReason.LOST, f"could not find the job again: {exc}"))
            return
        log.info("reattached job %s", job.id)
        running = self._running[job.id] = _Running(execution, job.gpus, job.backend,
                                                   stop_reason=job.backend_state.get("stop_reason"))
        if running.stop_reason:  # a cancel or timeout was under way: finish it
            await execution.stop(self.kill_grace)
        self._spawn(self._watch(job, running))

    async def stop(self) -> None:
        """Stop watching; running jobs keep running and are reattached on the next start."""
        self._stopping = True
        if self._launching:  # a job being started gets recorded as running before we go
            await asyncio.wait(list(self._launching.values()), timeout=30)
        for task in list(self._tasks):
            task.cancel()
        for running in self._running.values():
            if running.timer:
                running.timer.cancel()
            running.execution.detach()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for backend in self.backends.values():
            await backend.close()

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- submitting -------------------------------------------------------------------------
    def _backend_for(self, spec: JobSpec) -> tuple[str, Backend]:
        name = spec.backend or self.default_backend
        backend = self.backends.get(name)
        if backend is None:
            raise SpecError.one("backend", f"unknown backend {name!r}; configured: {', '.join(sorted(self.backends))}")
        return name, backend

    async def validate(self, spec: JobSpec) -> tuple[str, Path]:
        """Everything that can be known before a snapshot is taken; SpecError names the field."""
        name, backend = self._backend_for(spec)
        availability = await backend.availability()
        if not availability.available:
            raise SpecError.one("backend", f"backend {name!r} is unavailable: {availability.reason}")
        await backend.validate(spec)
        wanted = spec.resources.gpus
        if backend.host_gpus and wanted > self.gpus.total:
            raise SpecError.one(
                "resources.gpus", f"asks for {wanted} GPU(s) but this host has {self.gpus.total}"
            )
        return name, await asyncio.to_thread(self.resolve_workspace, spec.workspace)

    def resolve_workspace(self, workspace: str) -> Path:
        root = os.path.realpath(self.root_dir)
        path = os.path.realpath(os.path.join(root, workspace))
        if not _inside(path, root):
            raise SpecError.one("workspace", f"{workspace!r} is outside the server's root folder")
        if not os.path.isdir(path):
            raise SpecError.one("workspace", f"{workspace!r} is not a folder under the server's root")
        return Path(path)

    async def submit(self, spec: JobSpec) -> Job:
        """Validate, snapshot the workspace, record the job as queued, and schedule it."""
        backend, workspace = await self.validate(spec)
        snap: SnapshotInfo = await asyncio.to_thread(self.snapshots.snapshot, workspace)
        job_id = secrets.token_hex(6)
        job_dir = (self.backends[backend].jobs_root() or self.jobs_dir) / job_id
        job = Job(
            id=job_id,
            dir=str(job_dir),
            spec=spec,
            backend=backend,
            project=spec.project or (workspace.name if spec.workspace else self.root_dir.resolve().name) or "default",
            snapshot=snap.id,
            notes=[f"left out of the workspace: {path} ({why})" for path, why in snap.skipped[:50]],
        )
        await asyncio.to_thread(job_dir.mkdir, parents=True)
        await self.store.insert(job, job_dir)
        self._schedule()
        return job

    async def rerun(self, job_id: str) -> Job:
        """The same spec again, with a new snapshot of the workspace as it is now."""
        return await self.submit((await self.get(job_id)).spec)

    # -- reading ----------------------------------------------------------------------------
    async def get(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        return job

    async def list(self, **filters: Any) -> tuple[list[Job], Optional[int]]:
        return await self.store.list(**filters)

    async def backends_info(self) -> list[dict[str, Any]]:
        async def one(name: str, backend: Backend) -> dict[str, Any]:
            availability = await backend.availability()
            return {
                "name": name,
                "description": backend.description,
                "default": name == self.default_backend,
                "available": availability.available,
                "reason": availability.reason,
                "capabilities": backend.capabilities(),
                **availability.details,
            }

        return list(await asyncio.gather(*(one(n, b) for n, b in self.backends.items())))

    # -- cancel / delete --------------------------------------------------------------------
    async def cancel(self, job_id: str, wait: float = 1.0) -> Job:
        """Cancel a queued or running job; waits up to `wait` s for a running one to end."""
        job = await self.get(job_id)
        if job.status.is_terminal():
            raise JobConflict(f"job {job_id} is already {job.status.value}")
        if job.status == JobStatus.QUEUED and await self.store.transition(
            job_id, JobStatus.CANCELLED, utcnow(), only_from=JobStatus.QUEUED, finished_at=utcnow(),
            message="cancelled before it started",
        ):
            self._closed(job_id)  # a job being prepared notices and does not start
            return await self.get(job_id)
        if job_id in self._launching:
            await asyncio.shield(self._launching[job_id])
        running = self._running.get(job_id)
        if running is None:  # it ended meanwhile
            return await self.get(job_id)
        await self._stop(job_id, running, "cancel")
        try:
            await asyncio.wait_for(running.recorded.wait(), wait)
        except asyncio.TimeoutError:
            pass
        return await self.get(job_id)

    async def delete(self, job_id: str) -> None:
        job = await self.get(job_id)
        if not job.status.is_terminal():
            raise JobConflict(f"job {job_id} is {job.status.value}: cancel it before deleting it")
        job_dir = await self.store.job_dir(job_id)
        await self.store.delete(job_id)
        self._logs.pop(job_id, None)
        if job_dir is not None:
            await asyncio.to_thread(shutil.rmtree, job_dir, True)

    # -- queue ------------------------------------------------------------------------------
    def _schedule(self) -> None:
        self._kick_wanted = True
        if self._kick_task is None or self._kick_task.done():
            self._kick_task = self._spawn(self._kick_loop())

    async def _kick_loop(self) -> None:
        while self._kick_wanted:
            self._kick_wanted = False
            try:
                await self._kick()
            except Exception:
                log.exception("scheduling jobs failed")

    async def _kick(self) -> None:
        """Start every queued job (oldest first) whose backend has room and whose GPUs are free."""
        cursor = None
        while True:
            queued, cursor = await self.store.list(status=[JobStatus.QUEUED], limit=200, cursor=cursor,
                                                   oldest_first=True)
            for job in queued:
                if job.id in self._starting or job.id in self._running:  # on its way already
                    continue
                backend = self.backends.get(job.backend)
                if backend is None:
                    await self._finish(job, Outcome(None, FailureReason.BACKEND_ERROR,
                                                    f"backend {job.backend!r} is no longer configured"))
                    continue
                limit = backend.max_running or self.max_running
                if limit and self._count(job.backend) >= limit:
                    continue
                gpus = self.gpus.allocate(job.spec.resources.gpus) if backend.host_gpus else []
                if gpus is None:
                    continue
                self._starting[job.id] = job.backend
                self._spawn(self._run(job, gpus))
            if cursor is None:
                return

    def _count(self, backend: str) -> int:
        running = sum(1 for r in self._running.values() if r.backend == backend)
        return running + sum(1 for b in self._starting.values() if b == backend)

    # -- running ----------------------------------------------------------------------------
    async def _context(self, job: Job, gpus: list[int]) -> JobContext:
        job_dir = self._dir(job)
        return JobContext(
            job=job,
            dir=job_dir,
            workspace=job_dir / "workspace",
            artifacts=job_dir / "artifacts",
            storage=self.storage_dir,
            log=await self.log_for(job),
            gpus=gpus if self.gpus.total and self.backends[job.backend].host_gpus else None,
        )

    def _prepare(self, ctx: JobContext) -> None:
        if ctx.workspace.exists():  # a start interrupted by a restart: begin afresh
            shutil.rmtree(ctx.workspace)
        for stale in ("stdout", "stderr", "exit_code"):
            (ctx.dir / stale).unlink(missing_ok=True)
        assert ctx.job.snapshot
        self.snapshots.materialize(ctx.job.snapshot, ctx.workspace)
        ctx.artifacts.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)

    async def _run(self, job: Job, gpus: list[int]) -> None:
        """Prepare, start and watch one dequeued job."""
        backend = self.backends[job.backend]
        launched = asyncio.get_running_loop().create_future()
        try:
            ctx = await self._context(job, gpus)
            await asyncio.to_thread(self._prepare, ctx)
            current = await self.store.get(job.id)
            if current is None or current.status != JobStatus.QUEUED or self._stopping:
                self.gpus.release(gpus)  # cancelled while being prepared, or shutting down
                return
            self._launching[job.id] = launched
            execution = await backend.start(ctx)
        except Exception as exc:
            if not isinstance(exc, BackendError):
                log.exception("starting job %s failed", job.id)
            self.gpus.release(gpus)
            self._launching.pop(job.id, None)
            launched.set_result(None)
            message = str(exc) if isinstance(exc, BackendError) else f"could not start the job: {exc}"
            await self._finish(job, Outcome(None, FailureReason.BACKEND_ERROR, message))
            self._schedule()
            return
        finally:
            self._starting.pop(job.id, None)
        # known as running before any await, so a cancel arriving now finds it
        running = self._running[job.id] = _Running(execution, gpus, job.backend)
        try:
            job.started_at = utcnow()
            if not await self.store.transition(job.id, JobStatus.RUNNING, job.started_at, only_from=JobStatus.QUEUED,
                                               started_at=job.started_at, gpus=gpus, backend_state=execution.state):
                running.stop_reason = "cancel"  # cancelled while it was starting
                await execution.stop(self.kill_grace)
        finally:
            self._launching.pop(job.id, None)
            launched.set_result(None)
        await self._watch(job, running)

    async def _watch(self, job: Job, running: _Running) -> None:
        try:
            if job.spec.timeout:
                assert job.started_at is not None
                left = job.spec.timeout - (utcnow() - job.started_at).total_seconds()
                running.timer = asyncio.get_running_loop().call_later(
                    max(left, 0), lambda: self._spawn(self._expire(job.id))
                )
            outcome = await running.execution.wait()
            if running.timer:
                running.timer.cancel()
            await self._finish(job, outcome, running.stop_reason)
            running.recorded.set()
        finally:
            if running.timer:
                running.timer.cancel()
            if not self._stopping:  # at shutdown the job runs on; its GPUs stay claimed
                self._running.pop(job.id, None)
                self.gpus.release(running.gpus)
                self._schedule()

    async def _expire(self, job_id: str) -> None:
        running = self._running.get(job_id)
        if running:
            await self._stop(job_id, running, "timeout")

    async def _stop(self, job_id: str, running: _Running, reason: str) -> None:
        """Stop a running job, remembering why (also across a restart)."""
        if running.stop_reason is None:
            running.stop_reason = reason
            state = {**running.execution.state, "stop_reason": reason}
            await self.store.update(job_id, backend_state=state)
        await running.execution.stop(self.kill_grace)

    async def _finish(self, job: Job, outcome: Outcome, stop_reason: Optional[str] = None) -> None:
        """Record the terminal status an outcome means; the first terminal status wins."""
        fields: dict[str, Any] = {"exit_code": outcome.exit_code, "finished_at": utcnow()}
        if outcome.exit_code == 0 and outcome.reason is None:
            stop_reason = None  # it finished on its own before the stop reached it
        if stop_reason == "cancel":
            status, fields["message"] = JobStatus.CANCELLED, "cancelled by the user"
        elif stop_reason == "timeout":
            status, fields["reason"] = JobStatus.FAILED, FailureReason.TIMEOUT
            fields["message"] = f"stopped after exceeding its time limit of {job.spec.timeout:g} s"
        elif outcome.reason is not None:
            status, fields["reason"], fields["message"] = JobStatus.FAILED, outcome.reason, outcome.message
        elif outcome.exit_code == 0:
            status = JobStatus.SUCCEEDED
        else:
            status, fields["reason"] = JobStatus.FAILED, FailureReason.EXIT_CODE
            fields["message"] = outcome.message or f"the command exited with code {outcome.exit_code}"
        await self.store.transition(job.id, status, fields["finished_at"], **fields)
        self._closed(job.id)

    # -- logs and artifacts -----------------------------------------------------------------
    async def log_for(self, job: Job) -> JobLog:
        """The job's log; one shared object while the job is active, so followers wake."""
        if job.id not in self._logs:
            loaded = await asyncio.to_thread(JobLog, self._dir(job), asyncio.get_running_loop())
            self._logs.setdefault(job.id, loaded)
        return self._logs[job.id]

    def _dir(self, job: Job) -> Path:
        return Path(job.dir or self.jobs_dir / job.id)

    def _closed(self, job_id: str) -> None:
        """The job is terminal: its followers read to the end and stop."""
        found = self._logs.pop(job_id, None)
        if found is not None:
            found.finish()

    async def logs(
        self, job_id: str, offset: int = 0, *, follow_: bool = False, gone: Callable[[], bool] = lambda: False
    ) -> AsyncIterator[Chunk]:
        """The job's log from `offset`; with `follow_`, until the job ends (or `gone()`: the
        reader left)."""
        job = await self.get(job_id)
        if job.status.is_terminal():
            job_log = await asyncio.to_thread(JobLog, self._dir(job))
            job_log.finished = True
        else:
            job_log = await self.log_for(job)
            if (await self.get(job_id)).status.is_terminal():  # it ended in between
                self._closed(job_id)
        async for chunk in follow(job_log, offset, follow=follow_, gone=gone):
            yield chunk

    async def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        root = self._dir(await self.get(job_id)) / "artifacts"

        def walk() -> list[dict[str, Any]]:
            found = []
            for dirpath, _dirs, filenames in os.walk(root):  # does not follow symlinked folders
                for name in filenames:
                    full = os.path.join(dirpath, name)
                    try:
                        st = os.lstat(full)
                    except OSError:  # removed while being listed
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    found.append({"path": os.path.relpath(full, root), "size": st.st_size,
                                  "modified": st.st_mtime})
            return sorted(found, key=lambda a: a["path"])

        return await asyncio.to_thread(walk)

    async def artifact_path(self, job_id: str, path: str) -> Path:
        """The file behind an artifact path; refuses anything that leaves the artifacts folder."""
        job = await self.get(job_id)
        if not path or "\x00" in path or path.startswith("/") or ".." in path.split("/"):
            raise JobNotFound(f"no artifact {path!r}")
        root = os.path.realpath(self._dir(job) / "artifacts")

        def check() -> Path:
            full = os.path.realpath(os.path.join(root, path))
            if not _inside(full, root) or full == root or not os.path.isfile(full):
                raise JobNotFound(f"no artifact {path!r}")
            return Path(full)

        return await asyncio.to_thread(check)
