"""Job endpoints: where each exposed port of a running job is reached, and whether it answers.

The proxy (server/proxy.py) asks `target()` for every request: the answer comes only from the
job's own record (its declared `expose` and the ports chosen at its start) and its backend's
execution, never from the request, so no URL, Host header or redirect can point it elsewhere.
Everything here is in memory: a proxied request costs no database read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..domain.job import Endpoint, Job
from ..domain.status import JobStatus
from ..domain.errors import JobNotFound, JobsError

if TYPE_CHECKING:
    import aiohttp

    from ..jobs.runner import JobRunner

log = logging.getLogger(__name__)

#: seconds between probes of an endpoint that is not ready yet, and of one that is
PROBE_WAITING, PROBE_READY = 0.5, 5.0
#: seconds a probed connection must stay open (without a health path) for the port to count as ready
HELD = 0.25


class EndpointUnavailable(JobsError):
    """The job runs, but its backend cannot say yet where the port is."""

    status = 503


#: an endpoint's key: 160 bits of an HMAC in lower-case base32 (a DNS label, a path segment)
KEY = re.compile(r"[a-z2-7]{32}")


def named_path(job_id: str, name: str) -> str:
    """The endpoint's address by name (behind Jupyter's login; it sends the browser on to the
    endpoint's own address), relative to the server's base URL."""
    return f"jupyter-jobs/jobs/{job_id}/endpoints/{name}/"


def key_path(key: str) -> str:
    """The endpoint's own address, relative to the server's base URL: the key is its credential."""
    return f"jupyter-jobs/ep/{key}/"


class Endpoints:
    """Targets and readiness of the endpoints of the jobs `runners()` returns (those launched).

    Each endpoint has a key, `HMAC(secret, job id, name)`: its address holds it, so whoever
    was handed the address (only through Jupyter's authenticated API) reaches the app, and
    nothing else of the server; a key names a running job's endpoint or nothing. `url`, a
    template such as `https://{key}.jobs.example.com/`, gives each endpoint its own origin."""

    def __init__(self, runners: Callable[[], dict[str, JobRunner]], spawn: Callable[[Any], Any],
                 secret: bytes, url: str = ""):
        self._runners, self._spawn = runners, spawn
        self._secret, self.url = secret, url
        self._keys: dict[str, tuple[str, str]] = {}  # the running jobs' endpoints by key
        self._ready: dict[tuple[str, str], bool] = {}
        self._were_ready: set[str] = set()  # running jobs an endpoint of which was ready once
        self._probed: dict[tuple[str, str], float] = {}
        self._session: Optional[aiohttp.ClientSession] = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """One pooled HTTP client (keep-alive connections to the jobs) for the proxy and the probes."""
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=30,
                                               enable_cleanup_closed=True),
                auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                cookie_jar=aiohttp.DummyCookieJar(), read_bufsize=1 << 20,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def start(self) -> None:
        self._spawn(self.run())

    async def stop(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def view(self, job: Job) -> None:
        """A job's public view shows its endpoints and their state."""
        if job.spec.served:
            job.endpoints = self.describe(job)

    def _running(self, job_id: str) -> Optional[JobRunner]:
        runner = self._runners().get(job_id)
        if runner is None or runner.execution is None or runner.job.status != JobStatus.RUNNING:
            return None
        return runner if not runner.execution.done() else None

    async def target(self, job_id: str, name: str) -> tuple[str, int]:
        """(host, port) of a running job's endpoint; 404 for anything else, at once."""
        runner = self._running(job_id)
        if runner is None:
            raise JobNotFound(f"job {job_id!r} is not running: it has no endpoints now")
        port = runner.ports.get(name)
        if port is None or name not in {e.name for e in runner.job.spec.served}:
            raise JobNotFound(f"job {job_id!r} exposes no endpoint {name!r}")
        assert runner.execution is not None
        address = await runner.execution.address(port)
        if address is None:
            raise EndpointUnavailable(f"the backend cannot say yet where job {job_id!r} serves {name!r}")
        return address

    def ready(self, job_id: str, names: list[str]) -> bool:
        """Whether the running job's endpoints `names` answered their last checks."""
        return self._running(job_id) is not None and all(self._ready.get((job_id, n)) for n in names)

    def was_ready(self, job_id: str) -> bool:
        """Whether an endpoint of the running job was ready once (one that then fails its checks
        is unhealthy, not starting)."""
        return job_id in self._were_ready

    def key(self, job_id: str, name: str) -> str:
        digest = hmac.new(self._secret, f"{job_id}\0{name}".encode(), hashlib.sha256).digest()[:20]
        return base64.b32encode(digest).decode().lower()

    def find(self, key: str) -> tuple[str, str]:
        """(job id, name) of the running job's endpoint whose key this is; 404 for any other.
        A dict lookup; on a miss the dict is made afresh from the running jobs (so it holds
        theirs only)."""
        found = self._keys.get(key)
        if found is None and KEY.fullmatch(key):
            self._keys = {self.key(runner.id, expose.name): (runner.id, expose.name)
                          for runner in list(self._runners().values()) for expose in runner.job.spec.served}
            found = self._keys.get(key)
        if found is None or self._running(found[0]) is None:
            raise JobNotFound("no running job serves an endpoint at this address")
        return found

    def describe(self, job: Job) -> list[Endpoint]:
        """The job's endpoints as clients see them: port, path and state."""
        runner = self._running(job.id) if job.status == JobStatus.RUNNING else None
        ports = runner.ports if runner else dict(job.backend_state.get("ports") or {})  # chosen at its start
        out = []
        for expose in job.spec.served:
            if job.status.is_terminal():
                state = "gone"
            else:
                state = "ready" if runner and self._ready.get((job.id, expose.name)) else "waiting"
            key = self.key(job.id, expose.name)
            out.append(Endpoint(name=expose.name, port=ports.get(expose.name, expose.port), path=key_path(key),
                                url=self.url.format(key=key) if self.url else None, state=state))
        return out

    # -- readiness --------------------------------------------------------------------------
    async def run(self) -> None:
        """Probe the endpoints of running jobs: a connection (or the health path's 2xx) makes
        one ready; one that stops answering is waiting again."""
        while True:
            await asyncio.sleep(PROBE_WAITING)
            try:
                await self.probe_once()
            except Exception:  # a probe's failure must not end the loop
                log.exception("probing job endpoints failed")

    async def probe_once(self) -> None:
        now = time.monotonic()
        due = []
        live = set()
        for runner in list(self._runners().values()):
            if not runner.job.spec.served or self._running(runner.id) is None:
                continue
            for expose in runner.job.spec.served:
                key = (runner.id, expose.name)
                live.add(key)
                wait = PROBE_READY if self._ready.get(key) else PROBE_WAITING
                if now - self._probed.get(key, 0.0) >= wait:
                    self._probed[key] = now
                    due.append((key, expose.health))
        for key in [k for k in self._ready if k not in live]:
            self._ready.pop(key, None), self._probed.pop(key, None)
        self._were_ready &= {job_id for job_id, _ in live}
        if due:
            results = await asyncio.gather(*(self._probe(key, health) for key, health in due))
            for (key, _), ready in zip(due, results):
                self._ready[key] = ready
                if ready:
                    self._were_ready.add(key[0])

    async def _probe(self, key: tuple[str, str], health: Optional[str]) -> bool:
        try:
            host, port = await self.target(*key)
        except JobsError:
            return False
        try:
            if health is None:
                return await _holds_a_connection(host, port)
            async with self.session.get(f"http://{netloc(host, port)}{health}", allow_redirects=False,
                                        timeout=_timeout(2)) as response:
                return 200 <= response.status < 300
        except Exception:  # refused, reset, timed out: not ready
            return False


async def _holds_a_connection(host: str, port: int) -> bool:
    """A connection is accepted and kept open a moment. Accepting alone is not enough: Docker's
    proxy accepts on a published port whether or not anything listens in the container, and
    closes the connection at once when nothing does (a request then would get a 502)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    try:
        return await asyncio.wait_for(reader.read(1), HELD) != b""  # bytes first: a server that speaks first
    except asyncio.TimeoutError:
        return True  # still open, waiting for a request: it is there
    finally:
        writer.close()


def netloc(host: str, port: int) -> str:
    """`host:port` for a URL (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _timeout(seconds: float) -> Any:
    import aiohttp

    return aiohttp.ClientTimeout(total=seconds)
