"""REST handlers: HTTP in, JobService call, JSON out. Nothing else lives here."""

from __future__ import annotations

import asyncio
import hmac
import json
import mimetypes
import re
from collections.abc import AsyncGenerator
from pathlib import Path, PurePosixPath
from typing import Any, Optional
from urllib.parse import quote

from jupyter_server.auth import Authorizer, User
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.iostream import StreamClosedError

from ..domain.errors import JobsError, SpecError
from ..app.compose import Platform
from ..jobs.service import JobService

OPENAPI = Path(__file__).resolve().parent.parent / "openapi.json"
#: the largest request body (a spec is a few KiB; its fields have their own limits)
MAX_BODY = 1 << 20


ORIGIN_HEADER = "X-Jupyter-Jobs-Origin"
_ORIGIN = re.compile(r"(kernel|browser):[A-Za-z0-9-]{1,64}")


class _KernelAuthorizer(Authorizer):
    """Requests carrying the secret this server gave its own kernels may use the job API."""

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        return resource == "jupyter_jobs"


_KERNEL_AUTHORIZER = _KernelAuthorizer()


class JobsHandlerMixin:
    """What every jupyter_jobs handler shares: the service, the kernel-secret path into Jupyter's
    auth, and errors as JSON (domain errors become 400/404/409 with a message, never a traceback)."""

    auth_resource = "jupyter_jobs"

    @property
    def platform(self) -> Platform:
        """The job core and its features (the composition root built them)."""
        return self.settings["jupyter_jobs_platform"]

    @property
    def service(self) -> JobService:
        return self.platform.jobs

    _kernel_client = False

    async def prepare(self) -> None:  # type: ignore[override]
        secret = self.settings.get("jupyter_jobs_kernel_token")
        sent = self.request.headers.get("Authorization", "")
        if secret and hmac.compare_digest(sent.encode(), f"token {secret}".encode()):
            # a kernel of this server (it was given the secret): it acts as the server's owner,
            # under the checks Jupyter makes of any token-authenticated request (a header token
            # needs no XSRF cookie: browsers cannot send one cross-site)
            self._kernel_client = True
            if not self.check_host():
                raise web.HTTPError(403)
            self.current_user = self._jupyter_current_user = User(username="jupyter-jobs-kernel")
            self.set_cors_headers()
            if not self.check_origin():
                raise web.HTTPError(404)
        else:
            await super().prepare()
        await self.service.start()

    @property
    def authorizer(self) -> Any:  # type: ignore[override]
        return _KERNEL_AUTHORIZER if self._kernel_client else super().authorizer

    def no_delay(self) -> None:
        """Send each flush at once (TCP_NODELAY), for a reply that streams as things happen. With
        Nagle's algorithm on, a small write behind an unacknowledged one waits for the client's
        delayed ACK: measured, a log's first line reached the client 7-12 ms after it was written."""
        stream = getattr(self.request.connection, "stream", None)  # type: ignore[attr-defined]
        if stream is not None:
            stream.set_nodelay(True)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, JobsError):
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reply: dict[str, Any] = {}
        if isinstance(exc, JobsError):
            self.set_status(exc.status)
            reply = exc.public()
        elif isinstance(exc, web.HTTPError):
            reply["message"] = exc.log_message or exc.reason or self._reason
        elif exc is not None:
            reply["message"] = "internal error in jupyter_jobs; the server log has the details"
        else:
            reply["message"] = self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(reply))


