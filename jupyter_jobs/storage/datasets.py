"""Dataset versions in the history (a part of Store: same database, same thread). A version
is immutable: a name, a number, the snapshot holding its files. Deleting one marks it (its
number is never given again) and lets garbage collection take blobs nothing else holds."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Optional

from .db import Database

#: statuses of jobs that still read what their spec names
_ACTIVE = ("queued", "running")


def _version_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"name": row["name"], "version": row["version"], "snapshot": row["snapshot"], "size": row["size"],
            "files": row["files"], "created_at": row["created_at"], "created_by": row["created_by"],
            "job": row["job"], "source": json.loads(row["source"]), "deleted": bool(row["deleted"])}


class DatasetRows(Database):
    """Datasets and their versions."""

    async def add_version(self, row: dict[str, Any]) -> dict[str, Any]:
        """Record the next version of `row['name']` (one past any given before, deleted or not)."""
        def _add() -> dict[str, Any]:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                last = self.db.execute("SELECT MAX(version) FROM datasets WHERE name = ?", (row["name"],)).fetchone()
                version = (last[0] or 0) + 1
                self.db.execute(
                    "INSERT INTO datasets (name, version, snapshot, size, files, created_at, created_by, job, source)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row["name"], version, row["snapshot"], row["size"], row["files"], row["created_at"],
                     row["created_by"], row.get("job"), json.dumps(row["source"])))
                found = self.db.execute("SELECT * FROM datasets WHERE name = ? AND version = ?",
                                        (row["name"], version)).fetchone()
                return _version_row(found)

        return await self._run(_add)

    async def dataset_versions(self, name: Optional[str] = None) -> list[dict[str, Any]]:
        """The live versions of one dataset (or of all), newest first."""
        def _list() -> list[dict[str, Any]]:
            where, args = ("WHERE deleted = 0 AND name = ?", (name,)) if name else ("WHERE deleted = 0", ())
            rows = self.db.execute(f"SELECT * FROM datasets {where} ORDER BY name, version DESC", args)
            return [_version_row(r) for r in rows]

        return await self._run(_list)

    async def dataset_version(self, name: str, version: Optional[int]) -> Optional[dict[str, Any]]:
        """One version (None: the newest live one), deleted ones included (marked)."""
        def _get() -> Optional[dict[str, Any]]:
            if version is None:
                row = self.db.execute("SELECT * FROM datasets WHERE name = ? AND deleted = 0 "
                                      "ORDER BY version DESC LIMIT 1", (name,)).fetchone()
            else:
                row = self.db.execute("SELECT * FROM datasets WHERE name = ? AND version = ?",
                                      (name, version)).fetchone()
            return _version_row(row) if row else None

        return await self._run(_get)

    async def delete_dataset_version(self, name: str, version: int) -> bool:
        return await self._run(lambda: self.db.execute(
            "UPDATE datasets SET deleted = 1 WHERE name = ? AND version = ? AND deleted = 0",
            (name, version)).rowcount > 0)

    async def dataset_readers(self, name: str, version: int, active_only: bool = False,
                              limit: int = 100) -> list[dict[str, Any]]:
        """Jobs whose recorded spec reads this version (newest first): its lineage, or (active
        only) who holds it."""
        def _find() -> list[dict[str, Any]]:
            status = f"AND status IN ({', '.join('?' * len(_ACTIVE))})" if active_only else ""
            rows = self.db.execute(
                "SELECT jobs.id, jobs.status, jobs.created_at FROM jobs, json_each(jobs.spec, '$.datasets') AS d "
                f"WHERE json_extract(d.value, '$.name') = ? AND json_extract(d.value, '$.version') = ? {status} "
                "ORDER BY jobs.seq DESC LIMIT ?", (name, version, *(_ACTIVE if active_only else ()), limit))
            return [{"id": r[0], "status": r[1], "created_at": r[2]} for r in rows]

        return await self._run(_find)
