"""Deployments (Nosana's "manage one or more jobs" with health checks; Gradient's deployments,
"each new spec update will generate a new spec_id"): a name serving a job spec that exposes
ports, with replicas that are ordinary jobs (queued, GPU-pooled, logged, metered), one stable
address per endpoint balanced over the ready replicas, replicas replaced when they exit or fail
their health checks, and rolling updates.

One loop reconciles each deployment with what runs: it starts replicas of the version served
until there are `min`, one more than that during a rollout (a new replica must be ready before
an old one is stopped), replaces the ones that ended (backing off while they keep failing), and
stops a rollout whose new replicas keep failing, serving the old version again. Its state is
the history (the deployment, its versions, its replicas' jobs by origin), so a restart goes on.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from ..domain.errors import FieldError, JobConflict, JobNotFound, SpecError
from ..domain.job import Job, utcnow
from ..domain.replies import Deployment, DeploymentInput, DeploymentList, Replicas
from .routing import Lease, Router
from .scaling import Scaler
from ..domain.spec import JobSpec
from ..domain.status import JobStatus
from ..jobs.plugins import Event, JobCore, nested_spec

log = logging.getLogger(__name__)

ORIGIN = "deployment:"  # a replica's origin: deployment:<name>:<version>
PASS = 0.5  # seconds between reconciling passes (a job's end wakes one at once)
BACKOFF_MAX = 30.0  # the longest wait before replacing a replica that keeps failing
FAILED_ROLLOUT = 3  # failures of a new version's replicas before its rollout stops
UNHEALTHY_AFTER = 10.0  # seconds a replica that was ready may fail its health checks before it is replaced
DRAIN = 10.0  # seconds a replica being stopped gets to finish the requests it has (it takes no new ones)
LIVE = [JobStatus.QUEUED, JobStatus.RUNNING]


@dataclass
class _State:
    """What a deployment's loop remembers between passes (in memory: a restart starts afresh)."""

    failures: int = 0  # replicas of the served version that ended on their own, in a row
    not_before: float = 0.0  # no new replica before this (backing off)
    message: Optional[str] = None
    unready_since: dict[str, float] = field(default_factory=dict)
    stopping: set[str] = field(default_factory=set)  # replicas it stopped: their end is no failure
    scaler: Scaler = field(default_factory=Scaler)


