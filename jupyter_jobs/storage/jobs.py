"""The jobs' rows: a job and its status changes (events). Status changes are compare-and-set
(`only_from`), so the first terminal status wins whoever races for it."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

from ..domain.job import Job
from ..domain.spec import JobSpec
from ..domain.status import TERMINAL_STATUSES, JobStatus
from .db import Database, Write

_COLUMNS = (
    "id, status, backend, project, reason, message, exit_code, spec, created_at, started_at, "
    "finished_at, gpus, snapshot, notes, backend_state"
)
SELECT_JOB = f"{_COLUMNS}, attempt, not_before, dir, workflow, node, after, inputs, schedule, origin, preempted"
_UPDATABLE = {"reason", "message", "exit_code", "started_at", "finished_at", "gpus", "backend_state", "attempt",
              "not_before", "after", "spec", "preempted"}


#: a job matching a LIKE pattern (given four times): a string command is json_each's one value, an argv its
#: words; a notebook job's notebook stands for its command
_SEARCH = (
    "(id LIKE ? ESCAPE '\\' OR json_extract(spec, '$.name') LIKE ? ESCAPE '\\'"
    " OR COALESCE((SELECT group_concat(value, ' ') FROM json_each(spec, '$.command')),"
    " json_extract(spec, '$.notebook')) LIKE ? ESCAPE '\\'"
    " OR EXISTS (SELECT 1 FROM json_each(spec, '$.tags') WHERE value LIKE ? ESCAPE '\\'))"
)


def _contains(text: str) -> str:
    """A LIKE pattern for `text` anywhere, its own % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value else None


