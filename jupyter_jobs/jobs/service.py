"""JobService: the job core's one service. Every face (REST handlers, the kernel's embedded
service, the CLI) calls it, gets the public shapes of `domain.replies` back, and catches the
domain errors of `domain.errors` (each carries its HTTP status). Nothing here blocks the event
loop. Features are plugged in (`plug`, `add_policy`, `events.subscribe`): it imports none.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Callable, Optional

from ..backends.base import Backend
from ..domain.errors import JobConflict, SpecError
from ..domain.instance_types import InstanceTypes
from ..domain.job import Job, Outcome, utcnow
from ..domain.spec import JobSpec, read_spec
from ..domain.status import FailureReason, JobStatus
from ..environments.git import GitSources
from ..environments.venvs import Environments
from ..storage.files import private_dir, remove_tree
from ..storage.logs import LogRegistry
from ..storage.series import MetricsReader
from ..storage.snapshots import SnapshotError, SnapshotStore
from ..storage.store import Store, Write
from .checks import SpecChecks
from .gpus import GPUAllocator
from .housekeeping import Housekeeper, Retention
from .plugins import Checked, Event, Events, Feature, Policies
from .queue import JobQueue
from .reads import JobReads
from .runner import JobRunner, RunnerEnv, record_end
from .tasks import TaskSet


@dataclasses.dataclass
class CoreSettings:
    """The core's own settings (traitlets in `app.config`; plain values for tests)."""

    kill_grace: float = 10.0
    max_running: int = 0
    max_log_size: int = 0
    retention: Optional[dict[str, Any]] = None
    housekeeping_interval: float = 3600.0
    strict_specs: bool = False
    max_metrics_size: int = 1 << 30
    default_requirements: str = ""


