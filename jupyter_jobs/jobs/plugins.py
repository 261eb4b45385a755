"""How features plug into the job core without the core knowing them.

A feature (workflows, schedules, endpoints, telemetry, and the ones to come) is handed the
narrow `JobCore` (submit, cancel, read jobs, release jobs it holds back), subscribes to the
core's events, and may add small policies the queue and the runner consult: why a queued job
must still wait (`QueuePolicy`), what it must wait for on an engine that orders jobs itself
(`DependencyPolicy`), what a job's public view shows (`ViewPolicy`). The composition root
(`app.compose`) plugs each feature in; the core's constructor never changes for a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, runtime_checkable

from ..backends.base import Dependency, Mount
from ..domain.job import Job, Kept
from ..domain.errors import FieldError, SpecError
from ..domain.spec import JobSpec, read_spec
from ..storage.store import Store, Write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Something that happened: `job.queued|launched|started|ended|deleted` carry the job as the
    core knew it then; a feature's own events (`workflow.ended`, `schedule.fired`) carry `data`."""

    kind: str
    job: Optional[Job] = None
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], None]


class Events:
    """Events to subscribers, synchronously and in the order they happen, each delivered once to
    each subscriber; a subscriber that raises is logged and the others still hear the event.
    Subscribers that need I/O spawn it (they must never hold the caller)."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, Optional[frozenset[str]]]] = []

    def subscribe(self, subscriber: Subscriber, kinds: Optional[Iterable[str]] = None) -> None:
        """Hear every event, or only those of `kinds`."""
        self._subscribers.append((subscriber, frozenset(kinds) if kinds is not None else None))

    def wants(self, kind: str) -> bool:
        """Whether anyone listens for `kind` (so an event costly to make is made only then)."""
        return any(kinds is None or kind in kinds for _, kinds in self._subscribers)

    def publish(self, event: Event) -> None:
        for subscriber, kinds in list(self._subscribers):
            if kinds is not None and event.kind not in kinds:
                continue
            try:
                subscriber(event)
            except Exception:
                log.exception("a subscriber to %s failed", event.kind)


@runtime_checkable
class QueuePolicy(Protocol):
    def hold(self, job: Job) -> Optional[str]:
        """Why the queue must not start `job` yet (None: it may start)."""


@runtime_checkable
class DependencyPolicy(Protocol):
    async def depends(self, job: Job) -> list[Dependency]:
        """What `job` waits for on a backend that orders jobs itself."""


@runtime_checkable
class ViewPolicy(Protocol):
    def view(self, job: Job) -> None:
        """Fill in what this feature adds to a job's public view (e.g. its endpoints)."""


@runtime_checkable
class SpecPolicy(Protocol):
    async def resolve(self, spec: JobSpec) -> JobSpec:
        """The spec as it will be recorded: what this feature names in it resolved (a dataset's
        version), or a SpecError naming the field."""


@runtime_checkable
class MountPolicy(Protocol):
    async def mounts(self, job: Job) -> list[Mount]:
        """What `job` reads read-only beside its workspace (a dataset version's files)."""


@runtime_checkable
class FinishPolicy(Protocol):
    async def finish(self, job: Job) -> list[Kept]:
        """Keep what a job that exited 0 declared it makes (a dataset output's new version),
        before its success is recorded; a failed one fails the job."""


@runtime_checkable
class InfoPolicy(Protocol):
    def info(self) -> dict[str, Any]:
        """What this feature adds to GET /backends (e.g. the webhooks' delivery state)."""


