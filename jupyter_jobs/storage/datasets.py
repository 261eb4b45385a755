"""Dataset and model versions in the history (a part of Store: same database, same thread). A
version is immutable: a kind (dataset or model), a name, a number, the snapshot holding its
files, and what it was made from. Deleting one marks it (its number is never given again) and
lets garbage collection take blobs nothing else holds."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Optional

from .db import Database

#: statuses of jobs that still read what their spec names
_ACTIVE = ("queued", "running")
#: the spec field listing what a job reads, by kind
_SPEC_FIELD = {"dataset": "$.datasets", "model": "$.models"}


def _version_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"kind": row["kind"], "name": row["name"], "version": row["version"], "snapshot": row["snapshot"],
            "size": row["size"], "files": row["files"], "created_at": row["created_at"],
            "created_by": row["created_by"], "job": row["job"], "source": json.loads(row["source"]),
            "meta": json.loads(row["meta"]), "deleted": bool(row["deleted"])}


class DatasetRows(Database):
    """Datasets, models and their versions."""

    async def add_version(self, row: dict[str, Any]) -> dict[str, Any]:
        """Record the next version of `row['name']` (one past any given before, deleted or not)."""
        def _add() -> dict[str, Any]:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                key = (row["kind"], row["name"])
                last = self.db.execute("SELECT MAX(version) FROM datasets WHERE kind = ? AND name = ?", key).fetchone()
                version = (last[0] or 0) + 1
                self.db.execute(
                    "INSERT INTO datasets (kind, name, version, snapshot, size, files, created_at, created_by, job, "
                    "source, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, version, row["snapshot"], row["size"], row["files"], row["created_at"],
                     row["created_by"], row.get("job"), json.dumps(row["source"]), json.dumps(row.get("meta") or {})))
                found = self.db.execute("SELECT * FROM datasets WHERE kind = ? AND name = ? AND version = ?",
                                        (*key, version)).fetchone()
                return _version_row(found)

        return await self._run(_add)

    async def dataset_versions(self, kind: str, name: Optional[str] = None) -> list[dict[str, Any]]:
        """The live versions of one name (or of all) of a kind, newest first."""
        def _list() -> list[dict[str, Any]]:
            where, args = "WHERE kind = ? AND deleted = 0", [kind]
            if name:
                where, args = where + " AND name = ?", [kind, name]
            rows = self.db.execute(f"SELECT * FROM datasets {where} ORDER BY name, version DESC", args)
            return [_version_row(r) for r in rows]

        return await self._run(_list)

    async def versions_made_by(self, kind: str, job_id: str) -> list[dict[str, Any]]:
        """The live versions of a kind a job made (its outputs, or its artifacts saved), by name."""
        return await self._run(lambda: [_version_row(r) for r in self.db.execute(
            "SELECT * FROM datasets WHERE kind = ? AND job = ? AND deleted = 0 ORDER BY name, version",
            (kind, job_id))])

    async def dataset_version(self, kind: str, name: str, version: Optional[int]) -> Optional[dict[str, Any]]:
        """One version (None: the newest live one), deleted ones included (marked)."""
        def _get() -> Optional[dict[str, Any]]:
            if version is None:
                row = self.db.execute("SELECT * FROM datasets WHERE kind = ? AND name = ? AND deleted = 0 "
                                      "ORDER BY version DESC LIMIT 1", (kind, name)).fetchone()
            else:
                row = self.db.execute("SELECT * FROM datasets WHERE kind = ? AND name = ? AND version = ?",
                                      (kind, name, version)).fetchone()
            return _version_row(row) if row else None

        return await self._run(_get)

    async def delete_dataset_version(self, kind: str, name: str, version: int) -> bool:
        return await self._run(lambda: self.db.execute(
            "UPDATE datasets SET deleted = 1 WHERE kind = ? AND name = ? AND version = ? AND deleted = 0",
            (kind, name, version)).rowcount > 0)

    async def dataset_readers(self, kind: str, name: str, version: int, active_only: bool = False,
                              limit: int = 100) -> list[dict[str, Any]]:
        """Jobs whose recorded spec reads this version (newest first): its lineage, or (active
        only) who holds it."""
        def _find() -> list[dict[str, Any]]:
            status = f"AND status IN ({', '.join('?' * len(_ACTIVE))})" if active_only else ""
            rows = self.db.execute(
                "SELECT jobs.id, jobs.status, jobs.created_at FROM jobs, json_each(jobs.spec, ?) AS d "
                f"WHERE json_extract(d.value, '$.name') = ? AND json_extract(d.value, '$.version') = ? {status} "
                "ORDER BY jobs.seq DESC LIMIT ?",
                (_SPEC_FIELD[kind], name, version, *(_ACTIVE if active_only else ()), limit))
            return [{"id": r[0], "status": r[1], "created_at": r[2]} for r in rows]

        return await self._run(_find)
