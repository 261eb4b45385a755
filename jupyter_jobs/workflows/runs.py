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
import contextlib
import json
import secrets
from pathlib import Path
from typing import Any, Optional

from ..backends.base import OUTPUTS_DIR, Dependency
from ..domain.errors import JobConflict, JobNotFound, SpecError
from ..domain.job import Job, utcnow
from ..domain.replies import WorkflowJob, WorkflowPage, WorkflowQuery, WorkflowRun, WorkflowRunSummary
from ..domain.spec import JobSpec
from ..domain.status import JobStatus
from ..jobs.plugins import Event, JobCore
from .dag import latest, matrix_of, name_of, step
from .spec import Node, fill_outputs, load, plan, volumes

OUTPUTS_FILE = "outputs.json"  # in the job's artifacts: $JOB_OUTPUTS_FILE
_Checked = tuple[JobSpec, str, list[str], Optional[Path]]  # a job's spec, backend, notes, git tree


class WorkflowRuns:
    """Submit, follow, cancel and rerun workflow runs, over the job service's pieces."""

    def __init__(self, core: JobCore):
        self.core, self.store = core, core.store
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: set[str] = set()  # runs with a drain under way
        self._again: set[str] = set()  # ... and asked for once more meanwhile
        self._specs: dict[str, dict[str, dict]] = {}  # run id -> its parsed jobs (a run's spec never changes)
        self._native: set[str] = set()  # runs their backend orders (a scheduler other than the service)
        self._best: dict[str, Optional[str]] = {}  # run id -> the metric that marks its best job (loss:min)
        core.events.subscribe(self._on_event, ("job.ended", "job.launched"))

    def _on_event(self, event: Event) -> None:
        assert event.job is not None
        if event.kind == "job.ended":
            self.moved(event.job)
        else:
            self.launched(event.job)

    async def stop(self) -> None:
        """Nothing of its own to let go: its passes run as the core's tasks."""

    def hold(self, job: Job) -> Optional[str]:
        """Why the queue must not start a workflow job yet: its matrix's max_parallel is reached."""
        limit = self._specs.get(job.workflow or "", {}).get(_name(job), {}).get("max_parallel")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        if not limit:
            return None
        running = sum(1 for r in self.core.runners().values()
                      if r.job.workflow == job.workflow and _name(r.job) == _name(job))
        return f"max_parallel: {running} of {limit} of {_name(job)} running" if running >= limit else None

    # -- submitting -------------------------------------------------------------------------
    async def submit(self, body: Any, definition: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """`{"spec": <YAML text or object>, "workspace": "..."}`: checked whole, then every job
        is recorded at once on one snapshot of the workspace."""
        if not isinstance(body, dict) or "spec" not in body:
            raise SpecError.one("spec", 'a workflow submission is {"spec": <YAML text or object>, "workspace": ...}')
        unknown = set(body) - {"spec", "workspace", "inputs"}
        if unknown:
            raise SpecError.one(sorted(unknown)[0], "unknown field")
        workspace = body.get("workspace") or ""
        if not isinstance(workspace, str):
            raise SpecError.one("workspace", "must be a folder relative to the server's root")
        if not isinstance(body.get("inputs") or {}, dict):
            raise SpecError.one("inputs", "must map each input's name to its value")
        graph = plan(body["spec"], body.get("inputs") or {})
        checked = await _check(self.core, graph.nodes, workspace)
        folder = await asyncio.to_thread(self.core.resolve_workspace, workspace)
        run = {"name": graph.name, "spec": body["spec"], "workspace": workspace, "inputs": graph.inputs,
               **(definition or {})}
        async with contextlib.AsyncExitStack() as pins:
            snap = await pins.enter_async_context(self.core.pinned_snapshot(folder))
            trees: dict[Path, str] = {}  # a git job's commit: its own snapshot
            for tree in {c[3] for c in checked if c[3] is not None}:
                trees[tree] = (await pins.enter_async_context(self.core.pinned_snapshot(tree))).id
            own = [(spec, backend, notes, trees.get(tree) if tree else None) for spec, backend, notes, tree in checked]
            return await self._record(run, folder, graph.nodes, own, snap.id)

    async def _record(self, run: dict[str, Any], folder: Path, nodes: list[Node],
                      checked: list[tuple[JobSpec, str, list[str], Optional[str]]], snapshot: str) -> dict[str, Any]:
        run_id = "w" + secrets.token_hex(6)
        ids = {node.key: secrets.token_hex(6) for node in nodes}
        by_name: dict[str, list[Node]] = {}
        for node in nodes:
            by_name.setdefault(node.name, []).append(node)
        jobs = []
        for node, (spec, backend, notes, own) in zip(nodes, checked):
            needed = [n for need in node.needs for n in by_name[need]]
            job = self.core.new_job(spec, backend, own or snapshot, folder, job_id=ids[node.key], notes=notes)
            job.workflow, job.node = run_id, node.key
            job.after = [ids[n.key] for n in needed]
            job.inputs = {n.folder: ids[n.key] for n in needed}
            job.inputs.update({key: f"{ids[n.key]}/{OUTPUTS_DIR}/{key}" for n in needed for key in volumes(n.spec)})
            jobs.append(job)
        self._jobs(run_id, run["spec"])  # before the queue sees its jobs: max_parallel holds from the start
        scheduler, message = self._scheduler(run_id, checked)
        await self.core.record(jobs, self.store.new_run({
            **run, "id": run_id, "status": "queued", "created_at": utcnow().isoformat(), "scheduler": scheduler,
            "message": message}))
        await self.advance(run_id)
        return await self.get(run_id)

    def _scheduler(self, run_id: str, checked: list[tuple[JobSpec, str, list[str], Any]]) -> tuple[str, Optional[str]]:
        """Who orders the run's jobs: their backend, when all are on one that can (and the run
        asks nothing only the service can do), else the service. A message says why not."""
        backends = {backend for _, backend, _, _ in checked}
        name = next(iter(backends))
        if len(backends) > 1 or not self.core.orders_dependencies(name):
            return "service", None
        if any("${{" in spec.model_dump_json() for spec, _, _, _ in checked):
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
        for need_id in dict.fromkeys(v.partition("/")[0] for v in job.inputs.values()):
            need = await self.store.get(need_id)
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
        self.core.spawn(self._drain(job.workflow))

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
            self.core.kick()

    async def _step(self, run_id: str) -> bool:
        """One pass over the run's jobs (decided by `dag.step`, done here); True if it skipped
        some (their dependents may follow)."""
        run = await self.store.workflow(run_id)
        if run is None:
            return False
        native = run["scheduler"] != "service"
        if native:
            self._native.add(run_id)
        self._jobs(run_id, run["spec"])
        decided = step(await self.store.run_states(run_id), native=native, forgiving=self._forgiving(run_id),
                       takes_outputs=lambda node: self._takes_outputs(run_id, node))
        skipped = [await self.core.skip(job_id, why) for job_id, why in decided.skip.items()]
        for job_id, needed in decided.fill:
            await self._fill_outputs(job_id, needed)
        if decided.release:
            await self.store.release(decided.release)
            self.core.release(decided.release)
        status = decided.status if all(skipped) else None  # a skip lost to a cancel: the next pass sees it
        if status is not None and status != run["status"]:
            fields: dict[str, Any] = {"status": status}
            if status in ("succeeded", "failed", "cancelled"):
                fields["finished_at"] = utcnow().isoformat()
            await self.store.update_workflow(run_id, **fields)
            if "finished_at" in fields and self.core.events.wants("workflow.ended"):
                self.core.events.publish(Event("workflow.ended", data={"workflow": await self.get(run_id)}))
        return any(skipped)

    def _takes_outputs(self, run_id: str, node: str) -> bool:
        """Whether the node's spec refers to outputs of the jobs it needs (`${{ needs.* }}`)."""
        raw = self._specs.get(run_id, {}).get(name_of(node), {})
        text = json.dumps(raw)
        return "${{" in text and "needs." in text

    async def _fill_outputs(self, job_id: str, needed: list[tuple[str, str]]) -> None:
        """Let the job go with what the jobs it needs wrote to $JOB_OUTPUTS_FILE filled in."""
        job = await self.store.get(job_id)
        if job is not None:
            spec = JobSpec.model_validate(fill_outputs(job.spec.model_dump(mode="json"), await self._outputs(needed)))
            await self.store.update(job_id, only_in=JobStatus.QUEUED, after=[], spec=spec)
            self.core.release([job_id], spec)

    def _forgiving(self, run_id: str) -> set[str]:
        """The run's jobs with continue_on_error: their failure fails nothing."""
        return {n for n, j in self._specs.get(run_id, {}).items() if j.get("continue_on_error") is True}

    def _jobs(self, run_id: str, spec: Any) -> dict[str, dict]:
        """The run's jobs as its spec gives them, parsed once per run."""
        if run_id not in self._specs:
            data, _ = load(spec)
            self._specs[run_id] = {n: j for n, j in (data.get("jobs") or {}).items() if isinstance(j, dict)}
            self._best[run_id] = data.get("best") if isinstance(data.get("best"), str) else None
        return self._specs[run_id]

    async def _outputs(self, needed: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """What the needed jobs (id, node) wrote to $JOB_OUTPUTS_FILE, by workflow job name."""
        folders = await self.store.job_dirs([job_id for job_id, _ in needed])
        return await asyncio.to_thread(read_outputs, folders, needed)

    # -- reading, cancelling, rerunning -----------------------------------------------------
    async def get(self, run_id: str, started: Optional[list[str]] = None) -> dict[str, Any]:
        """The run with the newest job of each node; `started`: the keys a rerun started again."""
        run = await self.store.workflow(run_id)
        if run is None:
            raise JobNotFound(f"no workflow run {run_id!r}")
        newest: dict[str, tuple[str, JobStatus]] = {}  # node -> its newest job (a rerun makes new ones)
        for job_id, node, status, _, _ in await self.store.run_states(run_id):
            newest[node or job_id] = (job_id, status)
        needs = {n: ([j["needs"]] if isinstance(j.get("needs"), str) else list(j.get("needs") or []))
                 for n, j in self._jobs(run_id, run["spec"]).items()}
        counts: dict[str, int] = {}
        for _, status in newest.values():
            counts[status.value] = counts.get(status.value, 0) + 1
        times = await self.store.run_times(run_id)  # each job's duration, for the graph
        best = self._best.get(run_id)
        return WorkflowRun(**{**run, "counts": counts}, best=best, started=started, jobs=[
            WorkflowJob(name=name_of(key), key=key, matrix=matrix_of(key), job_id=job_id, status=status,
                        needs=needs.get(name_of(key), []), started_at=times.get(job_id, (None, None))[0],
                        finished_at=times.get(job_id, (None, None))[1])
            for key, (job_id, status) in newest.items()
        ]).model_dump(mode="json")

    async def list(self, **query: Any) -> dict[str, Any]:
        """Runs newest first: status (comma-separated), limit, cursor."""
        q = WorkflowQuery.parse(**query)
        runs, next_cursor = await self.store.workflows(status=q.status or None, limit=q.limit,
                                                               cursor=q.cursor)
        return WorkflowPage(workflows=[WorkflowRunSummary(**r) for r in runs], next_cursor=next_cursor).model_dump()

    async def cancel(self, run_id: str) -> dict[str, Any]:
        run = await self.get(run_id)
        if run["status"] in ("succeeded", "failed", "cancelled"):
            raise JobConflict(f"workflow run {run_id} is already {run['status']}")
        for job_id in await self.store.cancel_queued(run_id, utcnow(), "cancelled with its workflow run"):
            self.core.dropped(job_id)
        for job in run["jobs"]:  # those under way (running, or launched and pending in their backend)
            await self.core.stop_job(job["job_id"])
        await self.advance(run_id)
        return await self.get(run_id)

    async def rerun(self, run_id: str) -> dict[str, Any]:
        """Run the failed, cancelled and skipped jobs again (new jobs, on the same snapshot);
        the succeeded ones and their artifacts are kept."""
        run = await self.get(run_id)
        if run["status"] in ("queued", "running"):
            raise JobConflict(f"workflow run {run_id} is {run['status']}: cancel it before rerunning")
        jobs = latest(await self.store.run_jobs(run_id))
        again = {j.id for j in jobs if j.status != JobStatus.SUCCEEDED}
        if not again:
            raise JobConflict(f"every job of workflow run {run_id} succeeded: nothing to rerun")
        fresh = {old: secrets.token_hex(6) for old in again}
        made = []
        for job in jobs:
            if job.id not in again:
                continue
            new = self.core.new_job(job.spec, job.backend, job.snapshot, Path(run["workspace"]),
                                       job_id=fresh[job.id])
            new.workflow, new.node = run_id, job.node
            new.after = [fresh.get(i, i) for i in job.after if fresh.get(i, i) in fresh.values()]
            new.inputs = {k: "/".join([fresh.get(v.partition("/")[0], v.partition("/")[0]), *v.split("/")[1:]])
                          for k, v in job.inputs.items()}
            made.append(new)
        await self.core.record(made)
        await self.store.update_workflow(run_id, status="queued", finished_at=None)
        await self.advance(run_id)
        return await self.get(run_id, started=[j.node or j.id for j in made])

    async def start(self) -> None:
        """At start: move on every run that is not over (jobs may have ended while down)."""
        cursor = None
        while True:
            runs, cursor = await self.store.workflows(status=["queued", "running"], limit=200, cursor=cursor)
            for run in runs:
                await self.advance(run["id"])
            if cursor is None:
                break


async def _check(core: JobCore, nodes: list[Node], workspace: str) -> list[_Checked]:
    """Each job's spec with the run's workspace, its backend and notes, and a git job's tree
    at its commit; the backend's checks once per workflow job. Errors name the job."""
    out: list[_Checked] = []
    errors, seen = [], {}
    for node in nodes:
        spec = JobSpec.model_validate({**node.spec, "workspace": workspace})  # plan() checked it
        tree = None
        try:
            spec, tree = await core.checkout(spec)  # git-checkout@v1: the commit, recorded
            spec = await core.resolve(core.apply_instance_type(spec))  # dataset versions, recorded
            if node.name not in seen:
                checked = await core.check(spec)
                seen[node.name] = (checked.backend, checked.notes)
        except SpecError as exc:
            if node.name not in seen:
                errors += [e.model_copy(update={"field": f"jobs.{node.name}.{e.field}"}) for e in exc.errors]
                seen[node.name] = ("", [])
        out.append((spec, *seen[node.name], tree))
    if errors:
        raise SpecError(errors)
    return out


def _name(job: Job) -> str:
    return name_of(job.node or job.id)


def read_outputs(folders: dict[str, Path], needed: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """The outputs files of the needed jobs (id, node) in their folders, by workflow job name; a
    matrix job's keys hold the list of its combinations' values. The files are the jobs': a link
    or a bad file counts as no outputs."""
    out: dict[str, dict[str, Any]] = {}
    for job_id, node in needed:
        folder = folders.get(job_id)
        path = folder / "artifacts" / OUTPUTS_FILE if folder is not None else None
        try:
            values = json.loads(path.read_text()) if path and path.is_file() and not path.is_symlink() else {}
        except (OSError, ValueError):
            values = {}
        if not isinstance(values, dict):
            continue
        name = name_of(node)
        if "[" in node:
            for key, value in values.items():
                out.setdefault(name, {}).setdefault(key, []).append(value)
        else:
            out.setdefault(name, {}).update(values)
    return out