class JobService(JobReads):
    """Submit, list, watch, cancel, rerun and delete jobs; recover them after a restart."""

    def __init__(self, *, store: Store, snapshots: SnapshotStore, root_dir: Path, jobs_dir: Path, storage_dir: Path,
                 backends: dict[str, Backend], default_backend: str, gpus: GPUAllocator,
                 instance_types: Optional[InstanceTypes] = None, git: Optional[GitSources] = None,
                 environments: Optional[Environments] = None, **settings: Any):
        if default_backend not in backends:
            raise ValueError(f"default backend {default_backend!r} is not a configured backend")
        conf = CoreSettings(**settings)
        self.store, self.snapshots, self.root_dir = store, snapshots, Path(root_dir)
        self.backends, self.default_backend, self.gpus = backends, default_backend, gpus
        self.instance_types = instance_types or InstanceTypes({})
        git = git or GitSources(Path(jobs_dir).parent / "git")
        git.max_bytes = snapshots.max_bytes  # a git tree is refused over this before it is written out
        self.checks = SpecChecks(root_dir=self.root_dir, backends=backends, default_backend=default_backend, gpus=gpus,
                                 instance_types=self.instance_types, strict=conf.strict_specs, git=git)
        self.checkout = self.checks.checkout  # a git workspace's commit, recorded on the spec, and its files
        self.events, self.policies = Events(), Policies()
        self.features: list[Feature] = []
        self.tasks = TaskSet()
        self.log_files = LogRegistry(conf.max_log_size)
        self.metrics_reader = MetricsReader(conf.max_metrics_size)
        envs = environments or Environments(Path(jobs_dir).parent / "envs")
        self.env = RunnerEnv(
            store=store, snapshots=snapshots, logs=self.log_files, jobs_dir=Path(jobs_dir),
            storage_dir=Path(storage_dir), kill_grace=conf.kill_grace, spawn=self.tasks.spawn,
            gpu_inventory=gpus.total > 0, gpus=gpus, default_requirements=conf.default_requirements,
            root_dir=self.root_dir,
            environments=envs,
            ended=self._ended, started=lambda job: self.events.publish(Event("job.started", job)),
            launched=lambda job: self.events.publish(Event("job.launched", job)),
            requeued=lambda job_id: self.tasks.spawn(self._requeued(job_id)), depends=self.policies.depends,
            mounts=self.policies.mounts, finish=self.policies.finish)
        self.queue = JobQueue(backends=backends, gpus=gpus, max_running=conf.max_running, tasks=self.tasks,
                              launch=self._launch, reject=self._reject, hold=self.policies.hold)
        self.housekeeper = Housekeeper(store=store, snapshots=snapshots, retention=Retention(conf.retention or {}),
                                       interval=conf.housekeeping_interval, delete=self.delete,
                                       environments=functools.partial(_collect_environments, envs, backends),
                                       leftovers=envs.remove_leftovers)
        self._started: Optional[asyncio.Future] = None
        self._stopping = self._closed = False

    # -- plugging features in ---------------------------------------------------------------
    def plug(self, feature: Feature) -> None:
        """A feature started after the core recovered (in the order plugged), stopped before it."""
        self.features.append(feature)

    def add_policy(self, policy: Any) -> None:
        self.policies.add(policy)

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
        for feature in self.features:  # before the queue's pass: their policies hold from the start
            await feature.start()
        self.queue.kick()
        self.tasks.spawn(self.housekeeper.run_forever())

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
        for feature in reversed(self.features):
            await feature.stop()
        for backend in self.backends.values():
            await backend.close()

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
        """Validate a spec (a JSON object: `_spec_of`), snapshot its workspace, queue it."""
        return self._public(await self.submit_spec(await _spec_of(self.checks, body), origin=origin))

    async def submit_following(self, body: Any, origin: Optional[str] = None, gone: Callable[[], bool] = lambda: False
                               ) -> tuple[dict[str, Any], AsyncGenerator[dict[str, Any], None]]:
        """`submit`, and its log followed from the start (`logs(follow_=True)`): one request for
        both, as `docker run` attaches before it starts. The new job's log is registered with
        nothing to read, so neither this follower nor the job's start loads it (measured on the
        path to the first line: a job read and a log load, each a hop to a thread)."""
        job = await self.submit_spec(await _spec_of(self.checks, body), origin=origin)
        job_log = self.log_files.new(job.id, self.env.job_dir(job), asyncio.get_running_loop())
        return self._public(job), self._chunks(job.id, job_log, 0, True, gone)

    async def submit_spec(self, spec: JobSpec, *, origin: Optional[str] = None,
                          with_job: Optional[Callable[[Job], Optional[Write]]] = None,
                          unrecorded_env: Optional[Callable[[Job], dict[str, str]]] = None) -> Job:
        """Check, snapshot and record a job. `with_job(job)` may fill in the job's fields and
        return a write made in the transaction that records it (a schedule's firing);
        `unrecorded_env(job)`: variables it gets that no record, log or reply holds (a kernel's key)."""
        spec, folder = await self.checks.checkout(await self.resolve(spec))
        checked = await self.checks.check(spec, folder=folder)
        spec = self.instance_types.apply(spec)  # recorded as it runs: the type's fields filled in
        async with _files(self.pinned_snapshot, spec, checked.workspace) as (snapshot, skipped):
            job = self.new_job(spec, checked.backend, snapshot, checked.workspace, notes=checked.notes + skipped)
            job.origin = origin
            if unrecorded_env is not None:
                self.env.unrecorded_env[job.id] = unrecorded_env(job)
            await self.record([job], with_job(job) if with_job else None)
            return job

    @contextlib.asynccontextmanager
    async def pinned_snapshot(self, folder: Path) -> AsyncIterator[Any]:
        """A snapshot of `folder`, kept from garbage collection until the jobs on it are recorded."""
        try:
            snap = await asyncio.to_thread(self.snapshots.snapshot, folder)
        except SnapshotError as exc:
            raise SpecError.one("workspace", str(exc)) from None
        try:
            yield snap
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

    async def record(self, jobs: list[Job], also: Optional[Write] = None) -> None:
        """Record jobs (and a feature's write, in the same transaction), then let the queue look."""
        await self.store.insert_many([(j, Path(j.dir or self.env.jobs_dir / j.id)) for j in jobs], also,
                                     first=lambda: [private_dir(Path(j.dir)) for j in jobs if j.dir])
        if self.events.wants("job.queued"):
            for job in jobs:
                self.events.publish(Event("job.queued", job))
        self.queue.add(jobs)

    async def check(self, spec: JobSpec) -> Checked:
        """The backend a spec runs on, its workspace and notes; SpecError names every problem."""
        spec, folder = await self.checks.checkout(spec)
        return await self.checks.check(spec, folder=folder)

    def apply_instance_type(self, spec: JobSpec) -> JobSpec:
        return self.instance_types.apply(spec)

    async def resolve(self, spec: JobSpec) -> JobSpec:
        """The spec as features record it (a dataset's version); a SpecError names the field."""
        return await self.policies.resolve(spec)

    def resolve_workspace(self, workspace: str) -> Path:
        return self.checks.resolve_workspace(workspace)

    def _ended(self, job: Job) -> None:
        self.env.unrecorded_env.pop(job.id, None)
        self.queue.discard(job.id)
        self.events.publish(Event("job.ended", job))

    async def _requeued(self, job_id: str) -> None:
        """A job back in the queue (a retry, a launch a restart interrupted)."""
        job = await self.store.get(job_id)
        if job is not None and job.status == JobStatus.QUEUED:
            self.queue.add([job])

    # -- what features may do with jobs -----------------------------------------------------
    def release(self, job_ids: list[str], spec: Optional[JobSpec] = None) -> None:
        """Queued jobs a feature held back (their `after` is cleared in the store) may start."""
        self.queue.release(job_ids, spec)

    async def skip(self, job_id: str, message: str) -> bool:
        """End a queued job that can never run as skipped."""
        at = utcnow()
        if not await self.store.transition(job_id, JobStatus.SKIPPED, at, only_from=JobStatus.QUEUED,
                                           finished_at=at, message=message):
            return False
        self.queue.discard(job_id)
        return True

    def dropped(self, job_id: str) -> None:
        """A queued job a feature ended in the store (cancelled with its run): forget it."""
        self.log_files.close(job_id)  # one being prepared notices and does not start
        self.queue.discard(job_id)

    async def stop_job(self, job_id: str) -> None:
        """Cancel a job under way (running, or launched and pending in its backend), not waiting."""
        if (runner := self.queue.active.get(job_id)) is not None:
            await runner.cancel(0)

    def kick(self) -> None:
        self.queue.kick()

    def runners(self) -> dict[str, JobRunner]:
        """The jobs under way (dequeued, until their end is recorded), by id."""
        return self.queue.active

    def job_dir(self, job: Job) -> Path:
        return self.env.job_dir(job)

    def orders_dependencies(self, backend: str) -> bool:
        return self.backends[backend].capabilities().dependencies

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        """Run `coro` in the background; cancelled when the service stops."""
        return self.tasks.spawn(coro)  # type: ignore[arg-type]

    # -- rerun / cancel / delete ------------------------------------------------------------
    async def export(self, job_id: str, fmt: str = "yaml") -> tuple[str, list[str]]:
        """The job's spec as a job file (`yaml` or `json`), and the secret env keys left out."""
        if fmt not in ("yaml", "json"):
            raise SpecError.one("format", "yaml or json")
        return (await self._job(job_id)).spec.as_file(fmt)

    async def rerun(self, job_id: str, origin: Optional[str] = None) -> dict[str, Any]:
        """The same spec again, with a new snapshot of the workspace as it is now."""
        job = await self._job(job_id)
        if job.kind == "kernel":  # nobody would connect to it: a notebook starting the kernel starts one
            raise JobConflict(f"job {job_id} was the kernel of {job.notebook_path}: it is not run again")
        return self._public(await self.submit_spec(job.spec, origin=origin))

    async def cancel(self, job_id: str, wait: float = 1.0) -> dict[str, Any]:
        """Cancel a queued or running job; waits up to `wait` s for a running one to end."""
        job = await self._job(job_id)
        if job.status.is_terminal():
            raise JobConflict(f"job {job_id} is already {job.status.value}")
        await _cancel_queued(self.env, job)
        if (runner := self.queue.active.get(job_id)) is not None:
            await runner.cancel(wait)  # also one held, or pending in its backend
            await _cancel_queued(self.env, await self._job(job_id))  # a preemption that ended first requeued it
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

