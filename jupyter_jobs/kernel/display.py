"""What a job looks like in a notebook: a Job handle, a live status, streamed output, and a
live chart of the job's metrics.

Output goes to the cell's own stdout and stderr as it arrives. Above it, shown before the
first output and then only updated in place: the status (an ipywidgets widget with a progress
bar where the frontend renders widgets, the same line as text everywhere else: nbclient,
plain IPython) and, once the job reports metrics, a chart that JupyterLab draws from the job's
series (its text is a summary of the last values).
"""

from __future__ import annotations

import html
import http.client
import sys
import threading
import time
from urllib.parse import urlsplit
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional
from collections.abc import Iterator

from .client import JobsService, ServiceError

TERMINAL = ("succeeded", "failed", "cancelled")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
METRICS_MIME = "application/vnd.jupyter-jobs.metrics+json"  # drawn by the JupyterLab extension
_ICONS = {"queued": "⏳", "running": "▶", "succeeded": "✔", "failed": "✘", "cancelled": "■"}


class JobInterrupted(KeyboardInterrupt):
    """The kernel was interrupted while a cell streamed a job, which was then cancelled. Still a
    KeyboardInterrupt (a run of all cells stops), but shown as one line: the traceback would
    only be the HTTP client's internals."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


class JobFailed(RuntimeError):
    """A job the cell waited for did not succeed. Shown as one line, not a traceback."""

    def __init__(self, job: dict[str, Any]):
        self.job = job
        detail = job.get("message") or f"exit code {job.get('exit_code')}"
        super().__init__(f"job {job['id']} {job['status']}: {detail}")

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mJobFailed\x1b[0m: {self}"]


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))  # Python < 3.11 rejects "Z"


def _elapsed(job: dict[str, Any]) -> Optional[float]:
    if not job.get("started_at"):
        return None
    start = _when(job["started_at"])
    end = _when(job["finished_at"]) if job.get("finished_at") else datetime.now(start.tzinfo)
    return max(0.0, (end - start).total_seconds())


def format_duration(seconds: Optional[float]) -> str:
    """`m:ss` under an hour, `XhYYm` from one, seconds truncated: the panel's format, so a job
    reads the same in the cell and in the panel."""
    if seconds is None:
        return "—"
    whole = max(0, int(seconds))
    return f"{whole // 3600}h{whole // 60 % 60:02d}m" if whole >= 3600 else f"{whole // 60}:{whole % 60:02d}"


def _shown_exit(job: dict[str, Any]) -> Optional[int]:
    """The exit code worth showing: none while running, and none for a cancelled job (143 is
    only the signal that stopped it; "cancelled" already says why)."""
    return job.get("exit_code") if job["status"] in ("succeeded", "failed") else None


def status_text(job: dict[str, Any], artifacts: Optional[list[dict]] = None) -> str:
    """One line: "▶ job X running 0:05", "✔ job X succeeded in 0:05", ... (a duration is only
    called final once the job ended)."""
    status, elapsed = job["status"], _elapsed(job)
    head = f"{_ICONS.get(status, '')} job {job['id']} {status}"
    if elapsed is not None:
        joiner = " " if status not in TERMINAL else " in " if status == "succeeded" else " after "
        head += joiner + format_duration(elapsed)
    parts = [head, job["backend"]]
    if job.get("gpus"):
        parts.append("GPUs " + ",".join(map(str, job["gpus"])))
    if _shown_exit(job) is not None:
        parts.append(f"exit {job['exit_code']}")
    if job.get("message") and status != "succeeded":
        parts.append(job["message"])
    if job.get("endpoints") and status not in TERMINAL:
        parts.append("endpoints: " + ", ".join(f"{e['name']} {e['state']}" for e in job["endpoints"]))
    if artifacts:
        parts.append("artifacts: " + ", ".join(a["path"] for a in artifacts[:10])
                     + (f" (+{len(artifacts) - 10})" if len(artifacts) > 10 else ""))
    return " · ".join(parts)


def _in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (widgets need its comms), not a terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


#: series that drive the progress bar (the status line's), not a chart
_PROGRESS_SERIES = ("progress", "total_steps")


def _custom_series(job: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The series the job reports itself (not the service's CPU/memory/GPU samples), less those
    the progress bar shows."""
    series = (job.get("metrics") or {}).get("series") or {}
    return {n: v for n, v in series.items() if n not in ("cpu.percent", "memory.rss", *_PROGRESS_SERIES)
            and not n.startswith("gpu.")}


