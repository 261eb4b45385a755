"""A backend driven by futures, for the job runner's races (fast and deterministic).

It stands beside the real-part tests, never instead of them: each race it drives is also
met by real processes, containers or Slurm jobs elsewhere in the suite. A test holds the
gates: when `start` returns, when the execution ends, and with which outcome.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from jupyter_jobs.backends.base import Availability, Backend, BackendError, Execution, JobContext
from jupyter_jobs.domain.job import Outcome


class FakeExecution(Execution):
    def __init__(self, backend: FakeBackend, ctx: JobContext, state: dict[str, Any]):
        self.backend, self.ctx, self.state = backend, ctx, state
        self.outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.signals: list[str] = []
        self.detached = False
        self.released = asyncio.Event()
        self.state_at_release: dict[str, Any] | None = None  # what the history held when it was released

    async def release(self) -> None:
        job = await self.backend.store.get(self.ctx.job.id) if self.backend.store else None
        self.state_at_release = {"status": job.status.value, "backend_state": job.backend_state} if job else None
        self.released.set()

    async def running(self) -> bool:
        ended = asyncio.ensure_future(self.wait())
        released = asyncio.ensure_future(self.released.wait())
        await asyncio.wait([ended, released], return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        released.cancel()
        return self.released.is_set() and not (self.outcome.done() and self.outcome.result().not_started)

    def end(self, outcome: Outcome) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)

    async def wait(self) -> Outcome:
        return await asyncio.shield(self.outcome)

    def done(self) -> bool:
        return self.outcome.done()

    def terminate(self) -> None:
        self.signals.append("TERM")
        if self.backend.dies_on_term:
            self.backend.loop.call_soon_threadsafe(self.end, Outcome(143))

    def kill(self) -> None:
        self.signals.append("KILL")
        self.backend.loop.call_soon_threadsafe(self.end, Outcome(137))

    def detach(self) -> None:
        super().detach()
        self.detached = True


class FakeBackend(Backend):
    name = "fake"
    description = "futures a test resolves"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.loop = asyncio.get_event_loop()
        self.gate: Optional[asyncio.Future[None]] = None  # when set, start() waits for it
        self.fail_start: Optional[str] = None
        self.dies_on_term = True
        self.started: list[FakeExecution] = []
        self.reattached: list[FakeExecution] = []
        self.starting = asyncio.Event()
        self.store: Any = None  # the service's history, for checks at release time

    async def availability(self) -> Availability:
        return Availability(True)

    async def start(self, ctx: JobContext) -> Execution:
        self.starting.set()
        if self.gate is not None:
            await self.gate
        if self.fail_start:
            raise BackendError(self.fail_start)
        execution = FakeExecution(self, ctx, {"fake": len(self.started)})
        self.started.append(execution)
        return execution

    async def reattach(self, ctx: JobContext, state: dict[str, Any]) -> Execution:
        execution = FakeExecution(self, ctx, state)
        self.reattached.append(execution)
        return execution
