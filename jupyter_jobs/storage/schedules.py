"""The schedules' rows in the history (a part of Store: same database, same thread).

Firing is a compare-and-set on `next_at` inside the transaction that records the job: a
schedule fires once per due time, even across restarts or two servers on one history."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Optional

from .db import Database, Write


class AlreadyFired(RuntimeError):
    """Another firing of this due time got there first."""


@dataclass(frozen=True)
class Fired:
    """A schedule's due time, taken: the next one, and the job it made (if any)."""

    schedule: str
    due: float  # the next_at it fired for (epoch seconds)
    next_at: Optional[float]
    at: float
    job: Optional[str] = None
    message: Optional[str] = None


def newest_first(db: sqlite3.Connection, table: str, where: list[str], args: list[Any], limit: int,
                 cursor: Optional[int]) -> tuple[list[sqlite3.Row], Optional[int]]:
    """A page of a table's rows, newest first (keyset pagination on `seq`), and the next cursor."""
    if cursor is not None:
        where, args = [*where, "seq < ?"], [*args, cursor]
    sql = f"SELECT * FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
    rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", [*args, limit + 1]).fetchall()
    return rows[:limit], (rows[limit - 1]["seq"] if len(rows) > limit else None)


def _schedule_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "spec": json.loads(row["spec"]), "cron": row["cron"],
            "timezone": row["timezone"], "catch_up": bool(row["catch_up"]), "overlap": row["overlap"],
            "paused": bool(row["paused"]), "next_at": row["next_at"], "last_at": row["last_at"],
            "last_job": row["last_job"], "message": row["message"], "created_at": row["created_at"]}


class ScheduleRows(Database):
    """Schedules in the history."""

    def firing(self, fired: Fired) -> Write:
        """The write that takes a due time for the job recorded with it (AlreadyFired if taken)."""
        def write(db: sqlite3.Connection) -> None:
            if not self._advance(fired):
                raise AlreadyFired(fired.schedule)

        return write

    def _advance(self, fired: Fired) -> bool:
        """In the caller's transaction: move the schedule on from `due`, once."""
        return self.db.execute(
            "UPDATE schedules SET next_at = ?, last_at = ?, last_job = COALESCE(?, last_job), message = ? "
            "WHERE id = ? AND next_at = ?",
            (fired.next_at, fired.at, fired.job, fired.message, fired.schedule, fired.due)).rowcount > 0

    async def advance_schedule(self, fired: Fired) -> bool:
        """Move a schedule on without a job (skipped, or it could not start one)."""
        def _go() -> bool:
            with self.db:
                self.db.execute("BEGIN")
                return self._advance(fired)

        return await self._run(_go)

    async def insert_schedule(self, row: dict[str, Any]) -> None:
        await self._run(lambda: self.db.execute(
            "INSERT INTO schedules (id, name, spec, cron, timezone, catch_up, overlap, paused, next_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row["id"], row["name"], json.dumps(row["spec"]), row["cron"], row["timezone"], int(row["catch_up"]),
             row["overlap"], int(row["paused"]), row["next_at"], row["created_at"])))

    async def schedule(self, schedule_id: str) -> Optional[dict[str, Any]]:
        def _get() -> Optional[dict[str, Any]]:
            row = self.db.execute("SELECT * FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
            return _schedule_row(row) if row else None

        return await self._run(_get)

    async def schedules(self, *, limit: int = 50, cursor: Optional[int] = None,
                        due_by: Optional[float] = None) -> tuple[list[dict[str, Any]], Optional[int]]:
        """Newest first (keyset pagination on `seq`); `due_by`: the active ones due by then."""
        def _list() -> tuple[list[dict[str, Any]], Optional[int]]:
            due = due_by is not None
            rows, after = newest_first(self.db, "schedules", ["paused = 0 AND next_at <= ?"] * due,
                                       [due_by] * due, limit, cursor)
            return [_schedule_row(r) for r in rows], after

        return await self._run(_list)

    async def next_due(self) -> Optional[float]:
        """When the soonest active schedule is due."""
        return await self._run(lambda: self.db.execute(
            "SELECT MIN(next_at) FROM schedules WHERE paused = 0").fetchone()[0])

    async def update_schedule(self, schedule_id: str, **fields: Any) -> bool:
        allowed = {"paused", "next_at", "message"}
        if set(fields) - allowed:
            raise ValueError(f"not updatable: {set(fields) - allowed}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        return await self._run(lambda: self.db.execute(
            f"UPDATE schedules SET {sets} WHERE id = ?", [*fields.values(), schedule_id]).rowcount > 0)

    async def delete_schedule(self, schedule_id: str) -> bool:
        return await self._run(lambda: self.db.execute(
            "DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount > 0)
