"""SQLite history of jobs and their status changes: the only module that speaks SQL.

One connection, used from one dedicated thread, so callers on the event loop await every
query without blocking it. WAL mode keeps readers and the writer out of each other's way.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, TypeVar

from ..domain.job import Job
from ..domain.status import JobStatus, TERMINAL_STATUSES
from ..domain.spec import JobSpec
from .schedules import AlreadyFired, Fired, ScheduleRows, newest_first

T = TypeVar("T")

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    backend TEXT NOT NULL,
    project TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    exit_code INTEGER,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    gpus TEXT NOT NULL DEFAULT '[]',
    snapshot TEXT,
    notes TEXT NOT NULL DEFAULT '[]',
    backend_state TEXT NOT NULL DEFAULT '{}',
    dir TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_project ON jobs(project, seq);
CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL,
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT
);
CREATE INDEX IF NOT EXISTS job_events_by_job ON job_events(job_id);
"""
#: schema version N is reached by running migrations 1..N in order; a release only ever appends
_MIGRATIONS: list[list[str]] = [
    [s.strip() for s in _SCHEMA_V1.split(";") if s.strip()],  # 1: the first release
    [  # 2: retries
        "ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE jobs ADD COLUMN not_before TEXT",
    ],
    [  # 3: workflows
        "ALTER TABLE jobs ADD COLUMN workflow TEXT",
        "ALTER TABLE jobs ADD COLUMN node TEXT",
        "ALTER TABLE jobs ADD COLUMN after TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE jobs ADD COLUMN inputs TEXT NOT NULL DEFAULT '{}'",
        "CREATE INDEX IF NOT EXISTS jobs_by_workflow ON jobs(workflow, seq)",
        """CREATE TABLE IF NOT EXISTS workflows (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            spec TEXT NOT NULL,
            workspace TEXT NOT NULL,
            message TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT
        )""",
    ],
    [  # 4: who orders a run's jobs: the service, or the cluster (Slurm's own dependencies)
        "ALTER TABLE workflows ADD COLUMN scheduler TEXT NOT NULL DEFAULT 'service'",
    ],
    [  # 5: schedules, and the jobs they made
        "ALTER TABLE jobs ADD COLUMN schedule TEXT",
        "ALTER TABLE jobs ADD COLUMN origin TEXT",
        "CREATE INDEX IF NOT EXISTS jobs_by_origin ON jobs(origin, seq)",
        "CREATE INDEX IF NOT EXISTS jobs_by_schedule ON jobs(schedule, seq)",
        """CREATE TABLE IF NOT EXISTS schedules (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            cron TEXT NOT NULL,
            timezone TEXT NOT NULL,
            catch_up INTEGER NOT NULL,
            overlap TEXT NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            next_at REAL,
            last_at REAL,
            last_job TEXT,
            message TEXT,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS schedules_by_next ON schedules(paused, next_at)",
    ],
]
SCHEMA_VERSION = len(_MIGRATIONS)


class RunState(NamedTuple):
    """One job of a workflow run, as moving the run on sees it."""

    id: str
    node: str
    status: JobStatus
    after: list[str]  # the jobs it still waits for before it may be launched
    launched: bool  # its backend has it (it may still be pending there)


class StoreError(RuntimeError):
    """The history cannot be used by this release (e.g. written by a newer one)."""


def _migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
        version = 1  # written by the first release, before schema versions were recorded
    if version > SCHEMA_VERSION:
        raise StoreError(f"the job history was written by a newer jupyter_jobs (schema {version}); "
                         f"this one knows up to {SCHEMA_VERSION}")
    for number in range(version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _MIGRATIONS[number - 1]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
_COLUMNS = (
    "id, status, backend, project, reason, message, exit_code, spec, created_at, started_at, "
    "finished_at, gpus, snapshot, notes, backend_state"
)
_SELECT = f"{_COLUMNS}, attempt, not_before, dir, workflow, node, after, inputs, schedule, origin"
_UPDATABLE = {"reason", "message", "exit_code", "started_at", "finished_at", "gpus", "backend_state", "attempt",
              "not_before", "after", "spec"}


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


def _dt(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value else None


def _row_to_job(row: sqlite3.Row) -> Job:
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
        not_before=row["not_before"],
        dir=row["dir"],
        workflow=row["workflow"],
        node=row["node"],
        after=json.loads(row["after"]),
        schedule=row["schedule"],
        origin=row["origin"],
        inputs=json.loads(row["inputs"]),
    )


def _run_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "status": row["status"], "spec": json.loads(row["spec"]),
            "workspace": row["workspace"], "message": row["message"], "created_at": row["created_at"],
            "finished_at": row["finished_at"], "scheduler": row["scheduler"]}


def _encode(field: str, value: Any) -> Any:
    if field in ("gpus", "backend_state", "after"):
        return json.dumps(value)
    if field == "spec":
        return value.model_dump_json()
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    return value


class Store(ScheduleRows):
    """Job history. Every public method is a coroutine run on the store's own thread."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs-store")
        self._db: Optional[sqlite3.Connection] = None
        try:
            self._executor.submit(self._open).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    def _open(self) -> None:
        # private to the server's user: specs may hold secrets (SQLite gives -wal/-shm the same mode)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        _migrate(db)
        self._db = db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        def _close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "store is closed"
        return self._db

    # -- writes -----------------------------------------------------------------------------
    async def insert(self, job: Job, job_dir: Path) -> None:
        await self.insert_many([(job, job_dir)])

    async def insert_many(self, jobs: list[tuple[Job, Path]], workflow: Optional[dict[str, Any]] = None,
                          fired: Optional[Fired] = None) -> None:
        """Jobs (and the workflow run they make up, or the schedule firing that made them), in
        one transaction: a schedule fires once, whatever happens around it."""
        def _insert() -> None:
            with self.db:
                self.db.execute("BEGIN")
                if fired is not None and not self._advance(fired):
                    raise AlreadyFired(fired.schedule)
                if workflow is not None:
                    self.db.execute(
                        "INSERT INTO workflows (id, name, status, spec, workspace, created_at, scheduler, message) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (workflow["id"], workflow["name"], workflow["status"], json.dumps(workflow["spec"]),
                         workflow["workspace"], workflow["created_at"], workflow.get("scheduler", "service"),
                         workflow.get("message")))
                self.db.executemany(
                    f"INSERT INTO jobs ({_COLUMNS}, dir, workflow, node, after, inputs, schedule, origin) "
                    f"VALUES ({', '.join('?' * 22)})",
                    [
                        (
                            j.id, j.status.value, j.backend, j.project, None, None, None,
                            j.spec.model_dump_json(), _dt(j.created_at), None, None,
                            json.dumps(j.gpus), j.snapshot, json.dumps(j.notes), json.dumps(j.backend_state),
                            str(d), j.workflow, j.node, json.dumps(j.after), json.dumps(j.inputs), j.schedule,
                            j.origin,
                        )
                        for j, d in jobs
                    ],
                )
                self.db.executemany(
                    "INSERT INTO job_events (job_id, at, status, message) VALUES (?, ?, ?, ?)",
                    [(j.id, _dt(j.created_at), j.status.value, None) for j, _ in jobs],
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
            values = [status.value] + [_encode(k, v) for k, v in fields.items()]
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
                        (job_id, _dt(at), status.value, fields.get("message")),
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
            values = [_encode(k, v) for k, v in fields.items()]
            return self.db.execute(f"UPDATE jobs SET {sets} WHERE {where}", values + args).rowcount > 0

        return await self._run(_update)

    # -- workflow runs --------------------------------------------------------------------
    async def run_jobs(self, run_id: str) -> list[Job]:
        """A run's jobs, oldest first (a rerun's newer job of a node comes after the older)."""
        def _jobs() -> list[Job]:
            rows = self.db.execute(f"SELECT {_SELECT} FROM jobs WHERE workflow = ? ORDER BY seq", (run_id,))
            return [_row_to_job(r) for r in rows]

        return await self._run(_jobs)

    async def run_states(self, run_id: str) -> list[RunState]:
        """A run's jobs, oldest first: what moving a run on needs, without reading each job's spec."""
        def _states() -> list[RunState]:
            rows = self.db.execute("SELECT id, node, status, after, backend_state != '{}' FROM jobs "
                                   "WHERE workflow = ? ORDER BY seq", (run_id,))
            return [RunState(r[0], r[1], JobStatus(r[2]), json.loads(r[3]) if r[3] != "[]" else [], bool(r[4]))
                    for r in rows]

        return await self._run(_states)

    async def release(self, job_ids: list[str]) -> None:
        """Let queued workflow jobs go (they wait for no other job any more), in one transaction."""
        def _release() -> None:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("UPDATE jobs SET after = '[]' WHERE id = ? AND status = 'queued'",
                                    [(i,) for i in job_ids])

        await self._run(_release)

    async def cancel_queued(self, run_id: str, at: datetime, message: str) -> list[str]:
        """Cancel every queued job of a run at once; returns their ids."""
        def _cancel() -> list[str]:
            with self.db:
                self.db.execute("BEGIN")
                ids = [r[0] for r in self.db.execute(
                    "SELECT id FROM jobs WHERE workflow = ? AND status = 'queued'", (run_id,))]
                self.db.executemany("UPDATE jobs SET status = 'cancelled', finished_at = ?, message = ? "
                                    "WHERE id = ? AND status = 'queued'", [(_dt(at), message, i) for i in ids])
                self.db.executemany("INSERT INTO job_events (job_id, at, status, message) VALUES (?, ?, ?, ?)",
                                    [(i, _dt(at), "cancelled", message) for i in ids])
            return ids

        return await self._run(_cancel)

    async def workflow(self, run_id: str) -> Optional[dict[str, Any]]:
        def _get() -> Optional[dict[str, Any]]:
            row = self.db.execute("SELECT * FROM workflows WHERE id = ?", (run_id,)).fetchone()
            return _run_row(row) if row else None

        return await self._run(_get)

    async def workflows(self, *, status: Optional[list[str]] = None, limit: int = 50,
                        cursor: Optional[int] = None) -> tuple[list[dict[str, Any]], Optional[int]]:
        """Workflow runs newest first (keyset pagination on `seq`)."""
        def _list() -> tuple[list[dict[str, Any]], Optional[int]]:
            where = [f"status IN ({', '.join('?' * len(status))})"] if status else []
            rows, after = newest_first(self.db, "workflows", where, list(status or []), limit, cursor)
            runs = [_run_row(r) for r in rows]
            counts = self._counts([r["id"] for r in runs])
            for run in runs:
                run["counts"] = counts.get(run["id"], {})
            return runs, after

        return await self._run(_list)

    def _counts(self, run_ids: list[str]) -> dict[str, dict[str, int]]:
        """How many of each run's jobs (the newest of each node: a rerun makes new ones) are in
        each status."""
        out: dict[str, dict[str, int]] = {}
        if not run_ids:
            return out
        rows = self.db.execute(
            "SELECT workflow, status, COUNT(*) FROM jobs j WHERE workflow IN "
            f"({', '.join('?' * len(run_ids))}) AND seq = (SELECT MAX(seq) FROM jobs k "
            "WHERE k.workflow = j.workflow AND k.node = j.node) GROUP BY workflow, status", run_ids)
        for run_id, status, count in rows:
            out.setdefault(run_id, {})[status] = count
        return out

    async def update_workflow(self, run_id: str, **fields: Any) -> None:
        allowed = {"status", "message", "finished_at"}
        if set(fields) - allowed:
            raise ValueError(f"not updatable: {set(fields) - allowed}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        await self._run(lambda: self.db.execute(f"UPDATE workflows SET {sets} WHERE id = ?",
                                                [_encode(k, v) for k, v in fields.items()] + [run_id]))

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
            row = self.db.execute(f"SELECT {_SELECT} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return _row_to_job(row) if row else None

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
            sql = f"SELECT seq, {_SELECT} FROM jobs"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += f" ORDER BY seq {'ASC' if oldest_first else 'DESC'} LIMIT ?"
            rows = self.db.execute(sql, args + [limit + 1]).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            return [_row_to_job(r) for r in rows], (rows[-1]["seq"] if more else None)

        return await self._run(_list)

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        def _events() -> list[dict[str, Any]]:
            rows = self.db.execute(
                "SELECT at, status, message FROM job_events WHERE job_id = ? ORDER BY rowid", (job_id,)
            ).fetchall()
            return [dict(r) for r in rows]

        return await self._run(_events)

    async def snapshot_ids(self) -> set[str]:
        """Every snapshot a recorded job refers to (what garbage collection keeps)."""
        def _ids() -> set[str]:
            return {r[0] for r in self.db.execute("SELECT DISTINCT snapshot FROM jobs WHERE snapshot IS NOT NULL")}

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
