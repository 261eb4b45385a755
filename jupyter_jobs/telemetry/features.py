"""Telemetry's two features, plugged into the job core: sampling the jobs under way, and
webhooks told of the core's (and other features') events. Both only listen."""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..domain.policy import Idle
from ..domain.status import JobStatus
from ..jobs.plugins import Event, JobCore
from .idle import IdleWatch
from .sampler import GPUSampler, Telemetry
from .webhooks import EVENTS, Webhooks


class JobSampling:
    """Every `interval` seconds, the CPU, memory and GPUs of each job whose command runs now."""

    def __init__(self, core: JobCore, interval: float, nvml: Any = None,
                 idle: Callable[[], Optional[Idle]] = lambda: None):
        self.core = core
        self.idle = IdleWatch(idle, self._stop_idle, core.store.add_note)
        self.telemetry = Telemetry(self._sampled, interval, GPUSampler(nvml), core.store.add_note, self.idle.observe)

    async def _stop_idle(self, job_id: str, why: str) -> None:
        runner = self.core.runners().get(job_id)
        if runner is not None:
            self.core.spawn(runner.stop("idle", why))

    def _sampled(self) -> list[tuple[str, Any, list[int], Any]]:
        return [(r.id, self.core.job_dir(r.job), r.gpus, r.execution) for r in list(self.core.runners().values())
                if r.execution is not None and r.job.status == JobStatus.RUNNING and not r.execution.done()]

    async def start(self) -> None:
        if self.telemetry.interval > 0:
            self.core.spawn(self.telemetry.run())

    async def stop(self) -> None:
        """Its loop is a core task, cancelled with the others."""


class WebhookEvents:
    """Signed POSTs of the events the configured webhooks take; their state in GET /backends."""

    def __init__(self, core: JobCore, webhooks: Webhooks):
        self.core, self.webhooks = core, webhooks
        core.events.subscribe(self._on_event, [e for e in EVENTS if webhooks.wants(e)])

    def _on_event(self, event: Event) -> None:
        if event.kind == "job.queued" and event.job is not None:
            self.webhooks.emit(event.kind, {"job": event.job.public()})
        elif event.job is not None and event.kind in ("job.started", "job.ended"):
            self.core.spawn(self._send_current(event.kind, event.job.id))
        else:
            self.webhooks.emit(event.kind, event.data)

    async def _send_current(self, kind: str, job_id: str) -> None:
        """The job as it is now (read in a task: never holds the core's caller)."""
        job = await self.core.store.get(job_id)
        if job is not None:
            self.webhooks.emit(kind, {"job": job.public()})

    def info(self) -> dict[str, Any]:
        return {"webhooks": self.webhooks.status()}

    async def start(self) -> None:
        if self.webhooks.hooks:
            self.core.spawn(self.webhooks.run())

    async def stop(self) -> None:
        """Its deliveries are core tasks, cancelled with the others."""