def row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        status=row["status"],
        backend=row["backend"],
        project=row["project"],
        reason=row["reason"],
        message=row["message"],
        exit_code=row["exit_code"],
        spec=JobSpec.model_validate_json(row["spec"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        gpus=json.loads(row["gpus"]),
        snapshot=row["snapshot"],
        notes=json.loads(row["notes"]),
        backend_state=json.loads(row["backend_state"]),
        attempt=row["attempt"],
        preempted=row["preempted"],
        not_before=row["not_before"],
        dir=row["dir"],
        workflow=row["workflow"],
        node=row["node"],
        after=json.loads(row["after"]),
        schedule=row["schedule"],
        origin=row["origin"],
        inputs=json.loads(row["inputs"]),
    )


def encode_field(field: str, value: Any) -> Any:
    if field in ("gpus", "backend_state", "after"):
        return json.dumps(value)
    if field == "spec":
        return value.model_dump_json()
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    return value


class JobRows(Database):
    """Jobs in the history."""

    # -- writes -----------------------------------------------------------------------------
    async def insert(self, job: Job, job_dir: Path) -> None:
        await self.insert_many([(job, job_dir)])

    async def insert_many(self, jobs: list[tuple[Job, Path]], also: Optional[Write] = None,
                          first: Optional[Callable[[], Any]] = None) -> None:
        """Jobs, with `also` (a feature's write: a workflow run's row, a schedule's firing) in the
        same transaction: a schedule fires once, whatever happens around it. `first`: what must
        exist before the rows say so (their folders), made in the same trip to the store's thread
        (one fewer on every submit's path); should it fail, nothing is recorded."""
        def _insert() -> None:
            if first is not None:
                first()
            with self.db:
                self.db.execute("BEGIN")
                if also is not None:
                    also(self.db)
                self.db.executemany(
                    f"INSERT INTO jobs ({_COLUMNS}, dir, workflow, node, after, inputs, schedule, origin) "
                    f"VALUES ({', '.join('?' * 22)})",
                    [
                        (
                            j.id, j.status.value, j.backend, j.project, None, None, None,
                            j.spec.model_dump_json(), iso(j.created_at), None, None,
                            json.dumps(j.gpus), j.snapshot, json.dumps(j.notes), json.dumps(j.backend_state),
                            str(d), j.workflow, j.node, json.dumps(j.after), json.dumps(j.inputs), j.schedule,
                            j.origin,
                        )
                        for j, d in jobs
                    ],
                )
                self.db.executemany(
                    "INSERT INTO job_events (job_id, at, status, message) VALUES (?, ?, ?, ?)",
                    [(j.id, iso(j.created_at), j.status.value, None) for j, _ in jobs],
                )

        await self._run(_insert)

    async def transition(
        self, job_id: str, status: JobStatus, at: datetime, *, only_from: Optional[JobStatus] = None, **fields: Any
    ) -> bool:
        """Move a job to `status` (with fields) unless it is terminal already, or (`only_from`)
        not in that status; False when it did not move."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {unknown}")

        def _transition() -> bool:
            sets = ", ".join(["status = ?"] + [f"{k} = ?" for k in fields])
            values = [status.value] + [encode_field(k, v) for k, v in fields.items()]
            marks = ", ".join("?" * len(TERMINAL_STATUSES))
            guard = [s.value for s in TERMINAL_STATUSES]
            where = f"id = ? AND status NOT IN ({marks})"
            if only_from is not None:
                where += " AND status = ?"
                guard.append(only_from.value)
            with self.db:
                self.db.execute("BEGIN")
                cur = self.db.execute(f"UPDATE jobs SET {sets} WHERE {where}", [*values, job_id, *guard])
                if cur.rowcount:
                    self.db.execute(
                        "INSERT INTO job_events (job_id, at, status, message) VALUES (?, ?, ?, ?)",
                        (job_id, iso(at), status.value, fields.get("message")),
                    )
            return cur.rowcount > 0

        return await self._run(_transition)

    async def update(self, job_id: str, *, only_in: Optional[JobStatus] = None, **fields: Any) -> bool:
        """Change fields that are not the status (e.g. the backend's reattach state); with
        `only_in`, only while the job has that status. False when nothing changed."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {unknown}")

        def _update() -> bool:
            sets = ", ".join(f"{k} = ?" for k in fields)
            where, args = "id = ?", [job_id]
            if only_in is not None:
                where, args = "id = ? AND status = ?", [job_id, only_in.value]
            values = [encode_field(k, v) for k, v in fields.items()]
            return self.db.execute(f"UPDATE jobs SET {sets} WHERE {where}", values + args).rowcount > 0

        return await self._run(_update)

    async def release(self, job_ids: list[str]) -> None:
        """Let queued workflow jobs go (they wait for no other job any more), in one transaction."""
        def _release() -> None:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("UPDATE jobs SET after = '[]' WHERE id = ? AND status = 'queued'",
                                    [(i,) for i in job_ids])

        await self._run(_release)


    async def add_note(self, job_id: str, note: str) -> None:
        """Append one note to a job (atomic: no read-modify-write across threads)."""
        await self._run(lambda: self.db.execute(
            "UPDATE jobs SET notes = json_insert(notes, '$[#]', ?) WHERE id = ?", (note, job_id)))

    async def delete(self, job_id: str) -> None:
        def _delete() -> None:
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                self.db.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))

        await self._run(_delete)

    # -- reads ------------------------------------------------------------------------------
    async def get(self, job_id: str) -> Optional[Job]:
        def _get() -> Optional[Job]:
            row = self.db.execute(f"SELECT {SELECT_JOB} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return row_to_job(row) if row else None

        return await self._run(_get)

    async def job_dir(self, job_id: str) -> Optional[Path]:
        return (await self.job_dirs([job_id])).get(job_id)

    async def job_dirs(self, job_ids: list[str]) -> dict[str, Path]:
        """The folders of many jobs in one query (a workflow job's inputs), by id."""
        def _dirs() -> dict[str, Path]:
            out: dict[str, Path] = {}
            for start in range(0, len(job_ids), 500):
                part = job_ids[start:start + 500]
                rows = self.db.execute(f"SELECT id, dir FROM jobs WHERE id IN ({', '.join('?' * len(part))})", part)
                out.update((r[0], Path(r[1])) for r in rows if r[1])
            return out

        return await self._run(_dirs)

    async def list(
        self,
        *,
        status: Optional[list[JobStatus]] = None,
        project: Optional[str] = None,
        q: Optional[str] = None,
        tag: Optional[str] = None,
        workflow: Optional[str] = None,
        schedule: Optional[str] = None,
        origin: Optional[list[str]] = None,
        limit: int = 50,
        cursor: Optional[int] = None,
        oldest_first: bool = False,
        unblocked: bool = False,
    ) -> tuple[list[Job], Optional[int]]:
        """Jobs newest first (keyset pagination on `seq`); returns the page and the next cursor.
        `q`: text in the name, the command (an argv as its words joined), the id or a tag, as typed
        (case-insensitive for ASCII letters); `tag`: exactly this tag."""

        def _list() -> tuple[list[Job], Optional[int]]:
            where, args = [], []
            if status:
                where.append(f"status IN ({', '.join('?' * len(status))})")
                args += [s.value for s in status]
            if project is not None:
                where.append("project = ?")
                args.append(project)
            if workflow is not None:
                where.append("workflow = ?")
                args.append(workflow)
            if schedule is not None:
                where.append("schedule = ?")
                args.append(schedule)
            if origin:
                where.append(f"origin IN ({', '.join('?' * len(origin))})")
                args += origin
            if unblocked:  # not waiting for other jobs of its workflow
                where.append("after = '[]'")
            if q:
                where.append(_SEARCH)
                args += [_contains(q)] * 4
            if tag is not None:
                where.append("EXISTS (SELECT 1 FROM json_each(spec, '$.tags') WHERE value = ?)")
                args.append(tag)
            if cursor is not None:
                where.append("seq > ?" if oldest_first else "seq < ?")
                args.append(cursor)
            sql = f"SELECT seq, {SELECT_JOB} FROM jobs"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += f" ORDER BY seq {'ASC' if oldest_first else 'DESC'} LIMIT ?"
            rows = self.db.execute(sql, args + [limit + 1]).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            return [row_to_job(r) for r in rows], (rows[-1]["seq"] if more else None)

        return await self._run(_list)

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        def _events() -> list[dict[str, Any]]:
            rows = self.db.execute(
                "SELECT at, status, message FROM job_events WHERE job_id = ? ORDER BY rowid", (job_id,)
            ).fetchall()
            return [dict(r) for r in rows]

        return await self._run(_events)

    async def snapshot_ids(self) -> set[str]:
        """Every snapshot a recorded job or a dataset version refers to (what garbage collection keeps)."""
        def _ids() -> set[str]:
            return {r[0] for r in self.db.execute(
                "SELECT snapshot FROM jobs WHERE snapshot IS NOT NULL "
                "UNION SELECT snapshot FROM datasets WHERE deleted = 0")}

        return await self._run(_ids)

    async def expired(self, *, finished_before: Optional[datetime], keep: int, limit: int = 500) -> list[str]:
        """Finished jobs past retention: finished before a time, or beyond the newest `keep`."""
        def _expired() -> list[str]:
            marks = ", ".join("?" * len(TERMINAL_STATUSES))
            terminal = [s.value for s in TERMINAL_STATUSES]
            found: list[str] = []
            if finished_before is not None:
                found += [r[0] for r in self.db.execute(
                    f"SELECT id FROM jobs WHERE status IN ({marks}) AND finished_at < ? ORDER BY seq LIMIT ?",
                    [*terminal, finished_before.isoformat(), limit])]
            if keep > 0:
                found += [r[0] for r in self.db.execute(
                    f"SELECT id FROM jobs WHERE status IN ({marks}) ORDER BY seq DESC LIMIT ? OFFSET ?",
                    [*terminal, limit, keep])]
            return list(dict.fromkeys(found))[:limit]

        return await self._run(_expired)

    async def count(self) -> int:
        return await self._run(lambda: self.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])

    async def counts(self) -> list[tuple[str, str, int]]:
        """How many jobs of the history are in each (status, backend) (for /metrics)."""
        return await self._run(lambda: [tuple(r) for r in self.db.execute(
            "SELECT status, backend, COUNT(*) FROM jobs GROUP BY status, backend")])

    async def gpu_spans(self, since: datetime) -> list[tuple[int, str, str, Optional[str]]]:
        """(GPUs, started_at, finished_at, project) of the jobs that held GPUs and ended after `since`."""
        return await self._run(lambda: [(len(json.loads(r[0])), r[1], r[2], r[3]) for r in self.db.execute(
            "SELECT gpus, started_at, finished_at, project FROM jobs WHERE finished_at >= ? AND gpus != '[]' "
            "AND started_at IS NOT NULL", (since.isoformat(),))])
