"""A workflow run in a notebook: a handle (`.wait()`, `.jobs`, `.cancel()`, `.rerun()`) and a
live table of its jobs' statuses, updated in place while the cell waits (or, detached,
while other cells run); `--follow NAME` streams one of its jobs' output under the table."""

from __future__ import annotations

import html
import json
import threading
from typing import Any, Optional

from .client import JobsService
from .display import Handle, Job, stream_output

RUN_OVER = ("succeeded", "failed", "cancelled")


class WorkflowFailed(RuntimeError):
    """A run the cell waited for did not succeed; one line, not a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mWorkflowFailed\x1b[0m: {self}"]


class Workflow(Handle):
    """A workflow run: `id`, `status`, `jobs` (name, key, status, job_id), `job(key)`,
    `wait()`, `cancel()`, `rerun()`."""

    kind = "workflow run"
    over = RUN_OVER

    def _fetch(self) -> dict[str, Any]:
        return self._service.workflow(self.id)

    @property
    def jobs(self) -> list[dict[str, Any]]:
        return self.refresh()["jobs"]

    def job(self, key: str) -> Job:
        """The Job handle of one of its jobs, by key (`train[lr=0.1]`) or name (the first one)."""
        for item in self.jobs:
            if key in (item["key"], item["name"]):
                return Job(self._service, self._service.get(item["job_id"]))
        raise KeyError(f"no job {key!r} in workflow run {self.id}")

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


class Best:
    """The sweep's metric to rank by: `loss:min` or `acc:max`."""

    def __init__(self, text: str):
        name, _, way = text.partition(":")
        if not name or way not in ("min", "max", ""):
            raise ValueError(f"--sweep-metric is NAME:min or NAME:max, not {text!r}")
        self.name, self.lowest = name, way != "max"

    def pick(self, values: dict[str, dict[str, float]]) -> Optional[str]:
        """The job id whose last value of the metric is best."""
        have = {job_id: v[self.name] for job_id, v in values.items() if self.name in v}
        if not have:
            return None
        return (min if self.lowest else max)(have, key=have.__getitem__)


def table_text(run: dict[str, Any], values: Optional[dict[str, dict[str, float]]] = None,
               best: Optional[str] = None) -> str:
    """The run as text: a row per job (with its metrics' last values, when given); the best
    row marked with a star."""
    values = values or {}
    names = sorted({n for v in values.values() for n in v})
    rows = [(("* " if j["job_id"] == best else "  ") + j["key"], j["status"], j["job_id"],
             *(f"{values.get(j['job_id'], {}).get(n, float('nan')):.4g}" for n in names)) for j in run["jobs"]]
    header = ("  job", "status", "id", *names)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"workflow {run['id']} {run['name']}: {run['status']}"]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def _bundle(run: dict[str, Any], values: dict[str, dict[str, float]], best: Optional[str],
            metric: Optional[Best] = None) -> dict[str, str]:
    names = sorted({n for v in values.values() for n in v})
    head_cells = "".join(f"<th>{html.escape(n)}</th>" for n in ["", "job", "status", "id", *names])
    why = f"the best by {metric.name}:{'min' if metric.lowest else 'max'}" if metric else "the best"
    star = ' class="jupyter-jobs-best" style="font-weight:bold;background:var(--jp-brand-color3)"'
    mark = f'<span role="img" aria-label="{html.escape(why)}" title="{html.escape(why)}">\u2605</span>'
    rows = "".join(
        f"<tr{star if j['job_id'] == best else ''}><td>{mark if j['job_id'] == best else ''}</td>"
        f"<td><code>{html.escape(j['key'])}</code></td><td>{j['status']}</td><td><code>{j['job_id']}</code></td>"
        + "".join(f"<td>{values.get(j['job_id'], {}).get(n, float('nan')):.4g}</td>" for n in names) + "</tr>"
        for j in run["jobs"])
    head = f"<b>{html.escape(run['name'])}</b> <code>{run['id']}</code>: {run['status']}"
    return {"text/plain": table_text(run, values, best),
            "text/html": f'<div class="jupyter-jobs-workflow">{head}<table><tr>{head_cells}</tr>{rows}</table></div>'}


class _Table:
    """The run's table, shown once and updated in place when it changes. For a sweep it also
    holds each job's last metric values and marks the best row."""

    def __init__(self, service: JobsService, run: dict[str, Any], best: Optional[Best] = None,
                 with_metrics: bool = False) -> None:
        from IPython.display import display

        self.service, self.best, self.with_metrics = service, best, with_metrics or best is not None
        bundle = self._bundle(run)
        self._last = bundle["text/plain"]
        self.handle = display(bundle, raw=True, display_id=True)

    def _values(self, run: dict[str, Any]) -> dict[str, dict[str, float]]:
        if not self.with_metrics:
            return {}
        values = {}
        for job in run["jobs"]:
            if job["status"] in ("queued", "skipped"):
                continue
            series = (self.service.get(job["job_id"]).get("metrics") or {}).get("series") or {}
            values[job["job_id"]] = {n: s["last"] for n, s in series.items()
                                     if n not in ("cpu.percent", "memory.rss") and not n.startswith("gpu.")}
        return values

    def _bundle(self, run: dict[str, Any]) -> dict[str, str]:
        values = self._values(run)
        return _bundle(run, values, self.best.pick(values) if self.best else None, self.best)

    def show(self, run: dict[str, Any]) -> None:
        bundle = self._bundle(run)
        if bundle["text/plain"] != self._last:
            self._last = bundle["text/plain"]
            self.handle.update(bundle, raw=True)


def sweep_matrix(pairs: list[str]) -> dict[str, list[Any]]:
    """`["lr=0.1,0.01", "batch=32,64"]` as a matrix; numbers stay numbers."""
    matrix: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--sweep takes NAME=V1,V2,..., not {pair!r}")
        matrix[key.strip()] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    return matrix


def _value(text: str) -> Any:
    try:
        number = json.loads(text)
        return number if isinstance(number, (int, float)) and not isinstance(number, bool) else text
    except ValueError:
        return text


def run_workflow(service: JobsService, spec: Any, workspace: str, *, detach: bool, follow: Optional[str],
                 raise_on_failure: bool, best: Optional[Best] = None, with_metrics: bool = False,
                 started: Optional[dict[str, Any]] = None) -> Workflow:
    """Submit a workflow (or follow one `started`: a named workflow's run) and keep its table
    current: until it ends (blocking), or from a thread (detached). With `follow`, that job's
    output streams under the table meanwhile."""
    run = Workflow(service, started if started is not None else service.submit_workflow(spec, workspace))
    if best is None and run._data.get("best"):  # the spec's own `best: loss:min`
        best = Best(run._data["best"])
    table = _Table(service, run._data, best, with_metrics)

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
