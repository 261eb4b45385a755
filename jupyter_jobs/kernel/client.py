"""How the kernel reaches the job service: the server's REST API, or an embedded service.

A kernel started by a Jupyter server with the extension finds `JUPYTER_JOBS_URL` and
`JUPYTER_JOBS_TOKEN` in its environment (the extension puts them there), so nothing needs
configuring. Anywhere else (plain IPython), an in-process service on the same history runs
the jobs instead. Both speak the same small interface, in plain dicts as the REST API does.

Only the standard library is imported up front: the `jupyter jobs` CLI imports this module on
every command, and the service's own modules (settings, errors, pydantic) cost it most of a
second; EmbeddedService imports them when one is made.
"""

from __future__ import annotations

import abc
import asyncio
import http.client
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import quote, urlencode, urlsplit

if TYPE_CHECKING:
    from ..domain.errors import JobsError

#: names this module offers from the service's settings, imported when first asked for
_FROM_CONFIG = ("ENV_ROOT", "ENV_TOKEN", "ENV_URL", "JobsConfig")


def __getattr__(name: str) -> Any:
    """`from .client import ENV_URL` (the magic does) without importing the settings up front."""
    if name in _FROM_CONFIG:
        from ..app import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ServiceError(RuntimeError):
    """The service refused or could not be reached; `str()` is meant for the user."""

    def __init__(self, message: str, status: Optional[int] = None, errors: Optional[list] = None):
        super().__init__(message)
        self.status = status
        self.errors = errors or []


