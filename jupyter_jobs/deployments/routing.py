"""Requests to deployments: which replica answers each (the ready one with the fewest requests
under way, in turn on ties), a request waiting while none is ready (a deployment scaled to zero
wakes), and what the last minute saw (requests per second, latency percentiles, errors)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..domain.errors import JobNotFound, JobsError

WINDOW = 60.0  # seconds of requests the stats cover
RATE_WINDOW = 10.0  # ... and requests per second


class NoReplica(JobsError):
    """The deployment exists, but no replica got ready to answer in time."""

    status = 503


@dataclass
class Lease:
    """A request's replica: `release(status)` when its answer is over (None: the client left)."""

    job_id: str
    endpoint: str
    release: Callable[[Optional[int]], None]


@dataclass
class Traffic:
    """One deployment's requests: those waiting for a replica, and the last minute's answers."""

    waiting: int = 0
    done: deque = field(default_factory=lambda: deque(maxlen=200_000))  # (monotonic end, seconds, ok)

    def record(self, seconds: float, ok: bool) -> None:
        self.done.append((time.monotonic(), seconds, ok))

    def stats(self, in_flight: int) -> dict[str, Any]:
        now = time.monotonic()
        while self.done and self.done[0][0] < now - WINDOW:
            self.done.popleft()
        took = sorted(s for _, s, _ in self.done)
        recent = sum(1 for t, _, _ in self.done if t >= now - RATE_WINDOW)

        def at(q: float) -> Optional[float]:
            return round(took[min(len(took) - 1, int(q * len(took)))] * 1000, 2) if took else None

        return {"requests_per_second": round(recent / RATE_WINDOW, 2), "p50_ms": at(0.5), "p99_ms": at(0.99),
                "errors": sum(1 for _, _, ok in self.done if not ok), "in_flight": in_flight + self.waiting}


class Router:
    """The deployments' endpoints by key, their replicas, and the requests under way."""

    def __init__(self, endpoints: Any, wake: Callable[[], None], wait: float = 60.0):
        self.endpoints, self.wake, self.wait = endpoints, wake, wait
        self.routes: dict[str, tuple[str, str]] = {}  # an endpoint's key -> (deployment, endpoint)
        self.members: dict[str, list[str]] = {}  # a deployment's replicas not yet ended, oldest first
        self.draining: set[str] = set()  # replicas being stopped: they take no new request
        self.in_flight: dict[str, int] = {}  # requests under way, by replica
        self.traffic: dict[str, Traffic] = {}
        self._turn = 0

    def load(self, name: str) -> int:
        """Requests under way at the deployment's replicas, and waiting for one."""
        return sum(self.in_flight.get(j, 0) for j in self.members.get(name, [])) + self._traffic(name).waiting

    def stats(self, name: str) -> dict[str, Any]:
        return self._traffic(name).stats(sum(self.in_flight.get(j, 0) for j in self.members.get(name, [])))

    def forget(self, name: str) -> None:
        self.routes = {k: v for k, v in self.routes.items() if v[0] != name}
        self.members.pop(name, None), self.traffic.pop(name, None)

    def _traffic(self, name: str) -> Traffic:
        return self.traffic.setdefault(name, Traffic())

    def _ready(self, name: str, endpoint: str, exclude: frozenset[str]) -> list[str]:
        return [j for j in self.members.get(name, []) if j not in exclude and j not in self.draining
                and self.endpoints.ready(j, [endpoint])]

    async def lease(self, key: str, exclude: frozenset[str] = frozenset()) -> Lease:
        """A ready replica for a request, waiting (up to `wait` s; a retry, 5 s) while none is."""
        found = self.routes.get(key)
        if found is None:
            raise JobNotFound("no deployment serves an endpoint at this address")
        name, endpoint = found
        traffic = self._traffic(name)
        ready = self._ready(name, endpoint, exclude)
        if not ready:
            deadline = time.monotonic() + (5.0 if exclude else self.wait)
            traffic.waiting += 1
            try:
                while not ready:
                    if time.monotonic() > deadline:
                        traffic.record(0.0, False)
                        raise NoReplica(f"deployment {name!r} has no replica ready to answer (waited "
                                        f"{5.0 if exclude else self.wait:g} s)")
                    self.wake()  # one scaled to zero starts a replica
                    await asyncio.sleep(0.05)
                    ready = self._ready(name, endpoint, exclude)
            finally:
                traffic.waiting -= 1
        self._turn += 1  # ties (no request under way anywhere) go round in turn
        turned = ready[self._turn % len(ready):] + ready[:self._turn % len(ready)]
        job_id = min(turned, key=lambda j: self.in_flight.get(j, 0))
        self.in_flight[job_id] = self.in_flight.get(job_id, 0) + 1
        start, released = time.monotonic(), []

        def release(status: Optional[int]) -> None:
            if not released:
                released.append(1)
                self.in_flight[job_id] = self.in_flight.get(job_id, 1) - 1
                if status is not None:
                    traffic.record(time.monotonic() - start, 0 < status < 500)

        return Lease(job_id, endpoint, release)
