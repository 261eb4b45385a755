"""The host as an admin reads it (GET /jupyter-jobs/host, the panel's Host view, /metrics):
each GPU with who holds it and how busy it is, the jobs waiting for GPUs in the order the
host's rule serves them (each with the rule that holds it), each user's and project's GPU use.

With the host-wide pool every server on the host reads the same files
(`HostGPUPool.host`, on the allocator's own thread); without one, this server's own jobs are
shaped the same way (its running jobs as the holders, its GPU jobs of the last week as its
ledger), so every reader of the view gets one shape. Another user's job shows as its user
and project only, its id only to an admin; the pool holds no command, name or env, and
nothing here reads them for another user's job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Optional
from collections.abc import Awaitable

from ..domain.job import utcnow
from ..domain.policy import WEEK, Policy
from ..domain.replies import HostReply
from ..domain.status import JobStatus
from ..jobs.gpus import GPUAllocator
from ..jobs.plugins import JobCore
from ..jobs.poolshare import account, host_view, user_name
from .sampler import GPUSampler

#: seconds the server's own ledger (its GPU jobs of the last week, without a pool) is kept before it is read again
LEDGER_LIFE = 30.0
#: the most queued jobs a view shows without a pool
MAX_QUEUED = 500


def is_admin(user: str, admins: list[str]) -> bool:
    """Whether a server running as `user` shows the whole host: `JobsApp.host_admins` names it."""
    return user in admins


class HostView:
    """Reads the host for this server's user (see the module's docstring)."""

    def __init__(self, core: JobCore, gpus: GPUAllocator, admins: list[str], nvml: Any = None,
                 queued: Optional[Callable[[], Awaitable[list[dict[str, Any]]]]] = None,
                 host_gpus: Callable[[str], bool] = lambda backend: True):
        self.core, self.gpus = core, gpus
        self.user = user_name(os.geteuid())
        self.admin = is_admin(self.user, admins)
        self.sampler = GPUSampler(nvml)
        self.queued, self.host_gpus = queued, host_gpus
        self._ledger: tuple[float, dict] = (0.0, {})
        self.last: Optional[dict[str, Any]] = None  # the latest view read with every id (for /metrics)

    async def read(self, admin: Optional[bool] = None) -> dict[str, Any]:
        """The view for this server's user (or with every job's id: `admin=True`)."""
        admin = self.admin if admin is None else admin
        pool = self.gpus.pool
        if pool is not None:  # files: on the allocator's own thread, never the event loop
            view = await self.gpus.run(pool.host, admin)
            policy, problem = pool.admin.last(), pool.admin.problem
        else:
            policy, problem = Policy(), None
            view = await self._own(policy)
        indices = {g.index for g in self.gpus.gpus}
        figures = await asyncio.to_thread(self.sampler.sample, indices) if indices else {}
        named = {g.index: g for g in self.gpus.gpus}
        for device in view["devices"]:
            gpu, seen = named.get(device["index"]), figures.get(device["index"], {})
            device.update(name=gpu.name if gpu else "GPU", memory=gpu.memory if gpu else None,
                          utilization=seen.get("util"), memory_used=seen.get("memory_used"))
        reply = HostReply(scope="host" if pool is not None else "server", user=self.user, admin=admin,
                          policy=dataclasses.asdict(policy), policy_problem=problem, at=time.time(),
                          **view).model_dump(mode="json")
        if admin:
            self.last = reply
        return reply

    async def _own(self, policy: Policy) -> dict[str, Any]:
        """This server's own GPUs, shaped as the host's pool shapes its files."""
        uid, records, queue = os.geteuid(), [], []
        for runner in list(self.core.runners().values()):
            job = runner.job
            if runner.gpus and job.status == JobStatus.RUNNING:
                began = job.started_at.timestamp() if job.started_at else time.time()
                records.append({"gpus": list(runner.gpus), "job": job.id, "project": job.project,
                                "_uid": uid, "_start": began, "_folder": ""})
        view = host_view([g.index for g in self.gpus.gpus], records, [], [(uid, await self._own_ledger(policy))],
                         policy, lambda entry: True)
        for job in sorted(await self.queued() if self.queued else [],
                          key=lambda j: (-(j["spec"].get("priority") or 0), j["created_at"])):
            count = (job["spec"].get("resources") or {}).get("gpus") or 0
            if count and self.host_gpus(job["backend"]):
                queue.append({"user": self.user, "job": job["id"], "gpus": count,
                              "priority": self.gpus.priority(job["spec"].get("priority") or 0),
                              "project": job.get("project"), "since": _epoch(job["created_at"]),
                              "waiting": job.get("waiting") or "waiting for the scheduler"})
        view["queue"] = queue
        return view

    async def _own_ledger(self, policy: Policy) -> dict:
        """This server's GPU time of the last week (ended jobs), as a pool ledger; read every LEDGER_LIFE s."""
        at, ledger = self._ledger
        if time.monotonic() - at < LEDGER_LIFE:
            return ledger
        ledger = {}
        spans = await self.core.store.gpu_spans(utcnow() - timedelta(seconds=WEEK))
        for gpus, started, finished, project in sorted(spans, key=lambda s: s[2]):
            account(ledger, gpus, _epoch(started), _epoch(finished), project, policy.half_life_hours)
        self._ledger = (time.monotonic(), ledger)
        return ledger

    async def close(self) -> None:
        await asyncio.to_thread(self.sampler.close)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()
