"""Prometheus metrics on the Jupyter server's own `/metrics` (jupyter_server serves
prometheus_client's default registry there, behind its login unless
`ServerApp.authenticate_prometheus` is turned off).

One collector reads the service's state when scraped, never counters sprinkled through the
core: the history's jobs by status and backend and the host's GPUs (holders, utilization,
queue, GPU-hours) as last read by a loop every `interval` seconds (the store and the pool's
files are read off the event loop; a scrape runs on it and reads memory only); outcomes and
the wait from submit to start counted from the core's events since the server started.

Labels are the server's Unix user, backends, statuses, failure reasons and device indices:
never a job's command, name, env, id or project (the last two are chosen by users, and a
job id per series would grow without bound).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any, Optional

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ..domain.job import Job
from ..jobs.plugins import Event, JobCore
from .host import HostView

log = logging.getLogger(__name__)

#: upper bounds (seconds) of the wait-time histogram's buckets
WAIT_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, float("inf"))


class _Waits:
    """A histogram per backend, kept as counts per bucket."""

    def __init__(self) -> None:
        self.buckets: dict[str, list[int]] = {}
        self.sums: Counter[str] = Counter()

    def observe(self, backend: str, seconds: float) -> None:
        counts = self.buckets.setdefault(backend, [0] * len(WAIT_BUCKETS))
        for i, bound in enumerate(WAIT_BUCKETS):
            if seconds <= bound:
                counts[i] += 1
        self.sums[backend] += seconds


class JobsMetrics:
    """The service's metrics (a feature: it listens to the core and reads the host view)."""

    def __init__(self, core: JobCore, host: HostView, interval: float):
        self.core, self.host, self.interval = core, host, interval
        self.user = host.user
        self.counts: list[tuple[str, str, int]] = []  # (status, backend, jobs) of the history, as last read
        self.outcomes: Counter[tuple[str, str, str]] = Counter()  # (status, reason, backend)
        self.waits = _Waits()
        core.events.subscribe(self._on_event, ["job.started", "job.ended"])

    def _on_event(self, event: Event) -> None:
        job = event.job
        if job is None:
            return
        if event.kind == "job.started" and job.started_at and job.attempt == 1:
            self.waits.observe(job.backend, max(0.0, (job.started_at - job.created_at).total_seconds()))
        elif event.kind == "job.ended" and job.status.is_terminal():  # its end as recorded
            self._count(job)
        elif event.kind == "job.ended":
            self.core.spawn(self._ended(job.id))

    async def _ended(self, job_id: str) -> None:
        """The job's outcome as the history has it (the event's job predates its end: another
        end was recorded first)."""
        job: Optional[Job] = await self.core.store.get(job_id)
        if job is not None and job.status.is_terminal():
            self._count(job)

    def _count(self, job: Job) -> None:
        self.outcomes[(job.status.value, job.reason.value if job.reason else "", job.backend)] += 1

    async def refresh(self) -> None:
        """Read the history's counts and the host (off the event loop) for the next scrapes."""
        self.counts = await self.core.store.counts()
        if self.host.gpus.total:
            await self.host.read(admin=True)

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("reading the metrics failed")
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        _COLLECTOR.sources.append(self)
        if self.interval > 0:
            self.core.spawn(self.run())

    async def stop(self) -> None:
        if self in _COLLECTOR.sources:
            _COLLECTOR.sources.remove(self)
        await self.host.close()

    # -- what a scrape reads (memory only) --------------------------------------------------
    def families(self) -> Iterator[Any]:
        user = self.user
        jobs = GaugeMetricFamily("jupyter_jobs_jobs", "Jobs in this server's history by status and backend",
                                 labels=["user", "status", "backend"])
        for status, backend, n in self.counts:
            jobs.add_metric([user, status, backend], n)
        yield jobs
        ended = CounterMetricFamily("jupyter_jobs_job_outcomes", "Jobs that ended since the server started, "
                                    "by status and failure reason", labels=["user", "status", "reason", "backend"])
        for (status, reason, backend), n in sorted(self.outcomes.items()):
            ended.add_metric([user, status, reason, backend], n)
        yield ended
        waits = HistogramMetricFamily("jupyter_jobs_job_wait_seconds", "Seconds from a job's submission to its "
                                      "first start (jobs started since the server started)",
                                      labels=["user", "backend"])
        for backend, counts in sorted(self.waits.buckets.items()):
            buckets = [(_bound(b), n) for b, n in zip(WAIT_BUCKETS, counts)]
            waits.add_metric([user, backend], buckets, self.waits.sums[backend])
        yield waits
        yield from self._gpu_families()

    def _gpu_families(self) -> Iterator[Any]:
        view = self.host.last
        if view is None:
            return
        held = GaugeMetricFamily("jupyter_jobs_gpu_jobs", "Jobs holding each GPU (every server on the host "
                                 "with the host-wide pool)", labels=["gpu"])
        util = GaugeMetricFamily("jupyter_jobs_gpu_utilization_percent", "Each GPU's utilization (NVML)",
                                 labels=["gpu"])
        memory = GaugeMetricFamily("jupyter_jobs_gpu_memory_used_bytes", "Each GPU's memory in use (NVML)",
                                   labels=["gpu"])
        for device in view["devices"]:
            index = str(device["index"])
            held.add_metric([index], len(device["holders"]))
            if device["utilization"] is not None:
                util.add_metric([index], device["utilization"])
            if device["memory_used"] is not None:
                memory.add_metric([index], device["memory_used"])
        yield from (held, util, memory)
        by_user = GaugeMetricFamily("jupyter_jobs_gpus_held", "GPUs each user's jobs hold now", labels=["user"])
        hours = GaugeMetricFamily("jupyter_jobs_gpu_hours", "Each user's GPU-hours over a window (day: 24 h, "
                                  "week: 7 days, decayed: by the policy's half-life)", labels=["user", "window"])
        for name, use in view["users"].items():
            by_user.add_metric([name], use["gpus"])
            for window in ("day", "week", "decayed"):
                hours.add_metric([name, window], use[window])
        waiting = GaugeMetricFamily("jupyter_jobs_gpu_queue_jobs", "Jobs waiting for GPUs, by user",
                                    labels=["user"])
        for name, n in sorted(Counter(q["user"] for q in view["queue"]).items()):
            waiting.add_metric([name], n)
        yield from (by_user, hours, waiting)


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


class _Collector(Collector):
    """The one collector in prometheus_client's default registry: the latest service started
    in this process (one per Jupyter server) answers."""

    def __init__(self) -> None:
        self.sources: list[JobsMetrics] = []

    def collect(self) -> Iterator[Any]:
        if self.sources:
            yield from self.sources[-1].families()

    def describe(self) -> Iterator[Any]:
        return iter(())  # names are known only when collected: never checked against others' at registration


_COLLECTOR = _Collector()
REGISTRY.register(_COLLECTOR)
