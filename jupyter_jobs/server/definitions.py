"""REST handlers for named workflows: thin adapters over the platform's Definitions."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .handlers import BaseHandler


class DefinitionsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.platform.definitions.list())


class DefinitionHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(await self.platform.definitions.history(name))

    @web.authenticated
    @authorized("execute")
    async def put(self, name: str) -> None:
        self.reply(await self.platform.definitions.save(name, self.body_json()), 201)


class DefinitionRunsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(await self.platform.definitions.run_list(name))

    @web.authenticated
    @authorized("execute")
    async def post(self, name: str) -> None:
        run = await self.platform.definitions.run(name, self.body_json())
        self.set_header("Location", f"{self.settings.get('base_url', '/')}jupyter-jobs/workflows/{run['id']}")
        self.reply(run, 201)


_NAME = r"(?P<name>[^/]+)"
handlers = [
    (r"/jupyter-jobs/workflow-definitions/?", DefinitionsHandler),
    (rf"/jupyter-jobs/workflow-definitions/{_NAME}", DefinitionHandler),
    (rf"/jupyter-jobs/workflow-definitions/{_NAME}/runs/?", DefinitionRunsHandler),
]