class Deployments:
    """Create, change, roll back and delete deployments; keep their replicas; route requests."""

    def __init__(self, core: JobCore, endpoints: Any):
        self.core, self.store, self.endpoints = core, core.store, endpoints
        self.user = getpass.getuser()
        self._state: dict[str, _State] = {}
        self._wake = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}  # one pass or one deletion of a deployment at a time
        self.router = Router(endpoints, self._wake.set)
        core.events.subscribe(self._on_event, ("job.ended",))

    # -- the faces --------------------------------------------------------------------------
    async def create(self, body: Any) -> dict[str, Any]:
        given = DeploymentInput.parse(body)
        if given.version is not None:
            raise SpecError.one("version", "a new deployment's version is 1: an update serves another")
        if not given.name:
            raise SpecError.one("name", "required: a-z, 0-9 and '-'")
        if given.spec is None:
            raise SpecError.one("spec", "required: a job spec that exposes at least one port")
        spec = await self._checked(given.spec)
        replicas = given.replicas or Replicas()
        at = utcnow().isoformat()
        row = {"name": given.name, "replicas": {**replicas.model_dump(), "max": replicas.most}, "status": "starting",
               "created_at": at, "created_by": self.user}
        if not await self.store.add_deployment(row, spec):
            raise JobConflict(f"a deployment named {given.name!r} exists: PUT a new spec to update it")
        self._wake.set()
        return await self.get(given.name)

    async def update(self, name: str, body: Any) -> dict[str, Any]:
        """A new `spec` (a new version, rolled out), a `version` served again (a rollback),
        and/or new `replicas`."""
        row = await self._row(name)
        given = DeploymentInput.parse(body)
        version = given.version
        if given.name not in (None, name):
            raise SpecError.one("name", "a deployment keeps its name")
        fields: dict[str, Any] = {}
        if given.spec is not None and version is not None:
            raise SpecError.one("version", "give a new spec or a version to serve again, not both")
        if given.spec is not None:
            spec = await self._checked(given.spec)
            fields["version"] = await self.store.add_deployment_version(name, spec, utcnow().isoformat())
        elif version is not None:
            known = {v["version"] for v in await self.store.deployment_versions(name)}
            if version not in known:
                raise SpecError.one("version", f"deployment {name!r} has versions {sorted(known)}")
            fields["version"] = version
        if given.replicas is not None:
            fields["replicas"] = {**given.replicas.model_dump(), "max": given.replicas.most}
        if "version" in fields and fields["version"] != row["version"]:
            fields.update(status="rolling out", message=f"rolling out version {fields['version']}")
            self._state.setdefault(name, _State()).failures = 0
        if fields:
            await self.store.update_deployment(name, updated_at=utcnow().isoformat(), **fields)
            self._wake.set()
        return await self.get(name)

    async def delete(self, name: str) -> None:
        """Its replicas are stopped; their jobs stay in the history."""
        async with self._locks.setdefault(name, asyncio.Lock()):  # no pass starts a replica of it meanwhile
            await self._row(name)
            replicas = await self._replicas(name)  # found by its versions: before they go
            await self.store.delete_deployment(name)
            state = self._state.pop(name, _State())
            self.router.forget(name)
            for job in replicas:
                await self._stop(job, state)

    async def get(self, name: str) -> dict[str, Any]:
        return await self._public(await self._row(name))

    async def list(self) -> dict[str, Any]:
        return DeploymentList(deployments=[Deployment(**await self._public(r))
                                           for r in await self.store.deployments()]).model_dump(mode="json")

    # -- routing ----------------------------------------------------------------------------
    def key(self, name: str, endpoint: str) -> str:
        """A deployment endpoint's key: stable across versions, replicas and restarts."""
        return self.endpoints.key(f"{ORIGIN}{name}", endpoint)

    async def endpoint_key(self, name: str, endpoint: str) -> str:
        """The key of a deployment's endpoint; a 404 naming what is not there."""
        row = await self._row(name)
        spec = next(v["spec"] for v in await self.store.deployment_versions(name) if v["version"] == row["version"])
        if endpoint not in {e["name"] for e in spec.get("expose") or [] if not e.get("internal")}:
            raise JobNotFound(f"deployment {name!r} serves no endpoint {endpoint!r}")
        return self.key(name, endpoint)

    def routes(self, key: str) -> bool:
        return key in self.router.routes

    async def lease(self, key: str, exclude: frozenset[str] = frozenset()) -> Lease:
        return await self.router.lease(key, exclude)

    # -- life -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Its addresses answer from the start (a request waits for a replica, not a 404)."""
        for row in await self.store.deployments():
            served = await self.store.deployment_versions(row["name"])
            self._route(row["name"], next(v["spec"] for v in served if v["version"] == row["version"]))
        self.core.spawn(self._run())

    async def stop(self) -> None:
        """Its loop runs as the core's task, cancelled with it; replicas run on."""

    def _on_event(self, event: Event) -> None:
        job = event.job
        if job is not None and (job.origin or "").startswith(ORIGIN):
            self.core.spawn(self._ended(job.origin.split(":")[1], job.id))

    async def _ended(self, name: str, job_id: str) -> None:
        """A replica ended: one it stopped is gone; one that ended on its own is replaced, later
        each time in a row (the event's job is as it was before its end: its record says how)."""
        self.router.in_flight.pop(job_id, None)
        self.router.draining.discard(job_id)
        state = self._state.setdefault(name, _State())
        job = await self.store.get(job_id)
        if job_id in state.stopping:
            state.stopping.discard(job_id)
        elif job is not None and job.status != JobStatus.CANCELLED:
            state.failures += 1
            wait = min(BACKOFF_MAX, 2.0 ** (state.failures - 1))
            state.not_before = time.monotonic() + wait
            why = job.message or (job.reason.value if job.reason else job.status.value)
            state.message = f"replica {job_id} ended ({job.status.value}: {why}); a new one in {wait:g} s"
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                for listed in await self.store.deployments():
                    async with self._locks.setdefault(listed["name"], asyncio.Lock()):
                        if (row := await self.store.deployment(listed["name"])) is not None:  # not deleted since
                            await self._reconcile(row)
            except Exception:  # the next pass tries again
                log.exception("reconciling deployments failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), PASS)
            except asyncio.TimeoutError:
                pass

    async def _reconcile(self, row: dict[str, Any]) -> None:
        name, served, limits = row["name"], row["version"], Replicas(**row["replicas"])
        state = self._state.setdefault(name, _State())
        versions = {v["version"]: v["spec"] for v in await self.store.deployment_versions(name)}
        live = await self._replicas(name, list(versions))
        self.router.members[name] = [j.id for j in live]
        live = [j for j in live if j.id not in state.stopping]  # those being stopped count no more
        wanted = state.scaler.decide(time.monotonic(), self.router.load(name), limits.min, limits.most,
                                     limits.target, limits.scale_in_after, len(live))
        self._route(name, versions[served])
        for job in self._unhealthy(state, live):
            state.message = f"replica {job.id} failed its health checks for {UNHEALTHY_AFTER:g} s: replaced"
            await self._stop(job, state)
            live.remove(job)
        new = [j for j in live if _version(j) == served]
        old = [j for j in live if _version(j) != served]
        if old and state.failures >= FAILED_ROLLOUT:  # the new version cannot get healthy: serve the old again
            back = max(_version(j) for j in old)
            for job in new:
                await self._stop(job, state)
            state.failures, state.not_before = 0, 0.0
            await self.store.update_deployment(
                name, version=back, status="rollout failed", updated_at=utcnow().isoformat(),
                message=f"version {served} did not get healthy ({state.message}); serving version {back} again")
            return
        ready_new = [j for j in new if self._ready(j)]
        ready_old = [j for j in old if self._ready(j)]
        if len(new) < wanted and len(live) < wanted + (1 if old else 0) and time.monotonic() >= state.not_before:
            await self._launch(name, served, versions[served], state)
        if old and len(ready_new) + len(ready_old) > wanted:  # one more ready than needed: retire an old one
            await self._stop(sorted(old, key=self._ready)[0], state)
        elif old and not ready_old and ready_new:
            await self._stop(old[0], state)  # serving nothing: the new one takes over
        elif not old and len(new) > wanted:  # scaled in: the ones not ready first, then the newest
            for job in sorted(new, key=lambda j: (self._ready(j), -j.created_at.timestamp()))[:len(new) - wanted]:
                await self._stop(job, state)
        await self._say(row, state, old, ready_new, wanted)

    async def _say(self, row: dict[str, Any], state: _State, old: list[Job], ready: list[Job], wanted: int) -> None:
        if row["status"] == "rollout failed" and not old:
            return  # said until the next update
        if old:
            status, message = "rolling out", f"rolling out version {row['version']}: {len(ready)} of {wanted} ready"
        elif wanted == 0 and not ready:
            status, message = "idle", "scaled to zero: the next request starts a replica (and waits for it)"
        elif len(ready) >= wanted:
            status, message, state.failures = "ready", None, 0
        elif ready:
            status, message = "degraded", state.message or f"{len(ready)} of {wanted} replicas ready"
        else:
            status, message = ("failing" if state.failures else "starting"), state.message
        if (status, message) != (row["status"], row["message"]):
            await self.store.update_deployment(row["name"], status=status, message=message,
                                               updated_at=utcnow().isoformat())

    def _unhealthy(self, state: _State, live: list[Job]) -> list[Job]:
        """Running replicas that were ready and have failed their checks for a while."""
        now, out = time.monotonic(), []
        for job in live:
            if job.status != JobStatus.RUNNING or self._ready(job):
                state.unready_since.pop(job.id, None)
            elif self.endpoints.was_ready(job.id):
                since = state.unready_since.setdefault(job.id, now)
                if now - since >= UNHEALTHY_AFTER:
                    out.append(job)
        return out

    def _ready(self, job: Job) -> bool:
        return job.status == JobStatus.RUNNING and self.endpoints.ready(job.id, [e.name for e in job.spec.served])

    def _route(self, name: str, spec: dict[str, Any]) -> None:
        for expose in spec.get("expose") or []:
            self.router.routes[self.key(name, expose["name"])] = (name, expose["name"])

    async def _launch(self, name: str, version: int, spec: dict[str, Any], state: _State) -> None:
        try:
            job = await self.core.submit_spec(JobSpec.model_validate(spec), origin=f"{ORIGIN}{name}:{version}")
        except SpecError as exc:  # its workspace went away, its backend is gone: said, tried again later
            state.failures += 1
            state.not_before = time.monotonic() + BACKOFF_MAX
            state.message = f"a replica could not be started: {exc}"
            return
        self.router.members.setdefault(name, []).append(job.id)

    async def _stop(self, job: Job, state: _State) -> None:
        """Take no new request to it, let it finish those it has (up to DRAIN s), then cancel it."""
        state.stopping.add(job.id)
        state.unready_since.pop(job.id, None)
        self.router.draining.add(job.id)
        self.core.spawn(self._drain(job.id))

    async def _drain(self, job_id: str) -> None:
        deadline = time.monotonic() + DRAIN
        while self.router.in_flight.get(job_id, 0) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        try:
            await self.core.cancel(job_id, wait=0)
        except (JobConflict, JobNotFound):
            pass  # it ended meanwhile

    # -- reading ----------------------------------------------------------------------------
    async def _row(self, name: str) -> dict[str, Any]:
        row = await self.store.deployment(name)
        if row is None:
            raise JobNotFound(f"no deployment {name!r}")
        return row

    async def _replicas(self, name: str, versions: Optional[list[int]] = None) -> list[Job]:
        """Its replicas not yet ended, oldest first (`versions`: its versions, when read already)."""
        if versions is None:
            versions = [v["version"] for v in await self.store.deployment_versions(name)]
        if not versions:  # (an empty origin list would match every job)
            return []
        jobs, _ = await self.store.list(status=LIVE, origin=[f"{ORIGIN}{name}:{v}" for v in versions],
                                        limit=500, oldest_first=True)
        return jobs

    async def _checked(self, given: dict[str, Any]) -> dict[str, Any]:
        """The spec as the API checks it (errors named `spec.<field>`), exposing a port, with its
        dataset and model versions resolved: every replica of a version reads the same bytes."""
        spec, errors = await nested_spec(self.core, given, resolve=True)
        if spec is not None and not spec.served:
            errors.insert(0, FieldError(field="spec.expose", message="a deployment serves at least one named "
                                        "port: expose: [{port, name, health}]"))
        if errors:
            raise SpecError(errors)
        assert spec is not None
        return spec.model_dump(mode="json", exclude_defaults=True)

    async def _public(self, row: dict[str, Any]) -> dict[str, Any]:
        name = row["name"]
        versions = await self.store.deployment_versions(name)
        spec = next(v["spec"] for v in versions if v["version"] == row["version"])
        url = getattr(self.endpoints, "url", "")
        endpoints = [{"name": e["name"], "path": f"jupyter-jobs/ep/{self.key(name, e['name'])}/",
                      "url": url.format(key=self.key(name, e["name"])) if url else None}
                     for e in spec.get("expose") or [] if not e.get("internal")]
        running = [{"job_id": j.id, "version": _version(j), "status": j.status, "ready": self._ready(j)}
                   for j in await self._replicas(name)]
        limits = Replicas(**row["replicas"])
        scaler = self._state.get(name, _State()).scaler
        return Deployment(
            name=name, version=row["version"], replicas=limits, status=row["status"], message=row["message"],
            endpoints=endpoints, running=running, versions=versions, stats=self.router.stats(name),
            wanted=scaler.wanted if scaler.wanted is not None else limits.min,
            created_at=row["created_at"], created_by=row["created_by"], updated_at=row["updated_at"],
        ).model_dump(mode="json")


def _version(job: Job) -> int:
    return int((job.origin or "").rsplit(":", 1)[-1])
