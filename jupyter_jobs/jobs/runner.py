"""One job's life: prepare its folder, start it, watch it, expire it, stop it, record its end.

A JobRunner exists from the moment the queue hands a job to a backend (or the service finds
it running at start-up) until its terminal status is stored. Everything that can race (a
cancel during the launch, a timeout against the exit, a shutdown) meets in this one object.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Optional
from collections.abc import Awaitable

from ..backends.base import OUTPUTS_DIR, Backend, BackendError, Dependency, Execution, JobContext, Mount
from ..backends import notebooks
from ..environments.venvs import Environments, EnvironmentFailed, requirements_text
from ..backends.base import start_time
from .gpus import GPUAllocator
from ..storage.logs import JobLog, LogRegistry
from ..domain.status import FailureReason, JobStatus, StopReason
from ..domain.job import Job, Kept, Outcome, Verdict, utcnow, verdict
from ..storage.series import METRICS_DIR
from ..storage.store import Store
from ..storage.snapshots import SnapshotStore

log = logging.getLogger(__name__)


async def _no_dependencies(job: Job) -> list[Dependency]:
    return []


async def _no_mounts(job: Job) -> list[Mount]:
    return []


async def _nothing_kept(job: Job) -> list[Kept]:
    return []


@dataclass
class RunnerEnv:
    """What every runner shares, handed over by the service."""

    store: Store
    snapshots: SnapshotStore
    logs: LogRegistry
    jobs_dir: Path
    storage_dir: Path
    kill_grace: float
    spawn: Callable[[Any], asyncio.Task]
    #: whether the service hands out GPU indices (a GPU inventory is known), and who hands them out
    gpu_inventory: bool = False
    gpus: Optional[GPUAllocator] = None
    #: told of every job that reached a terminal status (a workflow run moves on)
    ended: Callable[[Job], None] = lambda job: None
    #: told of every job whose command started running
    started: Callable[[Job], None] = lambda job: None
    #: told of every job its backend took (a run the cluster orders hands it the next ones)
    launched: Callable[[Job], None] = lambda job: None
    #: told of every job that is back in the queue (by id: a retry, an interrupted launch)
    requeued: Callable[[str], Any] = lambda job_id: None
    #: environments built from requirements, and what applies when a spec names none ("" or "auto")
    environments: Optional[Environments] = None
    default_requirements: str = ""
    #: what a job must wait for on its engine (for backends that order jobs themselves)
    depends: Callable[[Job], Awaitable[list[Dependency]]] = _no_dependencies
    #: what a job reads read-only beside its workspace (features' mount policies)
    mounts: Callable[[Job], Awaitable[list[Mount]]] = _no_mounts
    #: what a job that exited 0 makes that features keep (its dataset outputs' new versions)
    finish: Callable[[Job], Awaitable[list[Kept]]] = _nothing_kept
    #: the server's root: a live job's workspace is its folder there
    root_dir: Optional[Path] = None
    #: variables a job gets that are never recorded (a kernel's connection key), by job id: gone
    #: with the job's end or the server
    unrecorded_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def job_dir(self, job: Job) -> Path:
        return Path(job.dir or self.jobs_dir / job.id)


def _links(folder: Path, targets: dict[str, Path]) -> None:
    """`folder/<name>` -> each target, made afresh."""
    if folder.exists():
        shutil.rmtree(folder)
    for name, target in targets.items():
        link = folder / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)


def _inputs(given: dict[str, str], dirs: dict[str, Path], jobs_dir: Path) -> dict[str, Path]:
    """What a workflow job reads, by folder: `<job id>` (its artifacts) or `<job id>/<path>` (a
    volume in them). A path its job turned into a link out of its artifacts is left out."""
    found = {}
    for folder, value in given.items():
        job_id, _, path = value.partition("/")
        artifacts = dirs.get(job_id, jobs_dir / job_id) / "artifacts"
        target = artifacts / path if path else artifacts
        if not path or target.resolve().is_relative_to(artifacts.resolve()):
            found[folder] = target
    return found


async def record_end(env: RunnerEnv, job: Job, outcome: Outcome, stop_reason: Optional[StopReason] = None,
                     why: str = "") -> None:
    """Store the terminal status an outcome means (the first terminal status wins) and let
    the log's followers finish; or, for a failure the spec retries or a preemption, queue the
    next attempt."""
    end = verdict(outcome, stop_reason, job.spec.timeout, why)
    if stop_reason == "preempt" and end.status != JobStatus.SUCCEEDED:
        await _preempted(env, job, why or "a job ahead of it needed its GPUs")
        return
    if end.status == JobStatus.SUCCEEDED and job.spec.outputs:
        end = await _keep_outputs(env, job, end)
    if job.spec.notebook and end.reason == FailureReason.EXIT_CODE:  # the runner says which cell
        said = await asyncio.to_thread(notebooks.failure, env.job_dir(job) / METRICS_DIR)
        end = dataclasses.replace(end, message=said or end.message)
    at = utcnow()
    tries = job.attempt - job.preempted  # a preemption is not a failed attempt
    if stop_reason != "cancel" and end.reason in job.spec.retry_on and tries <= job.spec.retries:
        await _retry(env, job, f"{end.reason.value}: {end.message}" if end.reason else "failed")
        return
    if await env.store.transition(job.id, end.status, at, exit_code=outcome.exit_code, finished_at=at,
                                  reason=end.reason, message=end.message):  # as stored: the end's readers
        job.status, job.reason, job.message = end.status, end.reason, end.message  # need not read it back
        job.exit_code, job.finished_at = outcome.exit_code, at
    env.logs.close(job.id)
    env.ended(job)


async def _keep_outputs(env: RunnerEnv, job: Job, end: Verdict) -> Verdict:
    """Its declared outputs kept before its success is recorded, each said in its log; one that
    could not be kept fails the job (the jobs after it must not read what is not there)."""
    kept = await env.finish(job)
    if kept:
        log_ = await env.logs.active(job.id, env.job_dir(job))
        log_.note("".join(f"[jupyter_jobs] {k.message}\n" for k in kept))
    failed = [k.message for k in kept if k.failed]
    return Verdict(JobStatus.FAILED, FailureReason.OUTPUT, "; ".join(failed)) if failed else end


async def _preempted(env: RunnerEnv, job: Job, why: str) -> None:
    """Back in the queue at once, attempt counting up; its next start says JOB_PREEMPTED=1."""
    at = utcnow()
    message = f"preempted: {why}; queued again as attempt {job.attempt + 1}"
    log_ = await env.logs.active(job.id, env.job_dir(job))
    log_.note(f"\n[jupyter_jobs] {message}\n")
    await env.store.transition(job.id, JobStatus.QUEUED, at, message=message, attempt=job.attempt + 1,
                               preempted=job.preempted + 1, backend_state={}, gpus=[], started_at=None,
                               exit_code=None, reason=None)
    env.requeued(job.id)


async def _retry(env: RunnerEnv, job: Job, why: str) -> None:
    """Queue the job again after a backoff (doubling each attempt); the event and the log say so."""
    delay = job.spec.retry_backoff * 2 ** (job.attempt - 1)
    at = utcnow()
    message = (f"attempt {job.attempt} of {job.spec.retries + 1} failed ({why}); "
               f"attempt {job.attempt + 1} starts in {delay:g} s")
    log_ = await env.logs.active(job.id, env.job_dir(job))
    log_.note(f"\n[jupyter_jobs] {message}\n")
    await env.store.transition(job.id, JobStatus.QUEUED, at, message=message, attempt=job.attempt + 1,
                               not_before=at + timedelta(seconds=delay), backend_state={}, gpus=[],
                               started_at=None, exit_code=None, reason=None)
    env.requeued(job.id)


class JobRunner:
    """Drives one job through a backend. `run()` for a dequeued job, `reattach()` for one
    found running after a restart; `cancel()`/`expire()` stop it; `detach()` lets it run on."""

    def __init__(self, env: RunnerEnv, job: Job, backend: Backend, gpus: list[int]):
        self.env, self.job, self.backend, self.gpus = env, job, backend, gpus
        self.execution: Optional[Execution] = None
        self.stop_reason: Optional[StopReason] = None
        self.stop_why = ""  # why the service stops it, in words (a preemption, idle GPUs)
        self.launching: Optional[asyncio.Future[None]] = None  # set while backend.start runs
        self.recorded = asyncio.Event()  # its terminal status is stored
        self.detached = False
        self.cancelled = False  # asked to cancel: one still being prepared never starts
        self._timer: Optional[asyncio.TimerHandle] = None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def ports(self) -> dict[str, int]:
        """Where its endpoints listen (chosen at its start), by name."""
        return dict(self.execution.state.get("ports") or {}) if self.execution is not None else {}

    async def context(self) -> JobContext:
        job_dir = self.env.job_dir(self.job)
        return self._context(await self._input_dirs(), await self.env.logs.active(self.job.id, job_dir))

    async def _input_dirs(self) -> dict[str, Path]:
        needed = {v.partition("/")[0] for v in self.job.inputs.values()}
        return await self.env.store.job_dirs(list(needed)) if needed else {}

    def _context(self, dirs: dict[str, Path], log_: JobLog) -> JobContext:
        job_dir = self.env.job_dir(self.job)
        return JobContext(
            job=self.job, dir=job_dir, workspace=job_dir / "workspace", artifacts=job_dir / "artifacts",
            storage=self.env.storage_dir, log=log_, metrics=job_dir / METRICS_DIR,
            inputs=_inputs(self.job.inputs, dirs, self.env.jobs_dir),
            gpus=self.gpus if self.env.gpu_inventory and self.backend.host_gpus else None,
            extra_env=dict(self.env.unrecorded_env.get(self.job.id, {})),
        )

    def _prepare(self, dirs: dict[str, Path], mounts: list[Mount], open_log: Optional[JobLog],
                 loop: asyncio.AbstractEventLoop) -> tuple[JobContext, str]:
        """The job's context with its log (`open_log`, or loaded here), its private workspace copy
        and folders, and the requirements it names (blocking: runs in a thread, one hop for all of
        it, as it is on the path to the job's first line)."""
        ctx = self._context(dirs, open_log.open_files() if open_log else
                            self.env.logs.load(self.env.job_dir(self.job), loop))
        ctx.mounts = mounts
        try:
            return ctx, self._prepare_folders(ctx)
        except BaseException:
            if ctx.log is not open_log:
                ctx.log.close()
            raise

    def _prepare_folders(self, ctx: JobContext) -> str:
        if ctx.workspace.is_symlink():
            ctx.workspace.unlink()
        elif ctx.workspace.exists():  # a start interrupted by a restart: begin afresh
            shutil.rmtree(ctx.workspace)
        if self.job.spec.live and self.env.root_dir is not None:  # the folder itself, as the user sees it
            ctx.workspace.parent.mkdir(parents=True, exist_ok=True)
            ctx.workspace.symlink_to((self.env.root_dir / self.job.spec.workspace).resolve(), target_is_directory=True)
        else:
            assert self.job.snapshot
            self.env.snapshots.materialize(self.job.snapshot, ctx.workspace)
        ctx.artifacts.mkdir(parents=True, exist_ok=True)
        for key in self.job.spec.outputs:  # $JOB_OUTPUTS_DIR/<key>, there to write into (never through a
            for folder in (ctx.artifacts / OUTPUTS_DIR, ctx.artifacts / OUTPUTS_DIR / key):  # link an attempt left)
                if not folder.is_symlink():
                    with contextlib.suppress(OSError):  # a file in its place: the job finds no folder
                        folder.mkdir(exist_ok=True)
        ctx.metrics.mkdir(exist_ok=True)
        if ctx.inputs:  # $JOB_INPUTS_DIR/<job>[/<k=v,...>] -> the artifacts of the jobs it needs
            _links(ctx.dir / "inputs", ctx.inputs)
        for folder in {m.folder for m in ctx.mounts}:  # $JOB_DATASETS_DIR/<name> -> a version's files
            _links(ctx.dir / folder, {m.name: m.source for m in ctx.mounts if m.folder == folder})
        self.env.storage_dir.mkdir(parents=True, exist_ok=True)
        if self.env.environments is None or not self.backend.capabilities().environments:
            return ""
        return requirements_text(self.job.spec.requirements, ctx.workspace, self.env.default_requirements)

    # -- starting ---------------------------------------------------------------------------
    async def run(self, stopping: Callable[[], bool]) -> None:
        """Prepare, start and watch a dequeued job; `stopping()`: the service is shutting down."""
        launched = asyncio.get_running_loop().create_future()
        try:
            dirs, mounts = await self._input_dirs(), await self.env.mounts(self.job)
            ctx, text = await asyncio.to_thread(self._prepare, dirs, mounts, self.env.logs.get(self.job.id),
                                                asyncio.get_running_loop())
            if self.cancelled or stopping():  # its log closed meanwhile (or never registered) stays so
                if self.env.logs.get(self.job.id) is not ctx.log:
                    ctx.log.close()
                return
            ctx.log = self.env.logs.adopt(self.job.id, ctx.log)
            await self._environment(ctx, text)
            ctx.log_base = ctx.log.stream_sizes()
            if self.cancelled or stopping():  # (another end while it was prepared: its launch is refused)
                return  # cancelled while being prepared, or shutting down: it never starts
            if self.backend.capabilities().dependencies:
                ctx.depends = await self.env.depends(self.job)
            self.launching = launched
            ctx.ports = await self.backend.listen_ports(self.job.spec)
            self.execution = await self.backend.start(ctx)
            if ctx.ports:  # saved with how to find the job: the proxy's only targets
                self.execution.state["ports"] = ctx.ports
        except Exception as exc:
            await self._not_started(exc)
            return
        finally:
            if self.execution is None:
                launched.done() or launched.set_result(None)
        try:
            await self._launch(self.execution)
        finally:
            launched.set_result(None)
        await self.watch()

    async def _environment(self, ctx: JobContext, text: str) -> None:
        """The environment its requirements (`text`) name: built once, its output in the job's log."""
        envs = self.env.environments
        if envs is None or not text.strip():
            return
        loop = asyncio.get_running_loop()
        await self.backend.environment(ctx, text, envs,
                                       lambda data: loop.call_soon_threadsafe(ctx.log.append, "stderr", data))

    async def _not_started(self, exc: Exception) -> None:
        if isinstance(exc, EnvironmentFailed):
            await record_end(self.env, self.job, Outcome(None, FailureReason.ENVIRONMENT,
                                                         f"the environment could not be built: {exc}"))
            self.recorded.set()
            return
        if isinstance(exc, BackendError):
            message = str(exc)
        else:
            log.exception("starting job %s failed", self.id)
            message = f"could not start the job: {exc}"
        await record_end(self.env, self.job, Outcome(None, FailureReason.BACKEND_ERROR, message))
        self.recorded.set()

    async def _launch(self, execution: Execution) -> None:
        """Record the launch (how to find the job again), and only then let it run: a server
        that dies in between leaves a held job that the next one adopts or starts afresh."""
        recorded = await self.env.store.update(self.id, only_in=JobStatus.QUEUED, backend_state=execution.state,
                                               gpus=self.gpus)
        if not recorded:  # cancelled while it was being set up: it never runs
            self.stop_reason = "cancel"
            await execution.stop(self.env.kill_grace)
            return
        held = await self._hold_gpus(execution)  # before it runs, where the backend knows its process
        await execution.release()
        if not held:
            await self._hold_gpus(execution)
        self.env.launched(self.job)

    async def _hold_gpus(self, execution: Execution) -> bool:
        """With the host's GPU pool: the job's own process holds its devices from now on, so
        they stay held if this server dies, and are free once the job is gone."""
        allocator = self.env.gpus
        if not self.gpus or allocator is None or not allocator.shared:
            return True
        pid = await execution.process()
        if pid is None:
            return False
        holder = {"pid": pid, "start": start_time(pid)}
        await allocator.run(allocator.held, self.id, self.gpus, holder)
        return True

    async def reattach(self) -> None:
        """Find a job launched before the restart, finish a stop under way, watch it."""
        try:
            ctx = await self.context()
            ctx.ports = dict(self.job.backend_state.get("ports") or {})
            self.execution = await self.backend.reattach(ctx, self.job.backend_state)
            if ctx.ports:
                self.execution.state["ports"] = ctx.ports
        except Exception as exc:
            log.exception("reattaching job %s failed", self.id)
            await self.end(Outcome(None, FailureReason.LOST, f"could not find the job again: {exc}"))
            return
        log.info("reattached job %s", self.id)
        self.stop_reason = self.job.backend_state.get("stop_reason")
        self.stop_why = str(self.job.backend_state.get("stop_why") or "")
        if self.stop_reason:  # a cancel or timeout was under way: finish it
            await self.execution.stop(self.env.kill_grace)
        else:
            await self.execution.release()  # recorded but not yet released when the server went
        await self.watch()

    # -- running ----------------------------------------------------------------------------
    async def watch(self) -> None:
        assert self.execution is not None
        if self.job.status == JobStatus.RUNNING:
            self._expire_later()
            marking = None
        else:
            marking = self.env.spawn(self._mark_running(self.execution))
        try:
            outcome = await self.execution.wait()
            if marking is not None:
                await marking  # "running" (if it ran) is recorded before how it ended
        finally:
            if marking is not None:
                marking.cancel()
            if self._timer:
                self._timer.cancel()
        if outcome.not_started and self.stop_reason is None:
            await self._requeue()
        else:
            await self.end(outcome)

    async def _mark_running(self, execution: Execution) -> None:
        if not await execution.running():
            return
        started = utcnow()
        if await self.env.store.transition(self.id, JobStatus.RUNNING, started, only_from=JobStatus.QUEUED,
                                           started_at=started):
            self.job.status, self.job.started_at = JobStatus.RUNNING, started
            self.env.started(self.job)
            self._expire_later()

    def _expire_later(self) -> None:
        if self.job.spec.timeout and self.job.started_at:
            left = self.job.spec.timeout - (utcnow() - self.job.started_at).total_seconds()
            self._timer = asyncio.get_running_loop().call_later(
                max(left, 0), lambda: self.env.spawn(self.stop("timeout"))
            )

    async def _requeue(self) -> None:
        """The launch was recorded but never released (the server went first): start afresh."""
        log.info("job %s never ran; it is queued again", self.id)
        await self.env.store.transition(self.id, JobStatus.QUEUED, utcnow(), backend_state={}, gpus=[],
                                        started_at=None, message="its launch was interrupted before it ran: "
                                        "queued again")
        self.env.requeued(self.id)

    async def end(self, outcome: Outcome) -> None:
        await record_end(self.env, self.job, outcome, self.stop_reason, self.stop_why)
        self.recorded.set()

    async def stop(self, reason: StopReason, why: str = "") -> None:
        """Stop the running job, remembering why (also across a restart). The user's cancel
        outranks a preemption under way: the job must not be queued again after it."""
        if self.execution is None or self.recorded.is_set():
            return
        if self.stop_reason is None or (reason == "cancel" and self.stop_reason == "preempt"):
            self.stop_reason, self.stop_why = reason, why
            state = {**self.execution.state, "stop_reason": reason, "stop_why": why}
            await self.env.store.update(self.id, backend_state=state)
        await self.execution.stop(self.env.kill_grace)

    @property
    def preemptible(self) -> bool:
        """Running, holding GPUs, marked preemptible, and not being stopped already."""
        return (self.job.spec.preemptible and bool(self.gpus) and self.execution is not None
                and self.stop_reason is None and not self.recorded.is_set())

    async def cancel(self, wait: float) -> None:
        """Stop the job as cancelled; returns once it is recorded, or after `wait` seconds."""
        self.cancelled = True
        if self.launching is not None:
            await asyncio.shield(self.launching)
        if self.execution is None:
            return  # it never started, and never will
        await self.stop("cancel")
        try:
            await asyncio.wait_for(self.recorded.wait(), wait)
        except asyncio.TimeoutError:
            pass

    def detach(self) -> None:
        """The server is going away: stop following; the job runs on and is reattached later."""
        self.detached = True
        if self._timer:
            self._timer.cancel()
        if self.execution is not None:
            self.execution.detach()
