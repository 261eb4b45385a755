"""The queue: which queued job starts next, and the jobs under way.

Oldest first; a job starts when its backend is under its limit of jobs at once and the GPUs it
asks for are free. The queue itself lives in the store (status `queued`), so it survives
restarts; this object holds what is under way in memory and decides, one pass at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Callable, Optional

from .backends.base import Backend
from .gpus import GPUAllocator
from .models import Job, JobStatus, utcnow
from .runner import JobRunner
from .store import Store
from .tasks import TaskSet

log = logging.getLogger(__name__)

#: starts a dequeued job on its backend with the GPUs it was given
Launch = Callable[[Job, Backend, list[int]], JobRunner]
#: ends a queued job that can never start, with a message
Reject = Callable[[Job, str], Awaitable[None]]


class JobQueue:
    def __init__(self, *, store: Store, backends: dict[str, Backend], gpus: GPUAllocator, max_running: int,
                 tasks: TaskSet, launch: Launch, reject: Reject,
                 hold: Callable[[Job], Optional[str]] = lambda job: None):
        self.store, self.backends, self.gpus, self.max_running = store, backends, gpus, max_running
        self.tasks, self.launch, self.reject = tasks, launch, reject
        self.hold = hold  # why a job must wait for a reason of its own (a workflow's max_parallel)
        self.active: dict[str, JobRunner] = {}  # dequeued, until its end is recorded
        self.waiting: dict[str, str] = {}  # why each queued job did not start at the last pass
        self._timer: Optional[asyncio.TimerHandle] = None  # the next retry's backoff ends
        self._wanted = False
        self._pass: Optional[asyncio.Task] = None

    def kick(self) -> None:
        """Look for jobs to start soon; passes never overlap, a kick during one makes another."""
        self._wanted = True
        if self._pass is None:
            self._pass = self.tasks.spawn(self._passes())

    async def _passes(self) -> None:
        try:
            while self._wanted:
                self._wanted = False
                try:
                    await self._one_pass()
                except Exception:
                    log.exception("scheduling jobs failed")
        finally:
            self._pass = None

    async def _one_pass(self) -> None:
        cursor, waiting, position = None, {}, 0
        while True:
            # a workflow job waiting for jobs it needs is not looked at: its run lets it go
            queued, cursor = await self.store.list(status=[JobStatus.QUEUED], limit=200, cursor=cursor,
                                                   oldest_first=True, unblocked=True)
            for job in queued:
                if job.id not in self.active and (why := await self._consider(job)):
                    position += 1
                    waiting[job.id] = f"{why}; #{position} in the queue"
            if cursor is None:
                break
        self.waiting = waiting

    async def _consider(self, job: Job) -> Optional[str]:
        """Start the job if it can start now; otherwise say why it waits."""
        backend = self.backends.get(job.backend)
        if backend is None:
            await self.reject(job, f"backend {job.backend!r} is no longer configured")
            return None
        if job.not_before and job.not_before > utcnow():
            self._wake_at(job.not_before)
            return f"retrying: attempt {job.attempt} starts at {job.not_before:%H:%M:%S} UTC"
        if why := self.hold(job):
            return why
        limit = backend.max_running or self.max_running
        if limit and self.count(job.backend) >= limit:
            return f"the {job.backend} backend runs {limit} job(s) at once, all busy"
        gpus = self.gpus.allocate(job.spec.resources.gpus) if backend.host_gpus else []
        if gpus is None:
            return f"needs {job.spec.resources.gpus} GPU(s), {self.gpus.free()} of {self.gpus.total} free"
        self.active[job.id] = self.launch(job, backend, gpus)
        return None

    def why_waiting(self, job: Job) -> Optional[str]:
        """Why a queued job has not started: the queue's reason, or its backend's (e.g. Slurm's)."""
        if job.after:
            return f"waiting for {len(job.after)} job(s) of its workflow it needs"
        runner = self.active.get(job.id)
        if runner is None:
            return self.waiting.get(job.id, "waiting for the scheduler")
        if runner.execution is None:
            return "starting: preparing its workspace"
        return runner.execution.waiting() or "starting"

    def _wake_at(self, when: datetime) -> None:
        """Look again when a retry's backoff is over."""
        delay = max(0.0, (when - utcnow()).total_seconds())
        if self._timer is None or self._timer.when() > asyncio.get_running_loop().time() + delay:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(delay + 0.01, self._woken)

    def _woken(self) -> None:
        self._timer = None
        self.kick()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def count(self, backend: str) -> int:
        return sum(1 for r in self.active.values() if r.job.backend == backend)

    def adopt(self, runner: JobRunner) -> None:
        """A job found running at start-up: its GPUs are taken, it counts against its limit."""
        self.gpus.claim(runner.gpus)
        self.active[runner.id] = runner

    def done(self, runner: JobRunner) -> None:
        """The runner is over: free its place and GPUs (unless the server is leaving it running)."""
        if runner.detached:
            return
        if self.active.get(runner.id) is runner:
            del self.active[runner.id]
        self.gpus.release(runner.gpus)
        self.kick()