class BaseHandler(JobsHandlerMixin, ExtensionHandlerMixin, APIHandler):
    """JSON in and out."""

    def origin(self) -> Optional[str]:
        """Who submits: `X-Jupyter-Jobs-Origin: kernel:<id>` or `browser:<id>` (for notifications)."""
        value = self.request.headers.get(ORIGIN_HEADER)
        if value is not None and not _ORIGIN.fullmatch(value):
            raise SpecError.one(ORIGIN_HEADER, "must be kernel:<id> or browser:<id> (letters, digits, -, at most 64)")
        return value

    def body_json(self) -> Any:
        body = self.request.body or b"null"
        if len(body) > MAX_BODY:
            raise SpecError.one("body", f"the request body is {len(body)} bytes; at most {MAX_BODY} are accepted")
        try:
            return json.loads(body)
        except RecursionError:
            raise SpecError.one("body", "JSON nested too deeply") from None
        except ValueError as exc:
            raise SpecError.one("body", f"not valid JSON: {exc}") from None

    def query_int(self, name: str, default: Optional[int], low: int, high: int) -> Optional[int]:
        raw = self.get_query_argument(name, None)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)  # type: ignore[arg-type]
        except ValueError:
            raise SpecError.one(name, f"must be an integer, not {raw!r}") from None
        if not low <= value <= high:
            raise SpecError.one(name, f"must be between {low} and {high}")
        return value

    def query_bool(self, name: str) -> bool:
        raw = (self.get_query_argument(name, "") or "").lower()
        if raw not in ("", "0", "1", "true", "false", "yes", "no"):
            raise SpecError.one(name, f"must be true or false, not {raw!r}")
        return raw in ("1", "true", "yes")

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))


class StreamHandler(BaseHandler):
    """NDJSON that is written as it is produced, until the producer ends or the reader leaves."""

    _gone = False

    def on_connection_close(self) -> None:
        self._gone = True

    async def stream(self, items: AsyncGenerator[Any, None], head: Any = None) -> None:
        """Items are dicts, or lines already encoded (large ones are, off the event loop); `head`,
        when given, is the first line."""
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self.no_delay()
        try:
            if head is not None:
                self.write(json.dumps(head) + "\n")
            await self.flush()
            async for item in items:
                self.write((item if isinstance(item, str) else json.dumps(item)) + "\n")
                await self.flush()
            self.finish()
        except StreamClosedError:
            pass
        finally:
            await items.aclose()


class BackendsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.service.backends_info())


class JobsHandler(StreamHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.service.list(
            status=",".join(self.get_query_arguments("status")),
            project=self.get_query_argument("project", None),
            q=self.get_query_argument("q", None),
            tag=self.get_query_argument("tag", None),
            limit=self.get_query_argument("limit", None),
            cursor=self.get_query_argument("cursor", None),
            workflow=self.get_query_argument("workflow", None),
            schedule=self.get_query_argument("schedule", None),
            origin=",".join(self.get_query_arguments("origin")),
        ))

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        if not self.query_bool("follow"):
            job = await self.service.submit(self.body_json(), origin=self.origin())
            self.set_header("Location", self.request.path.rstrip("/") + "/" + job["id"])
            self.reply(job, 201)
            return
        # submit and follow: {"job": ...}, then its log as GET .../logs?follow=true streams it
        job, chunks = await self.service.submit_following(self.body_json(), self.origin(), lambda: self._gone)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + job["id"])
        self.set_status(201)
        await self.stream(chunks, head={"job": job})


class JobHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        self.reply(await self.service.get(job_id))

    @web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        await self.service.delete(job_id)
        self.set_status(204)
        self.finish()


class SpecFileHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        fmt = self.get_query_argument("format", "yaml")
        text, left_out = await self.service.export(job_id, fmt)
        self.set_header("Content-Type", "application/json" if fmt == "json" else "application/yaml")
        if left_out:
            self.set_header("X-Jupyter-Jobs-Left-Out", ",".join(f"env.{k}" for k in left_out))
        self.finish(text)


class EnvironmentsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.service.environments_info())


class CancelHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        self.reply(await self.service.cancel(job_id))


class RerunHandler(BaseHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, job_id: str) -> None:
        self.reply(await self.service.rerun(job_id, origin=self.origin()), 201)


class LogsHandler(StreamHandler):
    """NDJSON: one {"offset", "next", "stream", "text"} per chunk; with follow=true the response
    stays open and ends with the job's final {"status", "exit_code", ...}."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        offset = self.query_int("offset", 0, 0, 2**62) or 0
        follow = self.query_bool("follow")
        # a 404 before any byte is sent
        await self.stream(await self.service.open_logs(job_id, offset, follow_=follow, gone=lambda: self._gone))


class MetricsHandler(StreamHandler):
    """The job's series after `since`; with follow=true, NDJSON pages as points arrive, then the
    job's final status (resumable: pass the last page's `next` as `since`)."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        names = ",".join(self.get_query_arguments("names")) or None
        since = self.get_query_argument("since", None)
        if not self.query_bool("follow"):
            page = await self.service.metrics(job_id, names=names, since=since)
            self.set_header("Content-Type", "application/json")
            self.finish(await asyncio.to_thread(json.dumps, page))  # megabytes: not on the event loop
            return
        await self.service.metrics(job_id, names=names, since=since)  # a 404 or 400 before any byte
        await self.stream(self.service.follow_metrics(job_id, names=names, since=since, gone=lambda: self._gone))


class ArtifactsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        self.reply(await self.service.artifacts(job_id))


class ArtifactHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str, path: str) -> None:
        fh, left = await self.service.open_artifact(job_id, path)
        name = PurePosixPath(path).name
        kind, encoding = mimetypes.guess_type(name)
        self.set_header("Content-Type", "application/octet-stream" if encoding else kind or "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        self.set_header("Content-Length", str(left))  # a growing file: this much
        with fh:
            while left > 0 and (data := await asyncio.to_thread(fh.read, min(left, 1 << 20))):
                left -= len(data)
                self.write(data)
                try:
                    await self.flush()
                except StreamClosedError:
                    return
        self.finish()


class ArtifactsZipHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        prefix = self.get_query_argument("prefix", "")
        chunks = await self.service.artifacts_zip(job_id, prefix)
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f"attachment; filename=\"{job_id}-artifacts.zip\"")
        try:
            async for chunk in chunks:
                self.write(chunk)
                await self.flush()  # the client's pace holds the writer back
        except StreamClosedError:
            return
        finally:
            await chunks.aclose()  # a client that went away stops the writer now
        self.finish()


class WorkflowsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.platform.runs.list(limit=self.get_query_argument("limit", None),
                                                cursor=self.get_query_argument("cursor", None),
                                                status=",".join(self.get_query_arguments("status"))))

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        run = await self.platform.runs.submit(self.body_json())
        self.set_header("Location", self.request.path.rstrip("/") + "/" + run["id"])
        self.reply(run, 201)


class WorkflowHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        self.reply(await self.platform.runs.get(run_id))


class WorkflowCancelHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        self.reply(await self.platform.runs.cancel(run_id))


class WorkflowRerunHandler(BaseHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, run_id: str) -> None:
        self.reply(await self.platform.runs.rerun(run_id))


class HostHandler(BaseHandler):
    """The host's GPUs as this server's user may see them (every job's id for a host admin)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.platform.host.read())


class OpenAPIHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(await asyncio.to_thread(OPENAPI.read_bytes))


_JOB = r"(?P<job_id>[^/]+)"  # any id gets a JSON 404 from the service, never an HTML page
handlers = [
    (r"/jupyter-jobs/backends", BackendsHandler),
    (r"/jupyter-jobs/environments", EnvironmentsHandler),
    (r"/jupyter-jobs/openapi.json", OpenAPIHandler),
    (r"/jupyter-jobs/host", HostHandler),
    (r"/jupyter-jobs/jobs/?", JobsHandler),
    (rf"/jupyter-jobs/jobs/{_JOB}", JobHandler),
    (rf"/jupyter-jobs/jobs/{_JOB}/cancel", CancelHandler),
    (rf"/jupyter-jobs/jobs/{_JOB}/spec", SpecFileHandler),
    (rf"/jupyter-jobs/jobs/{_JOB}/rerun", RerunHandler),
    (rf"/jupyter-jobs/jobs/{_JOB}/logs", LogsHandler),
    (rf"/jupyter-jobs/jobs/{_JOB}/metrics", MetricsHandler),
    (rf"/jupyter-jobs/jobs/{_JOB}/artifacts", ArtifactsHandler),
    (rf"/jupyter-jobs/jobs/{_JOB}/artifacts\.zip", ArtifactsZipHandler),
    (rf"/jupyter-jobs/jobs/{_JOB}/artifacts/(?P<path>.+)", ArtifactHandler),
    (r"/jupyter-jobs/workflows/?", WorkflowsHandler),
    (r"/jupyter-jobs/workflows/(?P<run_id>[^/]+)", WorkflowHandler),
    (r"/jupyter-jobs/workflows/(?P<run_id>[^/]+)/cancel", WorkflowCancelHandler),
    (r"/jupyter-jobs/workflows/(?P<run_id>[^/]+)/rerun", WorkflowRerunHandler),
]
