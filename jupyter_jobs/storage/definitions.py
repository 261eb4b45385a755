"""Named workflows in the history (a part of Store): a name with numbered spec versions, as
Gradient's workflow spec ids; each update is a new version, the old ones kept as its history."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Optional

from .db import Database


def _definition_row(row: sqlite3.Row) -> dict[str, Any]:
    return {"name": row["name"], "version": row["version"], "spec": json.loads(row["spec"]),
            "workspace": row["workspace"], "created_at": row["created_at"], "created_by": row["created_by"]}


class DefinitionRows(Database):
    """Named workflows and their spec versions."""

    async def add_definition(self, row: dict[str, Any]) -> dict[str, Any]:
        """Record the next spec version of `row['name']`."""
        def _add() -> dict[str, Any]:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                last = self.db.execute("SELECT MAX(version) FROM workflow_definitions WHERE name = ?",
                                       (row["name"],)).fetchone()[0]
                version = (last or 0) + 1
                self.db.execute("INSERT INTO workflow_definitions (name, version, spec, workspace, created_at, "
                                "created_by) VALUES (?, ?, ?, ?, ?, ?)",
                                (row["name"], version, json.dumps(row["spec"]), row["workspace"], row["created_at"],
                                 row["created_by"]))
                return {**row, "version": version}

        return await self._run(_add)

    async def definition(self, name: str, version: Optional[int] = None) -> Optional[dict[str, Any]]:
        """One spec version (None: the newest)."""
        def _get() -> Optional[dict[str, Any]]:
            sql = "SELECT * FROM workflow_definitions WHERE name = ?"
            sql, args = (sql + " AND version = ?", (name, version)) if version else (
                sql + " ORDER BY version DESC LIMIT 1", (name,))
            row = self.db.execute(sql, args).fetchone()
            return _definition_row(row) if row else None

        return await self._run(_get)

    async def definition_versions(self, name: Optional[str] = None) -> list[dict[str, Any]]:
        """Every spec version of one named workflow (or of all), newest first within each name."""
        def _list() -> list[dict[str, Any]]:
            where, args = ("WHERE name = ?", (name,)) if name else ("", ())
            rows = self.db.execute(f"SELECT * FROM workflow_definitions {where} ORDER BY name, version DESC", args)
            return [_definition_row(r) for r in rows]

        return await self._run(_list)
