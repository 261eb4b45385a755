"""REST handlers for deployments: thin adapters over the platform's Deployments."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .handlers import BaseHandler


class DeploymentsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.platform.deployments.list())

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        made = await self.platform.deployments.create(self.body_json())
        self.set_header("Location", self.request.path.rstrip("/") + "/" + made["name"])
        self.reply(made, 201)


class DeploymentHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(await self.platform.deployments.get(name))

    @web.authenticated
    @authorized("execute")
    async def put(self, name: str) -> None:
        self.reply(await self.platform.deployments.update(name, self.body_json()))

    @web.authenticated
    @authorized("execute")
    async def delete(self, name: str) -> None:
        await self.platform.deployments.delete(name)
        self.set_status(204)
        self.finish()


handlers = [
    (r"/jupyter-jobs/deployments/?", DeploymentsHandler),
    (r"/jupyter-jobs/deployments/(?P<name>[^/]+)/?", DeploymentHandler),
]