class JobsService(abc.ABC):
    """What the magic needs from the job service."""

    #: the folder `workspace` paths are relative to
    root_dir: Path
    where: str

    @abc.abstractmethod
    def backends(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def submit(self, spec: dict[str, Any]) -> dict[str, Any]: ...

    def submit_following(self, spec: dict[str, Any]) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
        """Submit, and follow its log from the start: the job, and the items `logs(follow=True)`
        yields (over REST, one request for both)."""
        job = self.submit(spec)
        return job, self.logs(job["id"], follow=True)

    @abc.abstractmethod
    def get(self, job_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def list(self, **query: Any) -> dict[str, Any]: ...

    @abc.abstractmethod
    def cancel(self, job_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def artifacts(self, job_id: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def download(self, job_id: str, path: str) -> bytes: ...

    @abc.abstractmethod
    def metrics(self, job_id: str, since: Optional[str] = None, names: Optional[str] = None) -> dict[str, Any]:
        """One page of the job's series after `since` (a MetricsPage)."""

    @abc.abstractmethod
    def submit_workflow(self, spec: Any, workspace: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def workflow(self, run_id: str, action: Optional[str] = None) -> dict[str, Any]:
        """A workflow run; `action` "cancel" or "rerun" does that first."""

    @abc.abstractmethod
    def logs(self, job_id: str, offset: int = 0, follow: bool = False) -> Iterator[dict[str, Any]]:
        """NDJSON items as the REST API sends them (chunks, then the final status with follow)."""

    @abc.abstractmethod
    def rerun(self, job_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def export(self, job_id: str, fmt: str = "yaml") -> str:
        """The job's spec as a job file."""

    @abc.abstractmethod
    def workflows(self, **query: Any) -> dict[str, Any]: ...

    @abc.abstractmethod
    def schedules(self, action: str, schedule_id: Optional[str] = None, body: Any = None) -> Any:
        """list | create (body) | get | pause | resume | delete."""

    @abc.abstractmethod
    def versions(self, kind: str, action: str, name: Optional[str] = None, version: Optional[int] = None,
                 body: Any = None) -> Any:
        """Of `kind` (datasets, models): list | get (name) | create (name, body) | version (name,
        version) | delete (name, version)."""

    def datasets(self, action: str, name: Optional[str] = None, version: Optional[int] = None,
                 body: Any = None) -> Any:
        return self.versions("datasets", action, name, version, body)

    @abc.abstractmethod
    def definitions(self, action: str, name: Optional[str] = None, body: Any = None) -> Any:
        """Named workflows: list | history (name) | save (name, body) | run (name, body) | runs (name)."""

    @abc.abstractmethod
    def deployments(self, action: str, name: Optional[str] = None, body: Any = None) -> Any:
        """Deployments: list | get (name) | create (body) | update (name, body) | delete (name)."""

    def models(self, action: str, name: Optional[str] = None, version: Optional[int] = None,
               body: Any = None) -> Any:
        return self.versions("models", action, name, version, body)

    @abc.abstractmethod
    def endpoint_url(self, job: dict[str, Any], name: str, path: str = "") -> str:
        """Where a job's endpoint is reached, from this process or a browser: its address holds
        its key, so a plain GET needs no other credential."""


def kernel_origin() -> Optional[str]:
    """`kernel:<id>` of the kernel this runs in (from its connection file's name), if any."""
    if "ipykernel" not in sys.modules:  # no kernel runs this (the CLI): importing it costs ~0.3 s
        return None
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).stem
    except Exception:  # not in a kernel
        return None
    kernel_id = name.removeprefix("kernel-")
    return f"kernel:{kernel_id}" if re.fullmatch(r"[A-Za-z0-9-]{1,64}", kernel_id) else None


class RestService(JobsService):
    """The job service of a Jupyter server, over its REST API (stdlib HTTP, no event loop)."""

    def __init__(self, url: str, token: str, root_dir: Optional[Path] = None):
        parts = urlsplit(url)
        self.url = url.rstrip("/") + "/"
        self.where = self.url
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._https = parts.scheme == "https"
        self._base = (parts.path.rstrip("/") + "/jupyter-jobs/").replace("//", "/")
        self._headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
        if origin := kernel_origin():  # the browser showing this kernel's notebook is told when jobs end
            self._headers["X-Jupyter-Jobs-Origin"] = origin
        if root_dir is None:
            from ..app.config import ENV_ROOT

            root_dir = Path(os.environ.get(ENV_ROOT, os.getcwd()))
        self.root_dir = root_dir

    def _connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def _request(self, method: str, path: str, body: Any = None, query: Optional[dict] = None,
                 timeout: Optional[float] = 60, stream: bool = False, raw: bool = False) -> Any:
        target = self._base + path + ("?" + urlencode(query) if query else "")
        conn = self._connection(timeout)
        try:
            conn.request(method, target, json.dumps(body) if body is not None else None, self._headers)
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise ServiceError(f"cannot reach the jupyter_jobs service at {self.url}: {exc}") from None
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            try:
                reply = json.loads(raw)
            except ValueError:
                reply = {"message": raw.decode(errors="replace")[:300] or resp.reason}
            if resp.status == 403:
                reply["message"] = f"the Jupyter server at {self.url} refused the credentials ({reply['message']})"
            raise ServiceError(reply.get("message", resp.reason), resp.status, reply.get("errors"))
        if stream:
            return conn, resp
        data = resp.read()
        conn.close()
        if not raw and resp.headers.get("Content-Type", "").startswith("application/json") and data:
            return json.loads(data)
        return data

    def backends(self) -> dict[str, Any]:
        return self._request("GET", "backends")

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "jobs", spec)

    def submit_following(self, spec: dict[str, Any]) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
        items = self._ndjson(*self._request("POST", "jobs", spec, query={"follow": "true"}, timeout=None, stream=True))
        first = next(items, None)
        if first is None or "job" not in first:
            raise ServiceError(f"the jupyter_jobs service at {self.url} ended its reply before naming the job")
        return first["job"], items

    def get(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"jobs/{quote(job_id)}")

    def list(self, **query: Any) -> dict[str, Any]:
        return self._request("GET", "jobs", query={k: v for k, v in query.items() if v is not None})

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"jobs/{quote(job_id)}/cancel", {})

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return self._request("GET", f"jobs/{quote(job_id)}/artifacts")["artifacts"]

    def download(self, job_id: str, path: str) -> bytes:
        return self._request("GET", f"jobs/{quote(job_id)}/artifacts/{quote(path)}", raw=True)

    def metrics(self, job_id: str, since: Optional[str] = None, names: Optional[str] = None) -> dict[str, Any]:
        query = {k: v for k, v in {"since": since, "names": names}.items() if v}
        return self._request("GET", f"jobs/{quote(job_id)}/metrics", query=query)

    def submit_workflow(self, spec: Any, workspace: str) -> dict[str, Any]:
        return self._request("POST", "workflows", {"spec": spec, "workspace": workspace})

    def workflow(self, run_id: str, action: Optional[str] = None) -> dict[str, Any]:
        if action:
            return self._request("POST", f"workflows/{quote(run_id)}/{action}", {})
        return self._request("GET", f"workflows/{quote(run_id)}")

    def rerun(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"jobs/{quote(job_id)}/rerun", {})

    def export(self, job_id: str, fmt: str = "yaml") -> str:
        return self._request("GET", f"jobs/{quote(job_id)}/spec", query={"format": fmt}, raw=True).decode()

    def workflows(self, **query: Any) -> dict[str, Any]:
        return self._request("GET", "workflows", query={k: v for k, v in query.items() if v is not None})

    def schedules(self, action: str, schedule_id: Optional[str] = None, body: Any = None) -> Any:
        path = "schedules" + (f"/{quote(schedule_id)}" if schedule_id else "")
        if action in ("pause", "resume"):
            return self._request("POST", f"{path}/{action}", {})
        method = {"list": "GET", "get": "GET", "create": "POST", "delete": "DELETE"}[action]
        return self._request(method, path, body)

    def versions(self, kind: str, action: str, name: Optional[str] = None, version: Optional[int] = None,
                 body: Any = None) -> Any:
        path = kind + (f"/{quote(name)}" if name else "")
        path += "/versions" if action in ("create", "version", "delete") else ""
        path += f"/{version}" if version is not None else ""
        method = {"create": "POST", "delete": "DELETE"}.get(action, "GET")
        return self._request(method, path, body)

    def definitions(self, action: str, name: Optional[str] = None, body: Any = None) -> Any:
        path = "workflow-definitions" + (f"/{quote(name)}" if name else "") + ("/runs" if action in (
            "run", "runs") else "")
        method = {"save": "PUT", "run": "POST"}.get(action, "GET")
        return self._request(method, path, body)

    def deployments(self, action: str, name: Optional[str] = None, body: Any = None) -> Any:
        method = {"create": "POST", "update": "PUT", "delete": "DELETE"}.get(action, "GET")
        return self._request(method, "deployments" + (f"/{quote(name)}" if name else ""), body)

    def endpoint_url(self, job: dict[str, Any], name: str, path: str = "") -> str:
        found = next((e for e in job.get("endpoints") or [] if e["name"] == name), None)
        if found is None:
            raise ServiceError(f"job {job['id']} exposes no endpoint {name!r}", 404)
        return (found.get("url") or self.url + found["path"]) + path.lstrip("/")

    def logs(self, job_id: str, offset: int = 0, follow: bool = False) -> Iterator[dict[str, Any]]:
        query = {"offset": offset, "follow": "true" if follow else "false"}
        return self._ndjson(*self._request("GET", f"jobs/{quote(job_id)}/logs", query=query, timeout=None,
                                           stream=True))

    @staticmethod
    def _ndjson(conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
        try:
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


class EmbeddedService(JobsService):
    """The job service running inside this process (plain IPython): same history, same jobs.

    Its event loop runs in a daemon thread; each call hops onto it and waits. A thin adapter
    over JobService, as the REST handlers are: the same shapes, the same errors.
    """

    def __init__(self, root_dir: Optional[Path] = None, data_dir: Optional[Path] = None):
        from traitlets.config import Config

        from ..app.config import JobsConfig

        self.root_dir = Path(root_dir or os.getcwd())
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="jupyter-jobs-embedded", daemon=True).start()
        config = Config()
        if data_dir:
            config.JobsConfig.data_dir = str(data_dir)
        settings = JobsConfig(config=config)
        from ..app.compose import build  # the service's own modules, only when embedded

        self.platform = build(settings, self.root_dir)
        self.service = self.platform.jobs
        self.where = f"the service embedded in this kernel (history in {settings.data_dir})"
        self._call(self.platform.start())

    def _call(self, coro: Any) -> Any:
        from ..domain.errors import JobsError

        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result()
        except JobsError as exc:
            raise _service_error(exc) from None

    def backends(self) -> dict[str, Any]:
        return self._call(self.service.backends_info())

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call(self.service.submit(spec))

    def get(self, job_id: str) -> dict[str, Any]:
        return self._call(self.service.get(job_id))

    def list(self, **query: Any) -> dict[str, Any]:
        return self._call(self.service.list(**query))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call(self.service.cancel(job_id))

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return self._call(self.service.artifacts(job_id))["artifacts"]

    def metrics(self, job_id: str, since: Optional[str] = None, names: Optional[str] = None) -> dict[str, Any]:
        return self._call(self.service.metrics(job_id, names=names, since=since))

    def submit_workflow(self, spec: Any, workspace: str) -> dict[str, Any]:
        return self._call(self.platform.runs.submit({"spec": spec, "workspace": workspace}))

    def rerun(self, job_id: str) -> dict[str, Any]:
        return self._call(self.service.rerun(job_id))

    def export(self, job_id: str, fmt: str = "yaml") -> str:
        return self._call(self.service.export(job_id, fmt))[0]

    def workflows(self, **query: Any) -> dict[str, Any]:
        return self._call(self.platform.runs.list(**query))

    def schedules(self, action: str, schedule_id: Optional[str] = None, body: Any = None) -> Any:
        given = self.platform.schedules
        act = {"list": lambda: given.list(), "create": lambda: given.create(body),
               "get": lambda: given.get(schedule_id),
               "pause": lambda: given.pause(schedule_id), "resume": lambda: given.resume(schedule_id),
               "delete": lambda: given.delete(schedule_id)}[action]
        return self._call(act())

    def versions(self, kind: str, action: str, name: Optional[str] = None, version: Optional[int] = None,
                 body: Any = None) -> Any:
        given = self.platform.datasets if kind == "datasets" else self.platform.models
        act = {"list": lambda: given.list(), "get": lambda: given.get(str(name)),
               "create": lambda: given.create(str(name), body), "version": lambda: given.version(str(name), int(
                   version or 0)), "delete": lambda: given.delete(str(name), int(version or 0))}[action]
        return self._call(act())

    def deployments(self, action: str, name: Optional[str] = None, body: Any = None) -> Any:
        given = self.platform.deployments
        act = {"list": lambda: given.list(), "get": lambda: given.get(str(name)), "create": lambda: given.create(body),
               "update": lambda: given.update(str(name), body), "delete": lambda: given.delete(str(name))}[action]
        return self._call(act())

    def definitions(self, action: str, name: Optional[str] = None, body: Any = None) -> Any:
        given = self.platform.definitions
        act = {"list": lambda: given.list(), "history": lambda: given.history(str(name)),
               "save": lambda: given.save(str(name), body), "run": lambda: given.run(str(name), body),
               "runs": lambda: given.run_list(str(name))}[action]
        return self._call(act())

    def endpoint_url(self, job: dict[str, Any], name: str, path: str = "") -> str:
        """No Jupyter server here: the job's own address (it runs where this process does)."""
        host, port = self._call(self.platform.endpoints.target(job["id"], name))
        return f"http://{host}:{port}/{path.lstrip('/')}"

    def workflow(self, run_id: str, action: Optional[str] = None) -> dict[str, Any]:
        runs = self.platform.runs
        return self._call(getattr(runs, action)(run_id) if action else runs.get(run_id))

    def download(self, job_id: str, path: str) -> bytes:
        async def read() -> bytes:
            fh, size = await self.service.open_artifact(job_id, path)
            with fh:
                return await asyncio.to_thread(fh.read, size)

        return self._call(read())

    def logs(self, job_id: str, offset: int = 0, follow: bool = False) -> Iterator[dict[str, Any]]:
        items: list = []
        ready = threading.Condition()
        done = object()
        gone = threading.Event()

        def put(item: Any) -> None:
            with ready:
                items.append(item)
                ready.notify()

        from ..domain.errors import JobsError

        async def pump() -> None:
            try:
                async for item in self.service.logs(job_id, offset, follow_=follow, gone=gone.is_set):
                    put(item)
            except JobsError as exc:  # handed over to the reading thread
                put(_service_error(exc))
            put(done)

        asyncio.run_coroutine_threadsafe(pump(), self._loop)
        try:
            while True:
                with ready:
                    while not items:
                        ready.wait()
                    batch, items[:] = list(items), []
                for item in batch:
                    if item is done:
                        return
                    if isinstance(item, ServiceError):
                        raise item
                    yield item
        finally:
            gone.set()


def _service_error(exc: JobsError) -> ServiceError:
    reply = exc.public()
    return ServiceError(reply["message"], exc.status, reply.get("errors"))


_service: Optional[JobsService] = None


def connect() -> JobsService:
    """The service this kernel uses: its server's, when it has one, else an embedded one."""
    global _service
    if _service is None:
        from ..app.config import ENV_TOKEN, ENV_URL

        url, token = os.environ.get(ENV_URL), os.environ.get(ENV_TOKEN)
        _service = RestService(url, token or "") if url else EmbeddedService()
    return _service
