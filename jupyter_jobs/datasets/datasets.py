"""Datasets (Gradient's "a persistent, versioned collection of data") and models: a name with
immutable versions, each a snapshot in the content-addressed snapshot store, so a version that
changes one file stores one file. A version is made from a folder under the root or from a
finished job's artifacts (a model also records the job's final metrics, spec and datasets). A
job names `datasets: [{name, version?, mount?}]` (or `models:`); the version is resolved when it
is submitted and recorded in its spec (a rerun reads the same bytes), and the files are
materialized once per version into a read-only cache that jobs mount (containers) or link to
(local, Slurm: in the shared folder), so a job's start copies nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import stat
import tempfile
from datetime import datetime
from pathlib import Path
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pydantic import ValidationError

from ..backends.base import OUTPUTS_DIR, Mount
from ..domain.errors import JobConflict, JobNotFound, SpecError
from ..domain.job import Job, Kept, utcnow
from ..domain.replies import DatasetInput, ModelInput
from ..domain.spec import DATASET_NAME, DatasetRef, JobSpec
from ..jobs.plugins import JobCore
from ..storage.files import private_dir

log = logging.getLogger(__name__)

#: the fields of a version clients see
PUBLIC = ("name", "version", "size", "files", "created_at", "created_by", "job", "source")


def public(row: dict[str, Any]) -> dict[str, Any]:
    shown = {k: row[k] for k in PUBLIC}
    if row["kind"] == "model":
        shown.update({k: row["meta"].get(k) for k in ("framework", "description", "metrics", "spec", "datasets")})
    return shown


@dataclass(frozen=True)
class Kind:
    """What a store of versions keeps: datasets or models (the same machinery, other words)."""

    name: str  # "dataset" | "model"
    field: str  # the spec field naming what a job reads: "datasets" | "models"
    given: type[DatasetInput]  # what a new version is made from


DATASET = Kind("dataset", "datasets", DatasetInput)
MODEL = Kind("model", "models", ModelInput)


class Datasets:
    """The datasets (or models) of one history; a spec policy (versions resolved at submit) and
    a mount policy (what a job reads) of the core."""

    def __init__(self, core: JobCore, snapshots: Any, cache_for: Callable[[str], Path], user: str,
                 kind: Kind = DATASET, read_job: Optional[Callable[[str], Awaitable[dict[str, Any]]]] = None,
                 backends: tuple[str, ...] = (), max_age: Optional[float] = None, interval: float = 3600.0):
        self.core, self.snapshots, self.cache_for, self.user = core, snapshots, cache_for, user
        self.kind, self.read_job, self.backends = kind, read_job, backends
        self.max_age, self.interval = max_age, interval  # retention: unheld versions older than max_age go
        self._making: dict[Path, asyncio.Lock] = {}

    async def start(self) -> None:
        if self.max_age is not None:
            self.core.spawn(self._retain())

    async def stop(self) -> None:
        """Its retention pass runs as the core's task, cancelled with it."""

    async def _retain(self) -> None:
        while True:
            try:
                if done := await self.collect(float(self.max_age or 0)):
                    log.info("retention deleted %d %s version(s)", done, self.kind.name)
            except Exception:  # the next pass tries again
                log.exception("%s retention failed", self.kind.name)
            await asyncio.sleep(self.interval)

    # -- versions ---------------------------------------------------------------------------
    async def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new version from `{"folder": ...}` under the root or `{"job": id, "path": ...}` (a
        finished job's artifacts, or a folder of them). Symlinks out of it are left out."""
        if not DATASET_NAME.fullmatch(name):
            raise SpecError.one("name", f"{name!r} is not a {self.kind.name} name: a-z, 0-9, '.', '_' and '-'")
        try:
            given = self.kind.given.model_validate(body)
        except ValidationError as exc:
            raise SpecError.from_validation(exc) from None
        if (given.folder is None) == (given.job is None):
            raise SpecError.one("folder", "give either folder (a folder under the root) or job (and path, a "
                                "folder or file of its artifacts)")
        if any("\0" in (v or "") for v in (given.folder, given.job, given.path)):
            raise SpecError.one("folder" if given.folder else "path", "must not hold a NUL character")
        source, origin = await self._source(given)
        meta = await self._meta(getattr(given, "framework", None), getattr(given, "description", None),
                                origin.get("job"))
        return await self._make(name, source, origin, meta, "folder" if given.folder else "path")

    async def _make(self, name: str, source: Path, origin: dict[str, Any], meta: dict[str, Any],
                    field: str) -> dict[str, Any]:
        async with self._folder_of(source) as folder, self._pinned(folder, field) as snap:
            row = await self.core.store.add_version({
                "kind": self.kind.name, "name": name, "snapshot": snap.id, "size": snap.size, "files": snap.files,
                "created_at": utcnow().isoformat(), "created_by": self.user, "job": origin.get("job"),
                "source": origin, "meta": meta})
        made = public(row)
        made["notes"] = [f"left out: {path} ({why})" for path, why in snap.skipped[:50]]
        return made

    @contextlib.asynccontextmanager
    async def _pinned(self, folder: Path, field: str) -> AsyncIterator[Any]:
        """The folder's snapshot, its errors named as the field the user gave."""
        try:
            async with self.core.pinned_snapshot(folder) as snap:
                yield snap
        except SpecError as exc:
            raise SpecError.one(field, exc.errors[0].message) from None

    @contextlib.asynccontextmanager
    async def _folder_of(self, source: Path) -> AsyncIterator[Path]:
        """A folder holding `source`: itself, or for one file (a model's weights) a private
        folder with a hard link to it (a copy across file systems), removed after."""
        if source.is_dir():
            yield source
            return
        holder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=".version-", dir=self.cache_for("")
                                              .parent))
        try:
            await asyncio.to_thread(_link_or_copy, source, holder / source.name)
            yield holder
        finally:
            await asyncio.to_thread(shutil.rmtree, holder, True)

    async def _meta(self, framework: Optional[str], description: Optional[str],
                    job_id: Optional[str]) -> dict[str, Any]:
        """A model's framework and description, and what the job that made it recorded."""
        if self.kind is not MODEL:
            return {}
        meta: dict[str, Any] = {"framework": framework, "description": description}
        if job_id and self.read_job is not None:
            job = await self.read_job(job_id)
            meta.update(metrics={k: v.get("last") for k, v in (job.get("metrics") or {}).get("series", {}).items()},
                        spec=job["spec"], datasets=job["spec"].get("datasets") or [])
        return meta

    async def _source(self, given: DatasetInput) -> tuple[Path, dict[str, Any]]:
        if given.folder is not None:
            try:
                return self.core.resolve_workspace(given.folder), {"folder": given.folder}
            except SpecError as exc:
                raise SpecError.one("folder", exc.errors[0].message.replace("workspace", "folder")) from None
        job = await self.core.store.get(str(given.job))
        if job is None:
            raise JobNotFound(f"no job {given.job!r}")
        if not job.status.is_terminal():
            raise JobConflict(f"job {job.id} is {job.status.value}: a dataset is made from a finished job's artifacts")
        return self._artifact(job, given.path or "")

    def _artifact(self, job: Job, path: str) -> tuple[Path, dict[str, Any]]:
        """A file or folder of the job's artifacts (never a link out of them)."""
        artifacts = (self.core.job_dir(job) / "artifacts").resolve()
        found = (artifacts / path).resolve()
        if not found.is_relative_to(artifacts) or not (found.is_dir() or found.is_file()):  # no FIFO, no device
            raise SpecError.one("path", f"{path!r} is not a file or folder of job {job.id}'s artifacts")
        return found, {"job": job.id, "path": path}

    async def list(self) -> dict[str, Any]:
        rows = await self.core.store.dataset_versions(self.kind.name)
        names: dict[str, dict[str, Any]] = {}
        for row in rows:  # newest first within each name
            entry = names.setdefault(row["name"], {"name": row["name"], "versions": 0, "latest": public(row)})
            entry["versions"] += 1
        return {self.kind.field: list(names.values())}

    async def get(self, name: str) -> dict[str, Any]:
        rows = await self.core.store.dataset_versions(self.kind.name, name)
        if not rows:
            raise JobNotFound(f"no {self.kind.name} {name!r}")
        return {"name": name, "versions": [public(r) for r in rows]}

    async def made_by(self, job_id: str) -> list[dict[str, Any]]:
        """The versions a job made: the other half of its lineage (what it read is in its spec)."""
        if await self.core.store.get(job_id) is None:
            raise JobNotFound(f"no job {job_id!r}")
        return [public(r) for r in await self.core.store.versions_made_by(self.kind.name, job_id)]

    async def version(self, name: str, version: int) -> dict[str, Any]:
        """A version with its lineage: the job that made it and the jobs that read it."""
        row = await self.core.store.dataset_version(self.kind.name, name, version)
        if row is None or row["deleted"]:
            raise JobNotFound(f"no version {version} of {self.kind.name} {name!r}")
        return {**public(row), "read_by": await self.core.store.dataset_readers(self.kind.name, name, version)}

    async def delete(self, name: str, version: int) -> None:
        """Refused (409, naming them) while a queued or running job reads it, a schedule names it
        or a named workflow's newest spec reads it by default."""
        await self.version(name, version)
        holders = await self.holders(name, version)
        if holders:
            raise JobConflict(f"version {version} of {self.kind.name} {name!r} is held by {'; '.join(holders[:10])}"
                              ": cancel, change or delete them first")
        await self._delete(name, version)

    async def holders(self, name: str, version: int) -> list[str]:
        """Who needs the version, in words: jobs not yet finished, schedules, named workflows'
        defaults, deployments (a reference without a version holds the last live version of a name)."""
        store, kind = self.core.store, self.kind.name
        held = [f"job {h['id']} ({h['status']})" for h in await store.dataset_readers(kind, name, version, True)]
        last = [v["version"] for v in await store.dataset_versions(kind, name)] == [version]
        cursor = None
        while True:
            schedules, cursor = await store.schedules(limit=500, cursor=cursor)
            held += [f"schedule {s['name']!r}" for s in schedules
                     if _holds(s["spec"].get(self.kind.field) or [], name, version, last)]
            if cursor is None:
                break
        newest: dict[str, Any] = {}
        for row in await store.definition_versions():  # newest first within each name: the default
            newest.setdefault(row["name"], row["spec"])
        held += [f"named workflow {n!r}" for n, spec in newest.items()
                 if _holds(_workflow_refs(spec, self.kind), name, version, last)]
        for deployment in await store.deployments():  # the spec it serves starts its next replica
            served = next(v["spec"] for v in await store.deployment_versions(deployment["name"])
                          if v["version"] == deployment["version"])
            if _holds(served.get(self.kind.field) or [], name, version, last):
                held.append(f"deployment {deployment['name']!r}")
        return held

    async def collect(self, max_age: float) -> int:
        """Retention: delete the versions older than `max_age` seconds that nothing holds (never
        the newest of a name); how many."""
        cutoff, done, names = utcnow().timestamp() - max_age, 0, set()
        for row in await self.core.store.dataset_versions(self.kind.name):  # newest first within each name
            if row["name"] not in names:
                names.add(row["name"])  # the newest of its name stays
                continue
            if datetime.fromisoformat(row["created_at"]).timestamp() > cutoff:
                continue
            if not await self.holders(row["name"], row["version"]):
                await self._delete(row["name"], row["version"])
                done += 1
        return done

    async def _delete(self, name: str, version: int) -> None:
        row = await self.core.store.dataset_version(self.kind.name, name, version)
        await self.core.store.delete_dataset_version(self.kind.name, name, version)
        if row and row["snapshot"] not in await self.core.store.snapshot_ids():  # no other version has its files
            await asyncio.to_thread(self._drop, row["snapshot"])

    # -- policies of the core ---------------------------------------------------------------
    async def finish(self, job: Job) -> list[Kept]:
        """Each of the job's outputs of this kind made a new version of the dataset (or model) it
        names, from `$JOB_OUTPUTS_DIR/<key>`; once only, also when a restart records it again."""
        kept = []
        for key, output in job.spec.outputs.items():
            if output.type != self.kind.name:
                continue
            path, label = f"{OUTPUTS_DIR}/{key}", f"output {key}"
            made = next((v for v in await self.core.store.dataset_versions(self.kind.name, output.name)
                         if v["job"] == job.id and v["source"].get("path") == path), None)
            try:
                if made is None:
                    source, origin = self._artifact(job, path)
                    meta = await self._meta(output.framework, output.description, job.id)
                    made = await self._make(str(output.name), source, origin, meta, "path")
            except SpecError as exc:
                kept.append(Kept(f"{label}: {exc.errors[0].message}", failed=True))
                continue
            kept.append(Kept(f"{label}: kept as version {made['version']} of {self.kind.name} {output.name!r} "
                             f"({made['files']} files, {made['size']} bytes)"))
        return kept


    async def resolve(self, spec: JobSpec) -> JobSpec:
        """Each named version, or the newest, recorded in the spec; a 400 naming the entry."""
        refs: list[DatasetRef] = getattr(spec, self.kind.field)
        if not refs:
            return spec
        resolved, kind, field = [], self.kind.name, self.kind.field
        for i, ref in enumerate(refs):
            row = await self.core.store.dataset_version(kind, ref.name, ref.version)
            if row is None:
                what = f"version {ref.version} of {kind} {ref.name!r}" if ref.version else f"{kind} {ref.name!r}"
                raise SpecError.one(f"{field}.{i}.{'version' if ref.version else 'name'}", f"there is no {what}")
            if row["deleted"]:
                raise SpecError.one(f"{field}.{i}.version", f"version {ref.version} of {kind} {ref.name!r} was deleted")
            resolved.append(ref.model_copy(update={"version": row["version"]}))
        if len({r.name for r in resolved}) < len(resolved):
            raise SpecError.one(field, f"each {kind} may be named once")
        return spec.model_copy(update={field: resolved})

    async def mounts(self, job: Job) -> list[Mount]:
        found = []
        for ref in getattr(job.spec, self.kind.field):
            row = await self.core.store.dataset_version(self.kind.name, ref.name, ref.version)
            if row is None:
                raise JobNotFound(f"{self.kind.name} {ref.name!r} has no version {ref.version} any more")
            source = await self._cached(row["snapshot"], self.cache_for(job.backend))
            found.append(Mount(ref.name, source, ref.mount, folder=self.kind.field))
        return found

    async def folder(self, name: str, version: int) -> Path:
        """A version's files as written out on this host (a download reads them)."""
        row = await self.core.store.dataset_version(self.kind.name, name, version)
        if row is None or row["deleted"]:
            raise JobNotFound(f"no version {version} of {self.kind.name} {name!r}")
        return await self._cached(row["snapshot"], self.cache_for(""))

    async def _cached(self, snapshot: str, cache: Path) -> Path:
        """The version's files, written out once (read-only) where the backend's jobs see them."""
        final = cache / snapshot
        lock = self._making.setdefault(final, asyncio.Lock())
        async with lock:
            if not await asyncio.to_thread(final.is_dir):
                await asyncio.to_thread(self._materialize, snapshot, final)
        return final

    def _drop(self, snapshot: str) -> None:
        """A deleted version's written-out files, wherever backends had them (housekeeping then
        collects its blobs)."""
        for cache in {self.cache_for(b) for b in ("", *self.backends)}:
            _remove(cache / snapshot)

    def _materialize(self, snapshot: str, final: Path) -> None:
        private_dir(final.parent)  # in a shared folder too: other users never list or read a version
        temp = final.parent / f".{snapshot}.{secrets.token_hex(4)}"
        try:
            self.snapshots.materialize(snapshot, temp)
            _read_only(temp)
            os.rename(temp, final)  # whole, or not there
        except BaseException:
            _remove(temp)
            raise


