"""The queue: which queued job starts next, and the jobs under way.

Higher priority first (capped by the host's policy), then oldest; a job starts when its
backend is under its limit of jobs at once and the GPUs it asks for are free. The queue lives
in the store (status `queued`), so it survives restarts; this object keeps the queued jobs in
order in memory (loaded at start, then told of every job that enters or leaves the queue), so
a pass costs what it starts, not the backlog: it stops as soon as every backend with jobs
waiting is full. Why a job waits, and its place, are worked out when someone asks.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import Counter
from collections.abc import Awaitable, Iterable
from datetime import datetime
from typing import Callable, Optional

from ..backends.base import Backend
from .gpus import GPUAllocator
from .preempt import Preemptor
from ..domain.job import Job, utcnow
from ..domain.spec import JobSpec
from .runner import JobRunner
from .tasks import TaskSet

log = logging.getLogger(__name__)

#: starts a dequeued job on its backend with the GPUs it was given
Launch = Callable[[Job, Backend, list[int]], JobRunner]
#: ends a queued job that can never start, with a message
Reject = Callable[[Job, str], Awaitable[None]]


class JobQueue:
    def __init__(self, *, backends: dict[str, Backend], gpus: GPUAllocator, max_running: int,
                 tasks: TaskSet, launch: Launch, reject: Reject,
                 hold: Callable[[Job], Optional[str]] = lambda job: None):
        self.backends, self.gpus, self.max_running = backends, gpus, max_running
        self.tasks, self.launch, self.reject = tasks, launch, reject
        self.hold = hold  # why a job must wait for a reason of its own (a workflow's max_parallel)
        self.active: dict[str, JobRunner] = {}  # dequeued, until its end is recorded
        self.waiting: dict[str, str] = {}  # why a queued job did not start when it was last looked at
        self._queued: dict[str, Job] = {}  # the jobs waiting to start, by id
        self._places: dict[str, tuple[int, int, datetime, str]] = {}  # each one's place in _order, as added
        self._order: list[tuple[int, int, datetime, str]] = []  # their places (_place): first first
        self._open: Counter[str] = Counter()  # queued jobs per backend that wait for no other job
        self._timer: Optional[asyncio.TimerHandle] = None  # the next retry's backoff ends
        self._wanted = False
        self._pass: Optional[asyncio.Task] = None
        self.preemptor = Preemptor(gpus, self.active, tasks.spawn)

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

    # -- what is queued -----------------------------------------------------------------------
    def add(self, jobs: Iterable[Job]) -> None:
        """Jobs (newly recorded, or back in the queue: a retry, an interrupted launch) to start."""
        for job in jobs:
            self._take(job.id)
            self._queued[job.id] = job
            self._places[job.id] = self._place(job)
            bisect.insort(self._order, self._places[job.id])
            if not job.after:
                self._open[job.backend] += 1
        self.kick()

    def discard(self, job_id: str) -> Optional[Job]:
        """A job left the queue without starting (it ended, was cancelled or skipped)."""
        job = self._take(job_id)
        if job is not None and job.spec.resources.gpus and self.gpus.shared:
            self._gpus(self.gpus.release, [], job_id)  # its place in the host's GPU queue
        return job

    def _take(self, job_id: str) -> Optional[Job]:
        job = self._queued.pop(job_id, None)
        self.waiting.pop(job_id, None)
        if job is not None:
            place = self._places.pop(job_id)
            i = bisect.bisect_left(self._order, place)
            if i < len(self._order) and self._order[i][-1] == job_id:
                del self._order[i]
            if not job.after:
                self._open[job.backend] -= 1
        return job

    def _place(self, job: Job) -> tuple[int, int, datetime, str]:
        """Where the job stands in this server's queue: higher priority first (as the host's
        policy caps it, then as asked: these are all this user's jobs), then older."""
        return -self.gpus.priority(job.spec.priority), -job.spec.priority, job.created_at, job.id

    def release(self, job_ids: Iterable[str], spec: Optional[JobSpec] = None) -> None:
        """Workflow jobs that no longer wait for others (with their outputs filled in: `spec`)."""
        for job_id in job_ids:
            job = self._queued.get(job_id)
            if job is not None and job.after:
                job.after = []
                self._open[job.backend] += 1
            if job is not None and spec is not None:
                job.spec = spec
        self.kick()

    def __len__(self) -> int:
        return len(self._queued)

    async def _one_pass(self) -> None:
        open_ = {backend for backend, n in self._open.items() if n > 0}
        full: set[str] = set()
        for *_, job_id in list(self._order):
            if open_ <= full:
                break  # every backend with jobs waiting is busy: nothing behind can start
            job = self._queued.get(job_id)
            if job is None or job.after or job.id in self.active or job.backend in full:
                continue
            why, backend_full = await self._consider(job)
            if backend_full:
                full.add(job.backend)
            if why:
                self.waiting[job.id] = why
        if self.preemptor.armed:  # a job ahead (here, or another server's) may need their GPUs
            await self.preemptor.check(self._queued.values())
            self._wake_in(1.0)

    async def _consider(self, job: Job) -> tuple[Optional[str], bool]:
        """Start the job if it can start now; otherwise say why it waits (and whether its
        backend is full, so nothing else of it can start either)."""
        backend = self.backends.get(job.backend)
        if backend is None:
            self._take(job.id)
            await self.reject(job, f"backend {job.backend!r} is no longer configured")
            return None, False
        why, full = self._reason(job, backend)
        if why:
            return why, full
        count = job.spec.resources.gpus if backend.host_gpus else 0
        if count and (never := self.gpus.refusal(count, job.spec.project)):
            self._take(job.id)
            await self.reject(job, never)
            return None, False
        gpus: Optional[list[int]] = []
        if count and self.gpus.shared:  # the host's pool: files, on the allocator's own thread
            gpus = await self.gpus.run(self.gpus.allocate, count, job.id, job.created_at.timestamp(),
                                       job.spec.priority, job.spec.project)
        elif count:
            gpus = self.gpus.allocate(count)
        if gpus is None:
            if self.gpus.shared:  # other servers free devices without telling: look again soon
                self._wake_in(0.5)
            return self.gpus.last_why or f"needs {count} GPU(s), {self.gpus.last_free} of {self.gpus.total} free", False
        self._take(job.id)
        self.active[job.id] = self.launch(job, backend, gpus)
        return None, False

    def _reason(self, job: Job, backend: Backend) -> tuple[Optional[str], bool]:
        """Why a job cannot start now, short of asking for GPUs (None if it may), and whether
        that is its backend being full."""
        if job.not_before and job.not_before > utcnow():
            self._wake_at(job.not_before)
            return f"retrying: attempt {job.attempt} starts at {job.not_before:%H:%M:%S} UTC", False
        if why := self.hold(job):
            return why, False
        limit = backend.max_running or self.max_running
        if limit and self.count(job.backend) >= limit:
            return f"the {job.backend} backend runs {limit} job(s) at once, all busy", True
        return None, False

    def why_waiting(self, job: Job) -> Optional[str]:
        """Why a queued job has not started: the queue's reason, or its backend's (e.g. Slurm's)."""
        if job.after:
            return f"waiting for {len(job.after)} job(s) of its workflow it needs"
        runner = self.active.get(job.id)
        if runner is not None:
            if runner.execution is None:
                return "starting: preparing its workspace"
            return runner.execution.waiting() or "starting"
        queued = self._queued.get(job.id)
        backend = self.backends.get(job.backend)
        if queued is None or backend is None:
            return "waiting for the scheduler"
        why = self.waiting.get(job.id) or self._reason(queued, backend)[0]
        if not why:
            return "waiting for the scheduler"
        return f"{why}; #{bisect.bisect_left(self._order, self._places[queued.id]) + 1} in the queue"

    def _wake_at(self, when: datetime) -> None:
        """Look again when a retry's backoff is over."""
        self._wake_in(max(0.0, (when - utcnow()).total_seconds()) + 0.01)

    def _wake_in(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is None or self._timer.when() > loop.time() + seconds:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_later(seconds, self._woken)

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
        self._gpus(self.gpus.claim, runner.gpus, runner.id)
        self.active[runner.id] = runner

    def done(self, runner: JobRunner) -> None:
        """The runner is over: free its place and GPUs (unless the server is leaving it running)."""
        if runner.detached:
            return
        if self.active.get(runner.id) is runner:
            del self.active[runner.id]
        self._gpus(self.gpus.release, runner.gpus, runner.id)
        self.kick()

    def _gpus(self, call: Callable[[list[int], str], None], gpus: list[int], owner: str) -> None:
        """Claim or release a job's GPUs: at once in memory, on the allocator's thread for the host's pool."""
        if self.gpus.shared:
            self.tasks.spawn(self.gpus.run(call, gpus, owner))
        else:
            call(gpus, owner)