class Policies:
    """The policies features added, consulted by the queue, the runner and the read side."""

    def __init__(self) -> None:
        self.queue: list[QueuePolicy] = []
        self.dependencies: list[DependencyPolicy] = []
        self.views: list[ViewPolicy] = []
        self.infos: list[InfoPolicy] = []
        self.specs: list[SpecPolicy] = []
        self.mount_sources: list[MountPolicy] = []
        self.finishers: list[FinishPolicy] = []

    def add(self, policy: Any) -> None:
        """Take each of the policies `policy` implements; one that implements none is a mistake."""
        kinds = [(QueuePolicy, self.queue), (DependencyPolicy, self.dependencies), (ViewPolicy, self.views),
                 (InfoPolicy, self.infos), (SpecPolicy, self.specs), (MountPolicy, self.mount_sources),
                 (FinishPolicy, self.finishers)]
        taken = [into for kind, into in kinds if isinstance(policy, kind)]
        for into in taken:
            into.append(policy)
        if not taken:
            raise TypeError(f"{policy!r} implements no policy (hold, depends, view, info, resolve, mounts, "
                            "finish)")

    def hold(self, job: Job) -> Optional[str]:
        return next((why for p in self.queue if (why := p.hold(job))), None)

    async def depends(self, job: Job) -> list[Dependency]:
        return [d for p in self.dependencies for d in await p.depends(job)]

    def view(self, job: Job) -> None:
        for policy in self.views:
            policy.view(job)

    def info(self) -> dict[str, Any]:
        return {k: v for policy in self.infos for k, v in policy.info().items()}

    async def resolve(self, spec: JobSpec) -> JobSpec:
        for policy in self.specs:
            spec = await policy.resolve(spec)
        return spec

    async def mounts(self, job: Job) -> list[Mount]:
        return [m for p in self.mount_sources for m in await p.mounts(job)]

    async def finish(self, job: Job) -> list[Kept]:
        return [k for p in self.finishers for k in await p.finish(job)]


@runtime_checkable
class Feature(Protocol):
    """A feature with a life of its own: started once the core has recovered its jobs (before
    the queue's first pass), stopped before the core lets go of its backends."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Checked:
    """A spec as the core would run it: its backend's name, its workspace folder, notes."""

    backend: str
    workspace: Path
    notes: list[str]


class JobCore(Protocol):
    """The narrow face of the job core that features use (JobService implements it)."""

    store: Store
    events: Events

    # -- submitting
    async def check(self, spec: JobSpec) -> Checked: ...
    async def checkout(self, spec: JobSpec) -> tuple[JobSpec, Optional[Path]]: ...
    def apply_instance_type(self, spec: JobSpec) -> JobSpec: ...
    async def resolve(self, spec: JobSpec) -> JobSpec: ...
    def resolve_workspace(self, workspace: str) -> Path: ...
    def pinned_snapshot(self, folder: Path) -> Any: ...
    def new_job(self, spec: JobSpec, backend: str, snapshot: Optional[str], workspace: Path, *,
                job_id: Optional[str] = None, notes: Optional[list[str]] = None) -> Job: ...
    async def record(self, jobs: list[Job], also: Optional[Write] = None) -> None: ...
    async def submit_spec(self, spec: JobSpec, *, origin: Optional[str] = None,
                          with_job: Optional[Callable[[Job], Optional[Write]]] = None) -> Job: ...
    # -- jobs held back by a feature, and stopping
    def release(self, job_ids: list[str], spec: Optional[JobSpec] = None) -> None: ...
    async def skip(self, job_id: str, message: str) -> bool: ...
    def dropped(self, job_id: str) -> None: ...
    async def stop_job(self, job_id: str) -> None: ...
    async def cancel(self, job_id: str, wait: float = 1.0) -> dict[str, Any]: ...
    def kick(self) -> None: ...
    # -- reading
    def runners(self) -> dict[str, Any]: ...
    def job_dir(self, job: Job) -> Path: ...
    def orders_dependencies(self, backend: str) -> bool: ...
    def spawn(self, coro: Awaitable[Any]) -> Any: ...
    # -- plugging in
    def add_policy(self, policy: Any) -> None: ...
    def plug(self, feature: Feature) -> None: ...


async def nested_spec(core: JobCore, given: Any, resolve: bool = False) -> tuple[Optional[JobSpec], list[FieldError]]:
    """A job spec inside a feature's body (a schedule's, a deployment's) as the API checks it,
    each problem named `spec.<field>`; `resolve`: its dataset and model versions recorded too.
    The spec is None when it could not be read at all."""
    spec, error = read_spec(given)
    if error is not None:
        return None, [e.model_copy(update={"field": f"spec.{e.field}"}) for e in error.errors]
    try:
        if resolve:
            spec = await core.resolve(spec)
        await core.check(spec)
    except SpecError as exc:
        return spec, [e.model_copy(update={"field": f"spec.{e.field}"}) for e in exc.errors]
    return spec, []
