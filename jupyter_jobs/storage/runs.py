"""The workflow runs' rows: a run, and the state of its jobs as moving the run on sees it."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any, NamedTuple, Optional

from ..domain.job import Job
from ..domain.status import JobStatus
from .db import Database, Write
from .jobs import SELECT_JOB, encode_field, iso, row_to_job
from .schedules import newest_first


class RunState(NamedTuple):
    """One job of a workflow run, as moving the run on sees it."""

    id: str
    node: str
    status: JobStatus
    after: list[str]  # the jobs it still waits for before it may be launched
    launched: bool  # its backend has it (it may still be pending there)


def _run_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "status": row["status"], "spec": json.loads(row["spec"]),
            "workspace": row["workspace"], "message": row["message"], "created_at": row["created_at"],
            "finished_at": row["finished_at"], "scheduler": row["scheduler"], "definition": row["definition"],
            "definition_version": row["definition_version"], "inputs": json.loads(row["inputs"])}


class RunRows(Database):
    """Workflow runs in the history."""

    @staticmethod
    def new_run(run: dict[str, Any]) -> Write:
        """The write that records a run, made in the transaction that records its jobs."""
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO workflows (id, name, status, spec, workspace, created_at, scheduler, message, definition, "
                "definition_version, inputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run["id"], run["name"], run["status"], json.dumps(run["spec"]), run["workspace"],
                 run["created_at"], run.get("scheduler", "service"), run.get("message"), run.get("definition"),
                 run.get("definition_version"), json.dumps(run.get("inputs") or {})))

        return write

    # -- workflow runs --------------------------------------------------------------------
    async def run_jobs(self, run_id: str) -> list[Job]:
        """A run's jobs, oldest first (a rerun's newer job of a node comes after the older)."""
        def _jobs() -> list[Job]:
            rows = self.db.execute(f"SELECT {SELECT_JOB} FROM jobs WHERE workflow = ? ORDER BY seq", (run_id,))
            return [row_to_job(r) for r in rows]

        return await self._run(_jobs)

    async def run_states(self, run_id: str) -> list[RunState]:
        """A run's jobs, oldest first: what moving a run on needs, without reading each job's spec."""
        def _states() -> list[RunState]:
            rows = self.db.execute("SELECT id, node, status, after, backend_state != '{}' FROM jobs "
                                   "WHERE workflow = ? ORDER BY seq", (run_id,))
            return [RunState(r[0], r[1], JobStatus(r[2]), json.loads(r[3]) if r[3] != "[]" else [], bool(r[4]))
                    for r in rows]

        return await self._run(_states)

    async def run_times(self, run_id: str) -> dict[str, tuple[Optional[str], Optional[str]]]:
        """When each of a run's jobs started and finished (ISO text, or None), by job id."""
        def _times() -> dict[str, tuple[Optional[str], Optional[str]]]:
            rows = self.db.execute("SELECT id, started_at, finished_at FROM jobs WHERE workflow = ?", (run_id,))
            return {r[0]: (r[1], r[2]) for r in rows}

        return await self._run(_times)

    async def cancel_queued(self, run_id: str, at: datetime, message: str) -> list[str]:
        """Cancel every queued job of a run at once; returns their ids."""
        def _cancel() -> list[str]:
            with self.db:
                self.db.execute("BEGIN")
                ids = [r[0] for r in self.db.execute(
                    "SELECT id FROM jobs WHERE workflow = ? AND status = 'queued'", (run_id,))]
                self.db.executemany("UPDATE jobs SET status = 'cancelled', finished_at = ?, message = ? "
                                    "WHERE id = ? AND status = 'queued'", [(iso(at), message, i) for i in ids])
                self.db.executemany("INSERT INTO job_events (job_id, at, status, message) VALUES (?, ?, ?, ?)",
                                    [(i, iso(at), "cancelled", message) for i in ids])
            return ids

        return await self._run(_cancel)

    async def workflow(self, run_id: str) -> Optional[dict[str, Any]]:
        def _get() -> Optional[dict[str, Any]]:
            row = self.db.execute("SELECT * FROM workflows WHERE id = ?", (run_id,)).fetchone()
            return _run_row(row) if row else None

        return await self._run(_get)

    async def workflows(self, *, status: Optional[list[str]] = None, limit: int = 50, cursor: Optional[int] = None,
                        definition: Optional[str] = None) -> tuple[list[dict[str, Any]], Optional[int]]:
        """Workflow runs newest first (keyset pagination on `seq`); `definition`: a named workflow's."""
        def _list() -> tuple[list[dict[str, Any]], Optional[int]]:
            where = [f"status IN ({', '.join('?' * len(status))})"] if status else []
            args: list[Any] = list(status or [])
            if definition is not None:
                where, args = [*where, "definition = ?"], [*args, definition]
            rows, after = newest_first(self.db, "workflows", where, args, limit, cursor)
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
                                                [encode_field(k, v) for k, v in fields.items()] + [run_id]))