async def _cancel_queued(env: RunnerEnv, job: Job) -> None:
    if job.status == JobStatus.QUEUED and await env.store.transition(
        job.id, JobStatus.CANCELLED, utcnow(), only_from=JobStatus.QUEUED, finished_at=utcnow(),
        message="cancelled before it started",
    ):
        env.logs.close(job.id)  # a job being prepared notices and does not start
        env.ended(job)


_Files = tuple[Optional[str], list[str]]  # a snapshot's id (None: live) and what it left out


async def _spec_of(checks: SpecChecks, body: Any) -> JobSpec:
    """The spec a JSON body holds. A bad one gets every error at once: what the model accepts of
    it goes through the service's checks too."""
    spec, error = read_spec(body)
    if error is None:
        return spec  # type: ignore[return-value]
    if spec is not None:
        try:  # a backend left out for its own error would be checked as the default one: skip it
            await checks.check(spec, with_backend=not error.names("backend"))
        except SpecError as more:
            error = error.plus(more)
    raise error


@contextlib.asynccontextmanager
async def _files(pin: Callable[[Path], Any], spec: JobSpec, folder: Path) -> AsyncIterator[_Files]:
    """A job's files: a pinned snapshot of its folder and what it left out, or none for a live job."""
    if spec.live and not spec.git:  # the folder itself: nothing to snapshot
        yield None, []
        return
    async with pin(folder) as snap:
        yield snap.id, [f"left out of the workspace: {path} ({why})" for path, why in snap.skipped[:50]]


def _collect_environments(envs: Environments, backends: dict[str, Backend], max_age: Optional[float],
                          max_size: Optional[int]) -> dict[str, int]:
    """Housekeeping's part for environments: the host's venvs, then each backend's own."""
    done = envs.collect(max_age, max_size)
    for backend in backends.values():
        done.update(backend.collect_environments(envs, max_age, max_size))
    return done


def _repository(url: str) -> str:
    """A repository's name from its URL: `.../team/mnist.git` -> `mnist`."""
    return url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
