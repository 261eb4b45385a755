"""The history's database: one SQLite connection on its own thread (so callers on the event
loop await every query without blocking it), WAL mode, and append-only migrations. The row
classes of each aggregate (jobs, workflow runs, schedules) run their SQL through it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")
#: a write a feature makes in the transaction that records jobs (a run's row, a schedule's firing)
Write = Callable[[sqlite3.Connection], None]

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
    [  # 6: preemption: how many times a job was stopped for another and queued again
        "ALTER TABLE jobs ADD COLUMN preempted INTEGER NOT NULL DEFAULT 0",
    ],
    [  # 7: datasets and models: named, immutable versions, each a snapshot
        """CREATE TABLE IF NOT EXISTS datasets (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            snapshot TEXT NOT NULL,
            size INTEGER NOT NULL,
            files INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            job TEXT,
            source TEXT NOT NULL,
            meta TEXT NOT NULL DEFAULT '{}',
            deleted INTEGER NOT NULL DEFAULT 0,
            UNIQUE (kind, name, version)
        )""",
    ],
    [  # 8: named workflows: each update a new spec version; a run says which, and its inputs
        """CREATE TABLE IF NOT EXISTS workflow_definitions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            spec TEXT NOT NULL,
            workspace TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            UNIQUE (name, version)
        )""",
        "ALTER TABLE workflows ADD COLUMN definition TEXT",
        "ALTER TABLE workflows ADD COLUMN definition_version INTEGER",
        "ALTER TABLE workflows ADD COLUMN inputs TEXT NOT NULL DEFAULT '{}'",
        "CREATE INDEX IF NOT EXISTS workflows_by_definition ON workflows(definition, seq)",
    ],
    [  # 9: deployments: a name serving its active spec version with replicas (jobs)
        """CREATE TABLE IF NOT EXISTS deployments (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            version INTEGER NOT NULL,
            replicas TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS deployment_versions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            spec TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (name, version)
        )""",
    ],
]
SCHEMA_VERSION = len(_MIGRATIONS)


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

class Database:
    """The connection and its thread. Every public method of a row class is a coroutine run here."""

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

