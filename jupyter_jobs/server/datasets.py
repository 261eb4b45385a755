"""REST handlers for datasets: thin adapters over the platform's Datasets."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..domain.errors import SpecError
from .handlers import BaseHandler


def _version(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise SpecError.one("version", f"{text!r} is not a version number (1, 2, ...)")
    return int(text)


class DatasetsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.platform.datasets.list())


class DatasetHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(await self.platform.datasets.get(name))


class DatasetVersionsHandler(BaseHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, name: str) -> None:
        body = self.body_json()
        if not isinstance(body, dict):
            raise SpecError.one("body", "a JSON object: {\"folder\": ...} or {\"job\": ..., \"path\": ...}")
        made = await self.platform.datasets.create(name, body)
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{made['version']}")
        self.reply(made, 201)


class DatasetVersionHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str, version: str) -> None:
        self.reply(await self.platform.datasets.version(name, _version(version)))

    @web.authenticated
    @authorized("execute")
    async def delete(self, name: str, version: str) -> None:
        await self.platform.datasets.delete(name, _version(version))
        self.set_status(204)
        self.finish()


_NAME = r"(?P<name>[^/]+)"
handlers = [
    (r"/jupyter-jobs/datasets/?", DatasetsHandler),
    (rf"/jupyter-jobs/datasets/{_NAME}", DatasetHandler),
    (rf"/jupyter-jobs/datasets/{_NAME}/versions/?", DatasetVersionsHandler),
    (rf"/jupyter-jobs/datasets/{_NAME}/versions/(?P<version>[^/]+)", DatasetVersionHandler),
]
