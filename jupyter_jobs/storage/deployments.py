"""Deployments in the history (a part of Store): a name, the spec version it serves and how
many replicas, and its spec versions (each update a new one, kept for rollbacks). Its replicas
are ordinary jobs, found by their origin (`deployment:<name>:<version>`)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Optional

from .db import Database

_FIELDS = ("version", "replicas", "status", "message", "updated_at")


def _deployment_row(row: sqlite3.Row) -> dict[str, Any]:
    found = {k: row[k] for k in ("name", *_FIELDS, "created_at", "created_by")}
    return {**found, "replicas": json.loads(found["replicas"])}


class DeploymentRows(Database):
    """Deployments and their spec versions."""

    async def add_deployment(self, row: dict[str, Any], spec: dict[str, Any]) -> bool:
        """Record a new deployment with its first spec version; False if the name is taken."""
        def _add() -> bool:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                if self.db.execute("SELECT 1 FROM deployments WHERE name = ?", (row["name"],)).fetchone():
                    return False
                self.db.execute("DELETE FROM deployment_versions WHERE name = ?", (row["name"],))  # a past one's
                self.db.execute(
                    "INSERT INTO deployments (name, version, replicas, status, message, created_at, created_by, "
                    "updated_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
                    (row["name"], json.dumps(row["replicas"]), row["status"], row.get("message"),
                     row["created_at"], row["created_by"], row["created_at"]))
                self.db.execute("INSERT INTO deployment_versions (name, version, spec, created_at) VALUES (?, 1, ?, ?)",
                                (row["name"], json.dumps(spec), row["created_at"]))
                return True

        return await self._run(_add)

    async def add_deployment_version(self, name: str, spec: dict[str, Any], at: str) -> int:
        """The next spec version of a deployment (not yet the one it serves)."""
        def _add() -> int:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                last = self.db.execute("SELECT MAX(version) FROM deployment_versions WHERE name = ?",
                                       (name,)).fetchone()[0] or 0
                self.db.execute("INSERT INTO deployment_versions (name, version, spec, created_at) VALUES (?, ?, ?, ?)",
                                (name, last + 1, json.dumps(spec), at))
                return last + 1

        return await self._run(_add)

    async def deployment(self, name: str) -> Optional[dict[str, Any]]:
        def _get() -> Optional[dict[str, Any]]:
            row = self.db.execute("SELECT * FROM deployments WHERE name = ?", (name,)).fetchone()
            return _deployment_row(row) if row else None

        return await self._run(_get)

    async def deployments(self) -> list[dict[str, Any]]:
        return await self._run(lambda: [_deployment_row(r) for r in self.db.execute(
            "SELECT * FROM deployments ORDER BY name")])

    async def deployment_versions(self, name: str) -> list[dict[str, Any]]:
        """Its spec versions, newest first."""
        return await self._run(lambda: [
            {"version": r["version"], "spec": json.loads(r["spec"]), "created_at": r["created_at"]}
            for r in self.db.execute("SELECT * FROM deployment_versions WHERE name = ? ORDER BY version DESC",
                                     (name,))])

    async def update_deployment(self, name: str, **fields: Any) -> None:
        assert set(fields) <= set(_FIELDS), fields
        if "replicas" in fields:
            fields["replicas"] = json.dumps(fields["replicas"])

        def _update() -> None:
            with self.db:
                self.db.execute(f"UPDATE deployments SET {', '.join(f'{k} = ?' for k in fields)} WHERE name = ?",
                                (*fields.values(), name))

        await self._run(_update)

    async def delete_deployment(self, name: str) -> None:
        def _delete() -> None:
            with self.db:
                self.db.execute("DELETE FROM deployments WHERE name = ?", (name,))
                self.db.execute("DELETE FROM deployment_versions WHERE name = ?", (name,))

        await self._run(_delete)
