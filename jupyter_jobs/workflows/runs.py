"""Workflow runs on the job service: a run is a set of ordinary jobs (each in the list, with
its log, metrics and artifacts) plus the graph that orders them. Every job of a run is
recorded when the run is submitted, queued with the ids of the jobs it needs (`after`); the
queue leaves those alone. When a job ends, its run moves on: a dependent whose needs all
succeeded (or failed with `continue_on_error`) gets the outputs it refers to filled in and
is let go; one whose need failed ends `skipped`. The state lives in the store, so a run half
done when the server stops goes on after it starts.

A run whose jobs are all on a backend that orders jobs itself (Slurm) is handed to it whole:
each job is let go as soon as the jobs it needs are launched, and is submitted depending on
them (`--dependency=afterok:...`), so the cluster runs the graph even while the server is down;
the service only follows."""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..backends.base import Dependency
from ..domain.job import Job, utcnow
from ..domain.status import JobStatus
from ..domain.errors import JobNotFound, JobConflict, SpecError
from ..domain.spec import JobSpec
from ..domain.replies import WorkflowJob, WorkflowPage, WorkflowQuery, WorkflowRun, WorkflowRunSummary
from .spec import Node, fill_outputs, load, plan

if TYPE_CHECKING:
    from ..jobs.service import JobService

OUTPUTS_FILE = "outputs.json"  # in the job's artifacts: $JOB_OUTPUTS_FILE


def _status(newest: dict[str, tuple[JobStatus, list[str]]], continue_on_error: set[str]) -> Optional[str]:
    """A run's status from the newest job of each node: (status, after) by node key."""
    if any(not s.is_terminal() for s, _ in newest.values()):
        return "running" if any(s != JobStatus.QUEUED or not after for s, after in newest.values()) else "queued"
    if any(s == JobStatus.CANCELLED for s, _ in newest.values()):
        return "cancelled"
    failed = [n for n, (s, _) in newest.items() if s == JobStatus.SKIPPED
              or (s == JobStatus.FAILED and n.split("[")[0] not in continue_on_error)]
    return "failed" if failed else "succeeded"


def latest(jobs: list[Job]) -> list[Job]:
    """The newest job of each node (a rerun makes new ones), in the run's order."""
    by_node: dict[str, Job] = {}
    for job in jobs:
        by_node[job.node or job.id] = job
    return list(by_node.values())


