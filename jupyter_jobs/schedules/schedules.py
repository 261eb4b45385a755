"""Schedules: a job spec (command or notebook) run on a cron expression in a time zone.

Each schedule keeps its next due time in the history. One loop sleeps until the soonest one
and fires what is due: the job is recorded in the same transaction that moves the schedule to
its next time, so a time fires once, across restarts too. Times missed while the server was
down fire once at start (`catch_up`) or are skipped, and say so. `overlap: skip` (the
default) skips a time while the schedule's previous job has not ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from datetime import datetime, timezone
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from ..domain.errors import FieldError, JobConflict, JobNotFound, SpecError
from ..domain.spec import read_spec
from ..domain.job import utcnow
from ..domain.replies import Schedule, ScheduleInput, SchedulePage, SchedulesQuery
from ..storage.schedules import AlreadyFired, Fired
from ..domain.job import Job
from ..jobs.plugins import Event, JobCore, nested_spec
from ..storage.db import Write

log = logging.getLogger(__name__)

#: how many due times firing handles at once (each takes a snapshot and a write)
CONCURRENCY = 16


#: how far ahead a next time is looked for: `0 0 29 2 *` skips at most 8 years; a search for an
#: expression that never matches (`0 0 31 2 *`) ends here rather than scanning the calendar
MAX_YEARS_AHEAD = 50


def next_times(cron: str, zone: str, after: float, count: int = 1) -> list[float]:
    """The next `count` times (epoch seconds) the expression matches after `after`, in `zone`
    (daylight saving time as croniter applies it); fewer, or none, where it matches no more
    (`0 0 31 2 *`, a year that has passed, the last time of `0 0 29 2 * 0 2028`)."""
    it = croniter(cron, datetime.fromtimestamp(after, ZoneInfo(zone)), max_years_between_matches=MAX_YEARS_AHEAD)
    times: list[float] = []
    try:
        while len(times) < count:
            times.append(it.get_next(datetime).timestamp())
    except CroniterBadDateError:
        pass
    return times


def next_time(cron: str, zone: str, after: float) -> Optional[float]:
    """The next time after `after`, or None once the expression matches no more."""
    return (next_times(cron, zone, after) or [None])[0]


#: what computing a stored row's times may raise (an expression or zone it no longer reads)
UNREADABLE = (CroniterError, ValueError, KeyError, ZoneInfoNotFoundError)


def _next_or_none(row: dict[str, Any], after: float) -> Optional[float]:
    """A stored schedule's next time; None if it has none, or its times cannot be computed (it
    stops firing, and its listing says why)."""
    try:
        return next_time(row["cron"], row["timezone"], after)
    except UNREADABLE:
        return None


def never(cron: str) -> str:
    """Why an expression has no next time."""
    return (f"{cron!r} matches no time from now on (a day the month never has, such as 31 February, "
            f"or a year that has passed; looked {MAX_YEARS_AHEAD} years ahead)")


def _iso(epoch: Optional[float]) -> Optional[str]:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat() if epoch is not None else None


class Schedules:
    """Create, list, pause, resume and delete schedules; fire them when due."""

    def __init__(self, core: JobCore):
        self.core, self.store = core, core.store
        self._changed = asyncio.Event()

    # -- the faces ----------------------------------------------------------------------------
    async def create(self, body: Any) -> dict[str, Any]:
        """`{"spec": {...}, "cron": "0 3 * * *", "timezone": "Europe/Berlin", "catch_up": false,
        "overlap": "skip", "name": ...}`, checked whole (spec errors are named `spec.<field>`)."""
        given = ScheduleInput.parse(body)
        errors: list[FieldError] = []
        try:
            ZoneInfo(given.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(FieldError(field="timezone", message=f"unknown time zone {given.timezone!r} "
                                     "(an IANA name such as Europe/Berlin, or UTC)"))
        first: Optional[float] = None  # its first time, computed (and bounded) as a check
        if not croniter.is_valid(given.cron):
            errors.append(FieldError(field="cron", message=_cron_problem(given.cron)))
        elif not errors and (first := next_time(given.cron, given.timezone, time.time())) is None:
            errors.append(FieldError(field="cron", message=never(given.cron)))
        spec, problems = await nested_spec(self.core, given.spec)
        errors += problems
        if errors:
            raise SpecError(errors)
        assert spec is not None
        row = {"id": "s" + secrets.token_hex(6), "name": given.name or spec.name or "schedule",
               "spec": spec.model_dump(mode="json", exclude_defaults=True), "cron": given.cron,
               "timezone": given.timezone, "catch_up": given.catch_up, "overlap": given.overlap,
               "paused": False, "next_at": first,
               "created_at": utcnow().isoformat()}
        await self.store.insert_schedule(row)
        self._changed.set()
        return await self.get(row["id"])

    async def get(self, schedule_id: str) -> dict[str, Any]:
        row = await self.store.schedule(schedule_id)
        if row is None:
            raise JobNotFound(f"no schedule {schedule_id!r}")
        return self._public(row)

    async def list(self, **query: Any) -> dict[str, Any]:
        q = SchedulesQuery.parse(**query)
        rows, cursor = await self.store.schedules(limit=q.limit, cursor=q.cursor)
        return SchedulePage(schedules=[Schedule(**self._public(r)) for r in rows], next_cursor=cursor).model_dump(
            mode="json")

    async def pause(self, schedule_id: str) -> dict[str, Any]:
        await self.get(schedule_id)
        await self.store.update_schedule(schedule_id, paused=True)
        return await self.get(schedule_id)

    async def resume(self, schedule_id: str) -> dict[str, Any]:
        """Back on: its next time is the next one from now (nothing missed while paused runs)."""
        row = await self.store.schedule(schedule_id)
        if row is None:
            raise JobNotFound(f"no schedule {schedule_id!r}")
        if not row["paused"]:
            raise JobConflict(f"schedule {schedule_id} is not paused")
        try:
            upcoming = next_time(row["cron"], row["timezone"], time.time())
        except UNREADABLE as exc:
            raise SpecError.one("cron", f"cannot resume: its times cannot be computed: {exc}") from None
        if upcoming is None:
            raise SpecError.one("cron", f"cannot resume: {never(row['cron'])}")
        await self.store.update_schedule(schedule_id, paused=False, next_at=upcoming)
        self._changed.set()
        return await self.get(schedule_id)

    async def delete(self, schedule_id: str) -> None:
        """The schedule goes; the jobs it started stay in the history."""
        if not await self.store.delete_schedule(schedule_id):
            raise JobNotFound(f"no schedule {schedule_id!r}")

    def _public(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row as shown; one without a next time (its last has fired), or whose times cannot
        be computed (stored by an older version, say), is shown without them and says why."""
        upcoming: list[float] = []
        message = row["message"]
        if row["paused"]:
            pass
        elif row["next_at"] is None:
            message = message or never(row["cron"])
        else:
            try:
                upcoming = [row["next_at"]] + next_times(row["cron"], row["timezone"], row["next_at"], 4)
            except UNREADABLE as exc:
                message = f"its times cannot be computed: {exc}"
        return Schedule(**{**row, "next_at": _iso(upcoming[0] if upcoming else None), "message": message,
                           "last_at": _iso(row["last_at"]), "next_runs": [_iso(t) for t in upcoming]}).model_dump(
            mode="json")

    # -- firing -------------------------------------------------------------------------------
    def _firing(self, job: Job, fired: Fired) -> Write:
        """The job is this schedule's, recorded in the transaction that takes its due time."""
        job.schedule = fired.schedule
        return self.store.firing(dataclasses.replace(fired, job=job.id))

    async def start(self) -> None:
        """Catch up with the times missed while down, then fire as times come (a core task)."""
        await self.recover()
        self.core.spawn(self.run_forever())

    async def stop(self) -> None:
        """Nothing of its own to let go: its loop runs as the core's task."""

    async def recover(self) -> None:
        """At start: times missed while the server was down fire once now (catch_up) or are
        skipped to the next time from now; either way the schedule says so."""
        now = time.time()
        cursor = None
        while True:
            rows, cursor = await self.store.schedules(limit=500, cursor=cursor, due_by=now)
            for row in rows:
                if row["catch_up"]:
                    continue  # due: the loop fires it once
                upcoming = _next_or_none(row, now)
                await self.store.advance_schedule(Fired(
                    row["id"], row["next_at"], upcoming, now,
                    message=f"skipped the time(s) missed while the server was down (since {_iso(row['next_at'])}); "
                    "catch_up is off"))
            if cursor is None:
                break

    async def run_forever(self) -> None:
        while True:
            try:
                await self.fire_due()
                soonest = await self.store.next_due()
            except Exception:
                log.exception("firing schedules failed")
                soonest = time.time() + 5
            wait = 60.0 if soonest is None else min(60.0, max(0.0, soonest - time.time()))
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def fire_due(self) -> int:
        """Fire every schedule due now, a few at a time; returns how many times were taken."""
        now = time.time()
        fired, seen, gate = 0, set(), asyncio.Semaphore(CONCURRENCY)
        while True:
            rows, _ = await self.store.schedules(limit=500, due_by=now)
            rows = [r for r in rows if (r["id"], r["next_at"]) not in seen]  # each due time once per pass
            if not rows:
                return fired
            seen.update((r["id"], r["next_at"]) for r in rows)
            await asyncio.gather(*(self._gated(gate, r, now) for r in rows))
            fired += len(rows)

    async def _gated(self, gate: asyncio.Semaphore, row: dict[str, Any], now: float) -> None:
        async with gate:
            await self._fire(row, now)

    async def _fire(self, row: dict[str, Any], now: float) -> None:
        upcoming = _next_or_none(row, now)  # None: this was its last time
        fired = Fired(row["id"], row["next_at"], upcoming, now)
        if row["overlap"] == "skip" and row["last_job"]:
            last = await self.store.get(row["last_job"])
            if last is not None and not last.status.is_terminal():
                await self.store.advance_schedule(dataclasses.replace(
                    fired, message=f"skipped {_iso(row['next_at'])}: job {last.id} had not ended (overlap: skip)"))
                return
        spec, error = read_spec(row["spec"])
        try:
            if error is not None or spec is None:
                raise error or SpecError.one("spec", "no spec")
            if not spec.name:
                spec = spec.model_copy(update={"name": row["name"]})
            job = await self.core.submit_spec(spec, with_job=lambda job: self._firing(job, fired))
            if self.core.events.wants("schedule.fired"):
                self.core.events.publish(Event("schedule.fired", job, {"schedule": await self.get(row["id"]),
                                                                       "job": job.public()}))
        except AlreadyFired:
            pass  # another firing of this time got there first
        except Exception as exc:  # the job cannot start (its workspace went, its backend...): say so
            await self.store.advance_schedule(dataclasses.replace(
                fired, message=f"could not start a job at {_iso(now)}: {exc}"))


#: each field of a cron expression: its name, and what it takes
_CRON_FIELDS = [("a minute", "0-59"), ("an hour", "0-23"), ("a day of the month", "1-31"),
                ("a month", "1-12 or jan-dec"), ("a day of the week", "0-7 or sun-sat"), ("a second", "0-59"),
                ("a year", "1970-2099")]
_CRON_FORMS = "a number, *, a list a,b, a range a-b, a step */n"


def _cron_problem(cron: str) -> str:
    """What is wrong with `cron`, in the product's words: which field, what it takes."""
    fields = cron.split()
    if not 5 <= len(fields) <= 7:
        return (f"{len(fields)} fields given: a cron expression is minute hour day month weekday "
                "(five fields), with a sixth for seconds and a seventh for the year")
    for at, given in enumerate(fields):
        probe = ["*"] * len(fields)
        probe[at] = given
        if not croniter.is_valid(" ".join(probe)):
            name, takes = _CRON_FIELDS[at]
            return f"{given!r} is not {name} ({takes}: {_CRON_FORMS})"
    return "these fields do not make a cron expression together (minute hour day month weekday)"