def progress(job: dict[str, Any]) -> Optional[float]:
    """0..1 when the job reports it (the service reads it from the job's series)."""
    return job.get("progress")


def metrics_text(job: dict[str, Any]) -> str:
    """The chart's stand-in as text: each series' last value and step."""
    parts = [f"{name} {entry['last']:.6g} (step {entry['step']:g})"
             for name, entry in sorted(_custom_series(job).items())]
    return "metrics: " + " · ".join(parts[:8]) + (f" (+{len(parts) - 8})" if len(parts) > 8 else "")


class _StatusWidget:
    """The status as a widget: the line and, when the job reports it, a progress bar. Its
    fields change through the widget's comm, without re-rendering the output."""

    def __init__(self) -> None:
        import ipywidgets as widgets

        self.line = widgets.HTML()
        self.bar = widgets.FloatProgress(min=0.0, max=1.0, layout=widgets.Layout(width="220px", display="none"))
        self.label = widgets.Label()
        self.box = widgets.HBox([self.line, self.bar, self.label], layout=widgets.Layout(align_items="center"))
        self.box.add_class("jupyter-jobs-status-widget")

    @classmethod
    def create(cls) -> Optional[_StatusWidget]:
        if not _in_kernel():
            return None
        try:
            return cls()
        except Exception:  # no ipywidgets, or no comms: the text line will do
            return None

    def set(self, html_line: str, job: Optional[dict[str, Any]]) -> None:
        self.line.value = html_line
        fraction = progress(job) if job else None
        if fraction is not None:
            self.bar.value = fraction
            self.bar.layout.display = "flex"
            self.label.value = f"{fraction:.0%}"


class _StatusLine:
    """The status display, created once (before any output, so it stays above it) and then
    updated in place through its display_id: the widget follows every change; the display's
    own bundle (its text, for frontends without widgets) changes with the status only, so a
    widget is not re-rendered every second."""

    def __init__(self) -> None:
        self.handle: Any = None
        #: (job, endpoint name) -> the URL a browser opens; set by whoever knows the service
        self.browser_url: Optional[Callable[[dict[str, Any], str], str]] = None
        self.widget = _StatusWidget.create()
        self._status: Optional[str] = None
        self._text = ""

    def show(self, text: str, job: Optional[dict[str, Any]] = None) -> None:
        from IPython.display import display

        styled = f'<pre class="jupyter-jobs-status" style="margin:0;opacity:.8">{html.escape(text)}</pre>'
        status = job["status"] if job else None
        if self.widget is not None:
            self.widget.set(styled + self._links(job), job)
            settled = status == self._status and (status not in TERMINAL or text == self._text)
            if self.handle is not None and settled:
                return
        self._status, self._text = status, text
        bundle = {"text/plain": text, "text/html": styled}
        if self.widget is not None:
            bundle[WIDGET_MIME] = {"model_id": self.widget.box.model_id, "version_major": 2, "version_minor": 0}
        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)


    def _links(self, job: Optional[dict[str, Any]]) -> str:
        """An Open link per ready endpoint (the browser's cookie authenticates it)."""
        if not job or not self.browser_url:
            return ""
        links = [f'<a class="jupyter-jobs-endpoint" href="{html.escape(self.browser_url(job, e["name"]))}" '
                 f'target="_blank" rel="noopener">Open {html.escape(e["name"])} \u2197</a>'
                 for e in job.get("endpoints") or [] if e["state"] == "ready"]
        return f'<div style="display:flex;gap:1em">{"".join(links)}</div>' if links else ""


class _MetricsDisplay:
    """Room for the chart, made under the status line (so it too stays above the output); it
    becomes the chart once the job reports metrics. In a terminal there is no room to make.
    While the cell follows its job (not --detach), the room says so from the start: JupyterLab
    then does not notify the job's end, which the user sees in the cell."""

    def __init__(self, job_id: str, following: bool = False) -> None:
        self.job_id = job_id
        self.following = following
        self.handle: Any = None
        self._names: Optional[tuple[str, ...]] = None
        if _in_kernel():
            from IPython.display import display

            bundle = {METRICS_MIME: self._data(), "text/plain": ""} if following else {"text/plain": ""}
            self.handle = display(bundle, raw=True, display_id=True)

    def _data(self) -> dict[str, Any]:
        return {"job_id": self.job_id, **({"following": True} if self.following else {})}

    def show(self, job: dict[str, Any]) -> None:
        """Updated when the series change, and at the end (the text then holds the last values)."""
        names = tuple(sorted(_custom_series(job)))
        if self.handle is None or not names or (names == self._names and job["status"] not in TERMINAL):
            return
        self._names = names
        self.handle.update({METRICS_MIME: self._data(), "text/plain": metrics_text(job)}, raw=True)