def _holds(refs: list[Any], name: str, version: int, last: bool) -> bool:
    """Whether spec entries `[{name, version?}]` (or `name[:version]` strings) need the version."""
    for ref in refs:
        given, _, at = ref.partition(":") if isinstance(ref, str) else (ref.get("name"), "", ref.get("version"))
        if given == name and (str(at) == str(version) if at else last):
            return True
    return False


def _workflow_refs(spec: Any, kind: Kind) -> list[Any]:
    """What a workflow spec reads of a kind: its jobs' and defaults' entries, and (datasets) its
    dataset inputs' defaults."""
    if isinstance(spec, str):
        import yaml

        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError:
            return []
    if not isinstance(spec, dict):
        return []
    parts = [spec.get("defaults"), *(spec.get("jobs") or {}).values()] if isinstance(spec.get("jobs"), dict) else []
    refs = [r for p in parts if isinstance(p, dict) and isinstance(p.get(kind.field), list) for r in p[kind.field]]
    if kind is DATASET and isinstance(spec.get("inputs"), dict):
        refs += [i["default"] for i in spec["inputs"].values()
                 if isinstance(i, dict) and i.get("type") == "dataset" and isinstance(i.get("default"), str)]
    return [r for r in refs if isinstance(r, (str, dict))]


def _read_only(folder: Path) -> None:
    """Files 0444 and folders 0555: a job cannot change a version others read."""
    for dirpath, _, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.chmod(dirpath, 0o555)


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest, follow_symlinks=False)
    except OSError:
        shutil.copyfile(source, dest, follow_symlinks=False)


def _remove(folder: Path) -> None:
    """A written-out version's folder, read-only as it is."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for dirpath, _, _ in os.walk(folder):
        os.chmod(dirpath, 0o700)
    shutil.rmtree(folder, ignore_errors=True)
