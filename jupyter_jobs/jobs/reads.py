"""The read side of the job service: a job with its events and metrics summary, pages of jobs,
logs and metrics followed as they grow, artifacts, backends and environments. Every read is
off the event loop (the store's thread, or a worker thread for files)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

from ..backends.base import Backend
from ..domain.errors import JobNotFound, SpecError
from ..domain.job import Job
from ..domain.replies import (
    ArtifactList,
    BackendInfo,
    BackendsReply,
    EnvironmentInfo,
    EnvironmentList,
    GPUInfo,
    InstanceTypeInfo,
    JobPage,
    ListQuery,
    LogEnd,
    MetricsQuery,
)
from ..domain.status import JobStatus
from ..storage.artifacts import ArtifactMissing, list_artifacts, open_artifact, write_zip
from ..storage.logs import JobLog, follow
from ..storage.pipe import stream_from_thread
from ..storage.series import Cursor, progress
from ..domain.instance_types import InstanceTypes
from ..storage.logs import LogRegistry
from ..storage.series import MetricsReader
from ..storage.store import Store
from .checks import inside
from .gpus import GPUAllocator
from .plugins import Policies
from .queue import JobQueue
from .runner import RunnerEnv


def _end(job: Job) -> dict[str, Any]:
    """The last line of a followed log or metrics stream: how the job ended."""
    return LogEnd(status=job.status, exit_code=job.exit_code, message=job.message,
                  reason=job.reason.value if job.reason else None).model_dump(mode="json")



class JobReads:
    """Reading jobs, for every face: the service is one, and holds these parts."""

    store: Store
    env: RunnerEnv
    queue: JobQueue
    backends: dict[str, Backend]
    default_backend: str
    gpus: GPUAllocator
    instance_types: InstanceTypes
    log_files: LogRegistry
    metrics_reader: MetricsReader
    root_dir: Path
    policies: Policies

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


    # -- reading ----------------------------------------------------------------------------
    async def _job(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        return job

    def _public(self, job: Job) -> dict[str, Any]:
        if job.status == JobStatus.QUEUED:
            job.waiting = self.queue.why_waiting(job)
        self.policies.view(job)
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
        usage = await self.gpus.run(self.gpus.usage)  # the host's pool: on the allocator's own thread
        gpus = [GPUInfo(**g) for g in self.gpus.describe(usage)]
        free = sum(self.gpus.share - n for n in usage.values())
        up = {i.name: i for i in infos}
        types = [self._instance_type(n, f, up, free) for n, f in self.instance_types.types.items()]
        return BackendsReply(backends=list(infos), gpus=gpus, instance_types=types,
                             **self.policies.info()).model_dump(mode="json")

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
        async for item in await self.open_logs(job_id, offset, follow_=follow_, gone=gone):
            yield item

    async def open_logs(self, job_id: str, offset: int = 0, *, follow_: bool = False,
                        gone: Callable[[], bool] = lambda: False) -> AsyncGenerator[dict[str, Any], None]:
        """`logs()`, its job looked up first: a JobNotFound comes before any chunk (an HTTP
        reply's status before its body), and the job is read once, not again to check it."""
        job = await self._job(job_id)
        folder = self.env.job_dir(job)
        if job.status.is_terminal():
            job_log = await self.log_files.finished(folder)
        else:
            loading = not self.log_files.is_open(job_id)
            job_log = await self.log_files.active(job_id, folder)
            if loading and (await self._job(job_id)).status.is_terminal():  # it ended while it loaded
                self.log_files.close(job_id)
        return self._chunks(job_id, job_log, offset, follow_, gone)

    async def _chunks(self, job_id: str, job_log: JobLog, offset: int, follow_: bool,
                      gone: Callable[[], bool]) -> AsyncGenerator[dict[str, Any], None]:
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
        return os.path.relpath(real, root).replace(os.sep, "/") if inside(real, root) and os.path.isdir(real) else None

    async def artifacts_zip(self, job_id: str, prefix: str = "") -> AsyncIterator[bytes]:
        """All the job's artifacts (those under `prefix`) as one zip, streamed as it is written:
        nothing is staged on disk or held in memory, whatever their number and size."""
        root = self.env.job_dir(await self._job(job_id)) / "artifacts"  # a 404 before any byte
        return stream_from_thread(lambda out: write_zip(root, out, prefix))

    async def open_artifact(self, job_id: str, path: str) -> tuple[BinaryIO, int]:
        """One artifact, opened (never through a link), and its size at opening."""
        root = self.env.job_dir(await self._job(job_id)) / "artifacts"
        try:
            return await asyncio.to_thread(open_artifact, root, path)
        except ArtifactMissing:
            raise JobNotFound(f"no artifact {path!r}") from None
