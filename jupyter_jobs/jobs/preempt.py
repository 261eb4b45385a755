"""Preemption: this server stops its own preemptible jobs for a job ahead of them in the host's
order (domain/policy.victims) that cannot get GPUs otherwise.

Why the victim's server decides: no server can stop another user's job, so each one weighs the
host's waiting jobs (their tickets in the pool, or its own queue without a pool) against its
own running jobs, on every pass of its queue. A job being stopped still holds its GPUs until it
ends: they count as free already, so that one waiting job never costs more than its share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable

from ..domain.job import Job
from ..domain.policy import Running, Usage, Waiting, order, victims
from .gpus import GPUAllocator

if TYPE_CHECKING:
    from .runner import JobRunner

log = logging.getLogger(__name__)


class Preemptor:
    def __init__(self, gpus: GPUAllocator, active: dict[str, JobRunner], spawn: Callable):
        self.gpus, self.active, self.spawn = gpus, active, spawn

    @property
    def armed(self) -> bool:
        """Whether any job of this server may be preempted, now or once it runs: the queue then
        looks again every second (other servers' jobs come and go without telling it)."""
        return any(r.job.spec.preemptible and r.gpus and not r.recorded.is_set() for r in self.active.values())

    async def check(self, queued: Iterable[Job]) -> None:
        """Stop the jobs the first waiting job that needs them may take, if any."""
        runners = {r.id: r for r in self.active.values() if r.preemptible}
        if not runners:
            return
        stopping = sum(len(r.gpus) for r in self.active.values()
                       if r.stop_reason == "preempt" and not r.recorded.is_set())
        waiting, users, free = await self._contenders(queued)
        user = self.gpus.user
        running = [Running(r.id, user, len(r.gpus), self.gpus.priority(r.job.spec.priority),
                           (r.job.started_at or r.job.created_at).timestamp(), True, r.job.spec.priority)
                   for r in runners.values()]
        for job in waiting:
            chosen = victims(job, running, free + stopping, users)
            if chosen:
                for victim, why in chosen:
                    log.info("preempting job %s: %s", victim.key, why)
                    self.spawn(runners[victim.key].stop("preempt", why))
                return  # one waiting job at a time: the next pass sees what these free

    async def _contenders(self, queued: Iterable[Job]) -> tuple[list[Waiting], dict[str, Usage], int]:
        if self.gpus.shared:
            return await self.gpus.run(self.gpus.pool.contenders)
        user = self.gpus.user
        waiting = [Waiting(j.id, user, j.spec.resources.gpus, j.created_at.timestamp(),
                           self.gpus.priority(j.spec.priority), j.spec.project, j.spec.priority) for j in queued
                   if j.spec.resources.gpus and not j.after and j.id not in self.active]
        return order(waiting, {}), {}, self.gpus.free()
