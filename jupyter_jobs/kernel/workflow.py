"""A workflow run in a notebook: a handle (`.wait()`, `.jobs`, `.cancel()`, `.rerun()`) and a
live table of its jobs' statuses, updated in place while the cell waits (or, detached,
while other cells run); `--follow NAME` streams one of its jobs' output under the table."""

from __future__ import annotations

import html
import threading
import time
from typing import Any, Optional

from .client import JobsService
from .display import Job, stream_output

RUN_OVER = ("succeeded", "failed", "cancelled")


class WorkflowFailed(RuntimeError):
    """A run the cell waited for did not succeed; one line, not a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mWorkflowFailed\x1b[0m: {self}"]


class Workflow:
    """A workflow run: `id`, `status`, `jobs` (name, key, status, job_id), `job(key)`,
    `wait()`, `cancel()`, `rerun()`."""

    def __init__(self, service: JobsService, data: dict[str, Any]):
        self._service, self._data = service, data

    def refresh(self) -> dict[str, Any]:
        if self._data["status"] not in RUN_OVER:
            self._data = self._service.workflow(self.id)
        return self._data

    @property
    def id(self) -> str:
        return self._data["id"]

    @property
    def status(self) -> str:
        return self.refresh()["status"]

    @property
    def jobs(self) -> list[dict[str, Any]]:
        return self.refresh()["jobs"]

    def job(self, key: str) -> Job:
        """The Job handle of one of its jobs, by key (`train[lr=0.1]`) or name (the first one)."""
        for item in self.jobs:
            if key in (item["key"], item["name"]):
                return Job(self._service, self._service.get(item["job_id"]))
        raise KeyError(f"no job {key!r} in workflow run {self.id}")

    def wait(self, timeout: Optional[float] = None, poll: float = 0.3) -> Workflow:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status not in RUN_OVER:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"workflow run {self.id} is still {self._data['status']} after {timeout} s")
            time.sleep(poll)
        return self

    def cancel(self) -> Workflow:
        self._data = self._service.workflow(self.id, "cancel")
        return self

    def rerun(self) -> Workflow:
        self._data = self._service.workflow(self.id, "rerun")
        return self

    def __repr__(self) -> str:
        data = self.refresh()
        counts: dict[str, int] = {}
        for item in data["jobs"]:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return f"<Workflow {data['id']} {data['name']} {data['status']}: {summary}>"


def table_text(run: dict[str, Any]) -> str:
    rows = [(j["key"], j["status"], j["job_id"]) for j in run["jobs"]]
    width = max([len(r[0]) for r in rows] + [3])
    lines = [f"workflow {run['id']} {run['name']}: {run['status']}"]
    lines += [f"  {key.ljust(width)}  {status.ljust(9)}  {job_id}" for key, status, job_id in rows]
    return "\n".join(lines)


def _bundle(run: dict[str, Any]) -> dict[str, str]:
    rows = "".join(f"<tr><td><code>{html.escape(j['key'])}</code></td><td>{j['status']}</td>"
                   f"<td><code>{j['job_id']}</code></td></tr>" for j in run["jobs"])
    head = f"<b>{html.escape(run['name'])}</b> <code>{run['id']}</code>: {run['status']}"
    return {"text/plain": table_text(run),
            "text/html": f'<div class="jupyter-jobs-workflow">{head}<table>{rows}</table></div>'}


class _Table:
    """The run's table, shown once and updated in place when a status changes."""

    def __init__(self, run: dict[str, Any]) -> None:
        from IPython.display import display

        self._shown = table_text(run)
        self.handle = display(_bundle(run), raw=True, display_id=True)

    def show(self, run: dict[str, Any]) -> None:
        text = table_text(run)
        if text != self._shown:
            self._shown = text
            self.handle.update(_bundle(run), raw=True)


def run_workflow(service: JobsService, spec: Any, workspace: str, *, detach: bool, follow: Optional[str],
                 raise_on_failure: bool) -> Workflow:
    """Submit a workflow and keep its table current: until it ends (blocking), or from a
    thread (detached). With `follow`, that job's output streams under the table meanwhile."""
    run = Workflow(service, service.submit_workflow(spec, workspace))
    table = _Table(run._data)

    def keep_current(stop: threading.Event) -> None:
        while not stop.wait(0.5):
            try:
                data = run.refresh()
            except Exception:
                continue
            table.show(data)
            if data["status"] in RUN_OVER:
                return

    stop = threading.Event()
    ticker = threading.Thread(target=keep_current, args=(stop,), name=f"jupyter-jobs-workflow-{run.id}", daemon=True)
    ticker.start()
    if detach:
        return run
    try:
        if follow:
            job = next((j for j in run._data["jobs"] if follow in (j["key"], j["name"])), None)
            if job is None:
                raise KeyError(f"no job {follow!r} in this workflow")
            stream_output(service, job["job_id"])  # from when it starts until it ends (or is skipped)
        run.wait()
    except KeyboardInterrupt:
        stop.set()
        run.cancel()
        table.show(run.wait(30).refresh())
        raise
    finally:
        stop.set()
        ticker.join(5)
    table.show(run.refresh())
    if run.status != "succeeded" and raise_on_failure:
        raise WorkflowFailed(f"workflow run {run.id} {run.status}")
    return run
