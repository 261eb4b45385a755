"""REST handlers for datasets and models: thin adapters over the platform's Datasets (one per
kind), told which by the route."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ..datasets.datasets import Datasets
from ..domain.errors import SpecError
from ..storage.artifacts import write_zip
from ..storage.pipe import stream_from_thread
from .handlers import BaseHandler


def _version(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise SpecError.one("version", f"{text!r} is not a version number (1, 2, ...)")
    return int(text)


class _KindHandler(BaseHandler):
    def initialize(self, kind: str, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(**kwargs)
        self.kind = kind

    @property
    def versions(self) -> Datasets:
        return self.platform.datasets if self.kind == "datasets" else self.platform.models


class ListHandler(_KindHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.versions.list())


class NameHandler(_KindHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(await self.versions.get(name))


class VersionsHandler(_KindHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, name: str) -> None:
        body = self.body_json()
        if not isinstance(body, dict):
            raise SpecError.one("body", "a JSON object: {\"folder\": ...} or {\"job\": ..., \"path\": ...}")
        made = await self.versions.create(name, body)
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{made['version']}")
        self.reply(made, 201)


class VersionHandler(_KindHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str, version: str) -> None:
        self.reply(await self.versions.version(name, _version(version)))

    @web.authenticated
    @authorized("execute")
    async def delete(self, name: str, version: str) -> None:
        await self.versions.delete(name, _version(version))
        self.set_status(204)
        self.finish()


class DownloadHandler(_KindHandler):
    """A version's files as one zip, streamed as it is written (the client's pace holds it back)."""

    @web.authenticated
    @authorized
    async def get(self, name: str, version: str) -> None:
        folder = await self.versions.folder(name, _version(version))
        chunks = stream_from_thread(lambda out: write_zip(folder, out))
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f"attachment; filename=\"{name}-v{int(version)}.zip\"")
        try:
            async for chunk in chunks:
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return
        finally:
            await chunks.aclose()
        self.finish()


class JobVersionsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """The dataset and model versions a job made."""
        self.reply({"datasets": await self.platform.datasets.made_by(job_id),
                    "models": await self.platform.models.made_by(job_id)})


_NAME, _VERSION = r"(?P<name>[^/]+)", r"(?P<version>[^/]+)"
handlers = [(r"/jupyter-jobs/jobs/(?P<job_id>[^/]+)/versions", JobVersionsHandler)] + [
    route
    for kind in ("datasets", "models")
    for route in (
        (rf"/jupyter-jobs/{kind}/?", ListHandler, {"kind": kind}),
        (rf"/jupyter-jobs/{kind}/{_NAME}", NameHandler, {"kind": kind}),
        (rf"/jupyter-jobs/{kind}/{_NAME}/versions/?", VersionsHandler, {"kind": kind}),
        (rf"/jupyter-jobs/{kind}/{_NAME}/versions/{_VERSION}", VersionHandler, {"kind": kind}),
        (rf"/jupyter-jobs/{kind}/{_NAME}/versions/{_VERSION}/download", DownloadHandler, {"kind": kind}),
    )
]