class Handle:
    """What a job handle and a workflow run handle share: a record read from the service while
    it can still change, and waiting for its end."""

    kind = "job"
    over: tuple[str, ...] = TERMINAL  # statuses after which the record never changes

    def __init__(self, service: JobsService, data: dict[str, Any]):
        self._service = service
        self._data = data

    def _fetch(self) -> dict[str, Any]:
        return self._service.get(self.id)

    def refresh(self) -> dict[str, Any]:
        """The current record (a finished one never changes, so it is not fetched again)."""
        if self._data["status"] not in self.over:
            self._data = self._fetch()
        return self._data

    @property
    def id(self) -> str:
        return self._data["id"]

    @property
    def status(self) -> str:
        return self.refresh()["status"]

    def wait(self, timeout: Optional[float] = None, poll: float = 0.2) -> Any:
        """Block until it ends (or `timeout` seconds, then TimeoutError); returns itself."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status not in self.over:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.kind} {self.id} is still {self._data['status']} after {timeout} s")
            time.sleep(poll)
        return self


class Job(Handle):
    """A job handle: `id`, `status`, `wait()`, `logs()`, `follow()`, `cancel()`, `artifacts`,
    `download(path)`. Attributes read the service each time, so they are current."""

    @property
    def exit_code(self) -> Optional[int]:
        return self.refresh().get("exit_code")

    @property
    def info(self) -> dict[str, Any]:
        """The job as the service reports it (spec, times, reason, message, ...)."""
        return self.refresh()

    @property
    def artifacts(self) -> list[str]:
        return [a["path"] for a in self._service.artifacts(self.id)]

    # -- actions ----------------------------------------------------------------------------
    def logs(self, stream: Optional[str] = None) -> str:
        """The output so far (both streams interleaved, or one of 'stdout'/'stderr')."""
        return "".join(c["text"] for c in self._service.logs(self.id)
                       if "text" in c and (stream is None or c["stream"] == stream))

    def follow(self) -> Job:
        """Print the output into this cell as it comes, until the job ends."""
        stream_output(self._service, self.id)
        self._data = self._service.get(self.id)  # the final record: times, exit code, message
        return self

    def cancel(self) -> Job:
        self._data = self._service.cancel(self.id)
        return self

    def endpoint(self, name: str, path: str = "") -> str:
        """The URL of the job's endpoint `name` (and `path` under it) with this kernel's
        credential in it: `requests.get(job.endpoint("api", "predict"))` just works. Its state
        is in `job.info["endpoints"]` (waiting, ready, gone)."""
        return self._service.endpoint_url(self.refresh(), name, path)

    def metrics(self, *names: str, as_frame: bool = False) -> Any:
        """The job's series so far, {name: {"steps", "values", "times"}} (only `names` if given);
        `as_frame=True`: a pandas DataFrame, one column per series, indexed by step."""
        series: dict[str, dict[str, list]] = {}
        since = None
        while True:
            page = self._service.metrics(self.id, since=since, names=",".join(names) or None)
            for name, part in page["series"].items():
                into = series.setdefault(name, {"steps": [], "values": [], "times": []})
                into["steps"] += part["steps"]
                into["values"] += part["values"]
                into["times"] += part["times"] or [None] * len(part["steps"])  # null: no point had one
            if not page["more"]:
                break
            since = page["next"]
        if not as_frame:
            return series
        import pandas as pd

        columns = {name: pd.Series(s["values"], index=s["steps"]).groupby(level=0).last() for name, s in series.items()}
        return pd.DataFrame(columns).rename_axis("step")

    def download(self, path: str, dest: Optional[str] = None) -> Path:
        """Save an artifact (to `dest`, default: its own name in the current folder)."""
        target = Path(dest or Path(path).name)
        if target.is_dir():
            target = target / Path(path).name
        target.write_bytes(self._service.download(self.id, path))
        return target

    def __repr__(self) -> str:
        """The current state (a handle shown long after it was made must not say "queued")."""
        try:
            data = self.refresh()
        except ServiceError:  # unreachable: the last known state beats no repr
            data = self._data
        code = _shown_exit(data)
        extra = f" exit={code}" if code is not None else ""
        return f"<Job {data['id']} {data['status']} on {data['backend']}{extra}>"

    def _repr_html_(self) -> str:
        return f"<code>{html.escape(repr(self))}</code>"


def stream_output(service: JobsService, job_id: str, offset: int = 0, patience: float = 120,
                  items: Optional[Iterator[dict[str, Any]]] = None) -> dict[str, Any]:
    """Copy the job's output to this cell's stdout/stderr as it arrives; returns the final
    status item. A dropped connection (e.g. a server restart) resumes at the last offset,
    with nothing lost or repeated, for up to `patience` seconds without an answer. `items`: a
    follow already open (`submit_following`'s), read first."""
    failing_since: Optional[float] = None
    while True:
        try:
            for item in items or service.logs(job_id, offset, follow=True):
                failing_since = None
                if "text" not in item:
                    return item
                out = sys.stderr if item["stream"] == "stderr" else sys.stdout
                out.write(item["text"])
                out.flush()
                offset = item["next"]
        except ServiceError as exc:
            if exc.status is not None:  # the service answered: a real refusal
                raise
        except (OSError, ValueError, http.client.HTTPException):
            pass
        items = None  # dropped: resume with a follow of its own
        failing_since = failing_since or time.monotonic()
        if time.monotonic() - failing_since > patience:
            raise ServiceError(f"lost the connection to the job service for {patience:g} s; "
                               f"the job goes on: %job logs -f {job_id}")
        time.sleep(0.5)


class _Ticker(threading.Thread):
    """Keeps a status line current while a job runs (blocking or detached); the caller shows
    the first state, so the line exists before any output."""

    def __init__(self, service: JobsService, job_id: str, line: _StatusLine, chart: _MetricsDisplay):
        super().__init__(name=f"jupyter-jobs-status-{job_id}", daemon=True)
        self.service, self.job_id, self.line, self.chart = service, job_id, line, chart
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                job = self.service.get(self.job_id)
            except Exception:
                continue
            done = job["status"] in TERMINAL
            try:
                artifacts = self.service.artifacts(self.job_id) if done else None
            except Exception:
                artifacts = None
            self.line.show(status_text(job, artifacts), job)
            self.chart.show(job)
            if done:
                return


def _cancel_interrupted(job: Job, patience: float = 10) -> dict[str, Any]:
    """Cancel the job of an interrupted cell and give it a moment to end, so the one line said
    about it is its final state; a 409 means it had ended on its own."""
    try:
        job.cancel().wait(patience)
    except ServiceError as exc:
        if exc.status != 409:
            raise
    except TimeoutError:
        pass
    return job.refresh()


def _browser_url(service: JobsService, job: dict[str, Any], name: str) -> str:
    """The endpoint's own origin where it has one; else a path on the page's own server (the
    kernel may know that server by another host name)."""
    url = service.endpoint_url(job, name)
    own = any(e.get("url") for e in job.get("endpoints") or [] if e["name"] == name)
    return url if own else urlsplit(url).path


def run_and_watch(service: JobsService, spec: dict[str, Any], *, detach: bool, raise_on_failure: bool) -> Job:
    """Submit a job, show its status line, then either stream its output below that line until
    it ends or return at once (the line keeps updating). Interrupting the kernel cancels the
    job and says so in one line."""
    items: Optional[Iterator[dict[str, Any]]] = None
    if detach:
        job = Job(service, service.submit(spec))
    else:  # its output followed from the start, in the submit's own request
        data, items = service.submit_following(spec)
        job = Job(service, data)
    line = _StatusLine()
    if spec.get("expose"):
        line.browser_url = lambda data, name: _browser_url(service, data, name)
    line.show(status_text(job._data), job._data)
    chart = _MetricsDisplay(job.id, following=not detach)
    ticker = _Ticker(service, job.id, line, chart)
    ticker.start()
    if detach:
        return job
    try:
        stream_output(service, job.id, items=items)
    except KeyboardInterrupt:
        ticker.stop.set()
        ticker.join(5)
        final = _cancel_interrupted(job)
        line.show(status_text(final), final)
        raise JobInterrupted(f"Job {job.id} {final['status']} (interrupted).") from None
    ticker.stop.set()
    ticker.join(5)  # its last update must not land after the final one
    final = job.refresh()
    line.show(status_text(final, service.artifacts(job.id)), final)
    chart.show(final)
    if final["status"] != "succeeded" and raise_on_failure:
        raise JobFailed(final)
    return job