class WorkflowRuns:
    """Submit, follow, cancel and rerun workflow runs, over the job service's pieces."""

    def __init__(self, service: JobService):
        self.service = service
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: set[str] = set()  # runs with a drain under way
        self._again: set[str] = set()  # ... and asked for once more meanwhile
        self._specs: dict[str, dict[str, dict]] = {}  # run id -> its parsed jobs (a run's spec never changes)
        self._native: set[str] = set()  # runs their backend orders (a scheduler other than the service)

    def hold(self, job: Job) -> Optional[str]:
        """Why the queue must not start a workflow job yet: its matrix's max_parallel is reached."""
        limit = self._specs.get(job.workflow or "", {}).get(_name(job), {}).get("max_parallel")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        if not limit:
            return None
        running = sum(1 for r in self.service.queue.active.values()
                      if r.job.workflow == job.workflow and _name(r.job) == _name(job))
        return f"max_parallel: {running} of {limit} of {_name(job)} running" if running >= limit else None

    # -- submitting -------------------------------------------------------------------------
    async def submit(self, body: Any) -> dict[str, Any]:
        """`{"spec": <YAML text or object>, "workspace": "..."}`: checked whole, then every job
        is recorded at once on one snapshot of the workspace."""
        if not isinstance(body, dict) or "spec" not in body:
            raise SpecError.one("spec", 'a workflow submission is {"spec": <YAML text or object>, "workspace": ...}')
        unknown = set(body) - {"spec", "workspace"}
        if unknown:
            raise SpecError.one(sorted(unknown)[0], "unknown field")
        workspace = body.get("workspace") or ""
        if not isinstance(workspace, str):
            raise SpecError.one("workspace", "must be a folder relative to the server's root")
        graph = plan(body["spec"])
        checked = await self._check(graph.nodes, workspace)
        folder = await asyncio.to_thread(self.service.resolve_workspace, workspace)
        snap = await asyncio.to_thread(self.service.snapshots.snapshot, folder)
        try:
            return await self._record(graph.name, body["spec"], workspace, folder, graph.nodes, checked, snap.id)
        finally:
            self.service.snapshots.unpin(snap.id)

    async def _check(self, nodes: list[Node], workspace: str) -> list[tuple[JobSpec, str, list[str]]]:
        """Each job's spec with the run's workspace, its backend and notes; the backend's checks
        once per workflow job. Errors name the job."""
        out, errors, seen = [], [], {}
        for node in nodes:
            spec = JobSpec.model_validate({**node.spec, "workspace": workspace})  # plan() checked it
            try:
                spec = self.service.instance_types.apply(spec)
                if node.name not in seen:
                    name, _, notes = await self.service.validate(spec)
                    seen[node.name] = (name, notes)
            except SpecError as exc:
                if node.name not in seen:
                    errors += [e.model_copy(update={"field": f"jobs.{node.name}.{e.field}"}) for e in exc.errors]
                    seen[node.name] = ("", [])
            out.append((spec, *seen[node.name]))
        if errors:
            raise SpecError(errors)
        return out

    async def _record(self, name: str, raw: Any, workspace: str, folder: Path, nodes: list[Node],
                      checked: list[tuple[JobSpec, str, list[str]]], snapshot: str) -> dict[str, Any]:
        run_id = "w" + secrets.token_hex(6)
        ids = {node.key: secrets.token_hex(6) for node in nodes}
        by_name: dict[str, list[Node]] = {}
        for node in nodes:
            by_name.setdefault(node.name, []).append(node)
        jobs = []
        for node, (spec, backend, notes) in zip(nodes, checked):
            needed = [n for need in node.needs for n in by_name[need]]
            job = self.service.new_job(spec, backend, snapshot, folder, job_id=ids[node.key], notes=notes)
            job.workflow, job.node = run_id, node.key
            job.after = [ids[n.key] for n in needed]
            job.inputs = {n.folder: ids[n.key] for n in needed}
            jobs.append(job)
        self._jobs(run_id, raw)  # before the queue sees its jobs: max_parallel holds from the start
        scheduler, message = self._scheduler(run_id, checked)
        await self.service.record_many(jobs, {
            "id": run_id, "name": name, "status": "queued", "spec": raw, "workspace": workspace,
            "created_at": utcnow().isoformat(), "scheduler": scheduler, "message": message})
        await self.advance(run_id)
        return await self.get(run_id)

    def _scheduler(self, run_id: str, checked: list[tuple[JobSpec, str, list[str]]]) -> tuple[str, Optional[str]]:
        """Who orders the run's jobs: their backend, when all are on one that can (and the run
        asks nothing only the service can do), else the service. A message says why not."""
        backends = {backend for _, backend, _ in checked}
        name = next(iter(backends))
        if len(backends) > 1 or not self.service.backends[name].capabilities().dependencies:
            return "service", None
        if any("${{" in spec.model_dump_json() for spec, _, _ in checked):
            why = "its jobs pass outputs (${{ needs.<job>.outputs }}), which need the service between jobs"
        elif any(j.get("max_parallel") for j in self._specs[run_id].values()):
            why = "max_parallel is kept by the service's queue"
        else:
            self._native.add(run_id)
            return name, None
        return "service", f"ordered by the service rather than by {name}: {why}"

    # -- moving on --------------------------------------------------------------------------
    def launched(self, job: Job) -> None:
        """A job of a run its backend orders was taken: the jobs that need it can follow."""
        if job.workflow in self._native:
            self.moved(job)

    async def depends(self, job: Job) -> list[Dependency]:
        """What a job of a run its backend orders waits for there: every job it needs that has
        not succeeded (one that failed is kept, so the engine drops this job as skipped)."""
        if job.workflow not in self._native:
            return []
        forgiving = self._forgiving(job.workflow)
        out = []
        for need_id in dict.fromkeys(job.inputs.values()):
            need = await self.service.store.get(need_id)
            if need is not None and need.backend_state and need.status != JobStatus.SUCCEEDED:
                out.append(Dependency(need.backend_state, any_end=_name(need) in forgiving))
        return out

    def moved(self, job: Job) -> None:
        """Move the job's run on; ends that come together are handled in one pass."""
        if not job.workflow:
            return
        if job.workflow in self._pending:
            self._again.add(job.workflow)
            return
        self._pending.add(job.workflow)
        self.service.tasks.spawn(self._drain(job.workflow))

    async def _drain(self, run_id: str) -> None:
        try:
            while True:
                self._again.discard(run_id)
                await self.advance(run_id)
                if run_id not in self._again:
                    return
        finally:
            self._pending.discard(run_id)

    async def advance(self, run_id: str) -> None:
        """Let go of the jobs whose needs are over, skip those that can no longer run, and
        record the run's status. One pass at a time per run; repeated while skips cascade."""
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        async with lock:
            while await self._step(run_id):
                pass
            self.service.queue.kick()

    async def _step(self, run_id: str) -> bool:
        """One pass over the run's jobs; True if it skipped some (their dependents may follow)."""
        run = await self.service.store.workflow(run_id)
        if run is None:
            return False
        native = run["scheduler"] != "service"
        if native:
            self._native.add(run_id)
        states = await self.service.store.run_states(run_id)
        status_of = {state.id: state for state in states}
        self._jobs(run_id, run["spec"])
        forgiving = self._forgiving(run_id)
        skipped, release, now = False, [], {}  # what this pass changed, by job id
        for job_id, _node, status, after, _ in states:
            if status != JobStatus.QUEUED or not after:
                continue
            needed = [(i, status_of[i].node, status_of[i].status) for i in after if i in status_of]
            if any(not s.is_terminal() and not (native and status_of[i].launched) for i, _, s in needed):
                continue
            broken = [(n, s) for _, n, s in needed if s.is_terminal() and s != JobStatus.SUCCEEDED
                      and not (s == JobStatus.FAILED and n.split("[")[0] in forgiving)]
            if broken:
                what = ", ".join(f"{n} {s.value}" for n, s in broken[:3])
                if await self.service.store.transition(
                        job_id, JobStatus.SKIPPED, utcnow(), only_from=JobStatus.QUEUED, finished_at=utcnow(),
                        message=f"skipped: a job it needs did not succeed ({what})"):
                    skipped, now[job_id] = True, (JobStatus.SKIPPED, after)
                    self.service.queue.discard(job_id)
                continue
            if self._takes_outputs(run_id, _node):
                await self._fill_outputs(job_id, [(i, n) for i, n, _ in needed])
            else:
                release.append(job_id)
            now[job_id] = (status, [])
        if release:
            await self.service.store.release(release)
            self.service.queue.release(release)
        newest: dict[str, tuple[JobStatus, list[str]]] = {}
        for job_id, node, status, after, _ in states:
            newest[node or job_id] = now.get(job_id, (status, after))
        status = _status(newest, forgiving)
        if status is not None and status != run["status"]:
            fields: dict[str, Any] = {"status": status}
            if status in ("succeeded", "failed", "cancelled"):
                fields["finished_at"] = utcnow().isoformat()
            await self.service.store.update_workflow(run_id, **fields)
            if "finished_at" in fields and self.service.webhooks.wants("workflow.ended"):
                self.service.webhooks.emit("workflow.ended", {"workflow": await self.get(run_id)})
        return skipped

    def _takes_outputs(self, run_id: str, node: str) -> bool:
        """Whether the node's spec refers to outputs of the jobs it needs (`${{ needs.* }}`)."""
        raw = self._specs.get(run_id, {}).get(node.split("[")[0], {})
        text = json.dumps(raw)
        return "${{" in text and "needs." in text

    async def _fill_outputs(self, job_id: str, needed: list[tuple[str, str]]) -> None:
        """Let the job go with what the jobs it needs wrote to $JOB_OUTPUTS_FILE filled in."""
        job = await self.service.store.get(job_id)
        if job is not None:
            spec = JobSpec.model_validate(fill_outputs(job.spec.model_dump(mode="json"), await self._outputs(needed)))
            await self.service.store.update(job_id, only_in=JobStatus.QUEUED, after=[], spec=spec)
            self.service.queue.release([job_id], spec)

    def _forgiving(self, run_id: str) -> set[str]:
        """The run's jobs with continue_on_error: their failure fails nothing."""
        return {n for n, j in self._specs.get(run_id, {}).items() if j.get("continue_on_error") is True}

    def _jobs(self, run_id: str, spec: Any) -> dict[str, dict]:
        """The run's jobs as its spec gives them, parsed once per run."""
        if run_id not in self._specs:
            data, _ = load(spec)
            self._specs[run_id] = {n: j for n, j in (data.get("jobs") or {}).items() if isinstance(j, dict)}
        return self._specs[run_id]

    async def _outputs(self, needed: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """What the needed jobs (id, node) wrote to $JOB_OUTPUTS_FILE, by workflow job name; a
        matrix job's keys hold the list of its combinations' values."""
        folders = await self.service.store.job_dirs([job_id for job_id, _ in needed])

        def read() -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            for job_id, node in needed:
                folder = folders.get(job_id)
                path = (folder or self.service.env.jobs_dir / job_id) / "artifacts" / OUTPUTS_FILE
                try:
                    values = json.loads(path.read_text()) if path.is_file() and not path.is_symlink() else {}
                except (OSError, ValueError):
                    values = {}
                if not isinstance(values, dict):
                    continue
                name = node.split("[")[0]
                if "[" in node:
                    for key, value in values.items():
                        out.setdefault(name, {}).setdefault(key, []).append(value)
                else:
                    out.setdefault(name, {}).update(values)
            return out

        return await asyncio.to_thread(read)

    # -- reading, cancelling, rerunning -----------------------------------------------------
    async def get(self, run_id: str) -> dict[str, Any]:
        run = await self.service.store.workflow(run_id)
        if run is None:
            raise JobNotFound(f"no workflow run {run_id!r}")
        newest: dict[str, tuple[str, JobStatus]] = {}  # node -> its newest job (a rerun makes new ones)
        for job_id, node, status, _, _ in await self.service.store.run_states(run_id):
            newest[node or job_id] = (job_id, status)
        needs = {n: ([j["needs"]] if isinstance(j.get("needs"), str) else list(j.get("needs") or []))
                 for n, j in self._jobs(run_id, run["spec"]).items()}
        counts: dict[str, int] = {}
        for _, status in newest.values():
            counts[status.value] = counts.get(status.value, 0) + 1
        return WorkflowRun(**{**run, "counts": counts}, jobs=[
            WorkflowJob(name=key.split("[")[0], key=key, matrix=_matrix_of(key), job_id=job_id, status=status,
                        needs=needs.get(key.split("[")[0], [])) for key, (job_id, status) in newest.items()
        ]).model_dump(mode="json")

    async def list(self, **query: Any) -> dict[str, Any]:
        """Runs newest first: status (comma-separated), limit, cursor."""
        q = WorkflowQuery.parse(**query)
        runs, next_cursor = await self.service.store.workflows(status=q.status or None, limit=q.limit,
                                                               cursor=q.cursor)
        return WorkflowPage(workflows=[WorkflowRunSummary(**r) for r in runs], next_cursor=next_cursor).model_dump()

    async def cancel(self, run_id: str) -> dict[str, Any]:
        run = await self.get(run_id)
        if run["status"] in ("succeeded", "failed", "cancelled"):
            raise JobConflict(f"workflow run {run_id} is already {run['status']}")
        for job_id in await self.service.store.cancel_queued(run_id, utcnow(), "cancelled with its workflow run"):
            self.service.log_files.close(job_id)  # one being prepared notices and does not start
            self.service.queue.discard(job_id)
        for job in run["jobs"]:  # those under way (running, or launched and pending in their backend)
            if (runner := self.service.queue.active.get(job["job_id"])) is not None:
                await runner.cancel(0)
        await self.advance(run_id)
        return await self.get(run_id)

    async def rerun(self, run_id: str) -> dict[str, Any]:
        """Run the failed, cancelled and skipped jobs again (new jobs, on the same snapshot);
        the succeeded ones and their artifacts are kept."""
        run = await self.get(run_id)
        if run["status"] in ("queued", "running"):
            raise JobConflict(f"workflow run {run_id} is {run['status']}: cancel it before rerunning")
        jobs = latest(await self.service.store.run_jobs(run_id))
        again = {j.id for j in jobs if j.status != JobStatus.SUCCEEDED}
        if not again:
            raise JobConflict(f"every job of workflow run {run_id} succeeded: nothing to rerun")
        fresh = {old: secrets.token_hex(6) for old in again}
        made = []
        for job in jobs:
            if job.id not in again:
                continue
            new = self.service.new_job(job.spec, job.backend, job.snapshot, Path(run["workspace"]),
                                       job_id=fresh[job.id])
            new.workflow, new.node = run_id, job.node
            new.after = [fresh.get(i, i) for i in job.after if fresh.get(i, i) in fresh.values()]
            new.inputs = {k: fresh.get(v, v) for k, v in job.inputs.items()}
            made.append(new)
        await self.service.record_many(made, None)
        await self.service.store.update_workflow(run_id, status="queued", finished_at=None)
        await self.advance(run_id)
        return await self.get(run_id)

    async def recover(self) -> None:
        """At start: move on every run that is not over (jobs may have ended while down)."""
        cursor = None
        while True:
            runs, cursor = await self.service.store.workflows(status=["queued", "running"], limit=200, cursor=cursor)
            for run in runs:
                await self.advance(run["id"])
            if cursor is None:
                break


def _name(job: Job) -> str:
    return (job.node or job.id).split("[")[0]


@functools.lru_cache(maxsize=4096)
def _matrix_of(key: Optional[str]) -> dict[str, str]:
    if not key or "[" not in key:
        return {}
    return dict(part.split("=", 1) for part in key[key.index("[") + 1:-1].split(",") if "=" in part)

