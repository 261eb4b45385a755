"""Disk housekeeping: finished jobs past retention are deleted, snapshot blobs no job refers
to any more are collected, and so are the folders of environment builds that died. Runs at
start-up, then every `interval` seconds, off the event loop where it blocks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, Callable, Optional

from ..domain.spec import parse_duration, parse_memory
from ..domain.job import utcnow
from ..storage.snapshots import SnapshotStore
from ..storage.store import Store

log = logging.getLogger(__name__)


class Retention:
    """`c.JobsApp.retention`: {"max_age": "30d" or seconds, "max_jobs": N, "environments_max_age":
    "30d", "environments_max_size": "50g", "versions_max_age": "90d"}; any may be left out."""

    def __init__(self, settings: dict[str, Any]):
        unknown = set(settings) - {"max_age", "max_jobs", "environments_max_age", "environments_max_size",
                                   "versions_max_age"}
        if unknown:
            raise ValueError(f"JobsApp.retention: unknown key(s) {', '.join(sorted(unknown))}; use max_age, max_jobs, "
                             "environments_max_age, environments_max_size, versions_max_age")
        age = settings.get("max_age")
        self.max_age: Optional[float] = parse_duration(age) if age not in (None, "", 0) else None
        self.max_jobs = int(settings.get("max_jobs") or 0)
        if self.max_jobs < 0:
            raise ValueError("JobsApp.retention: max_jobs must be 0 (no limit) or more")
        env_age, env_size = settings.get("environments_max_age"), settings.get("environments_max_size")
        self.environments_max_age = parse_duration(env_age) if env_age not in (None, "", 0) else None
        self.environments_max_size = parse_memory(env_size) if env_size not in (None, "", 0) else None
        versions = settings.get("versions_max_age")  # datasets' and models' versions nothing holds (a feature's)
        self.versions_max_age = parse_duration(versions) if versions not in (None, "", 0) else None

    def __bool__(self) -> bool:
        return bool(self.max_age or self.max_jobs)


class Housekeeper:
    def __init__(self, *, store: Store, snapshots: SnapshotStore, retention: Retention, interval: float,
                 delete: Callable[[str], Awaitable[None]],
                 environments: Optional[Callable[[Optional[float], Optional[int]], dict[str, int]]] = None,
                 leftovers: Optional[Callable[[], dict[str, int]]] = None):
        self.store, self.snapshots, self.retention, self.environments = store, snapshots, retention, environments
        self.leftovers = leftovers  # always collected: a dead build's folder is never of use
        self.interval, self.delete = interval, delete
        self.last: dict[str, Any] = {}

    async def run_forever(self) -> None:
        while True:
            try:
                await self.once()
            except Exception:  # housekeeping must never take the service down
                log.exception("housekeeping failed")
            if self.interval <= 0:
                return
            await asyncio.sleep(self.interval)

    async def once(self) -> dict[str, Any]:
        """Apply retention, then collect snapshot garbage; returns what was done."""
        deleted, kept = 0, []
        if self.retention:
            before = utcnow() - timedelta(seconds=self.retention.max_age) if self.retention.max_age else None
            while ids := await self.store.expired(finished_before=before, keep=self.retention.max_jobs):
                for job_id in ids:
                    try:
                        await self.delete(job_id)
                        deleted += 1
                    except Exception as exc:  # e.g. files that cannot be removed: kept, and said
                        kept.append(f"{job_id}: {exc}")
                if len(kept) >= len(ids):
                    break
        since = self.snapshots.mark()
        live = await self.store.snapshot_ids()
        freed = await asyncio.to_thread(self.snapshots.collect, live, since)
        if self.leftovers is not None:
            freed.update(await asyncio.to_thread(self.leftovers))
        r = self.retention
        if self.environments is not None and (r.environments_max_age or r.environments_max_size):
            freed.update(await asyncio.to_thread(self.environments, r.environments_max_age,
                                                 r.environments_max_size))
        self.last = {"deleted_jobs": deleted, "kept": kept, **freed}
        if deleted or freed["blobs"] or freed.get("environment_leftovers_removed"):
            log.info("housekeeping: %s", self.last)
        return self.last
