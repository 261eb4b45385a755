"""REST handlers for schedules: thin adapters over the service's Schedules."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .handlers import BaseHandler


class SchedulesHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.platform.schedules.list(limit=self.get_query_argument("limit", None),
                                                     cursor=self.get_query_argument("cursor", None)))

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        schedule = await self.platform.schedules.create(self.body_json())
        self.set_header("Location", self.request.path.rstrip("/") + "/" + schedule["id"])
        self.reply(schedule, 201)


class ScheduleHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, schedule_id: str) -> None:
        self.reply(await self.platform.schedules.get(schedule_id))

    @web.authenticated
    @authorized("execute")
    async def delete(self, schedule_id: str) -> None:
        await self.platform.schedules.delete(schedule_id)
        self.set_status(204)
        self.finish()


class ScheduleActionHandler(BaseHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, schedule_id: str, action: str) -> None:
        act = self.platform.schedules.pause if action == "pause" else self.platform.schedules.resume
        self.reply(await act(schedule_id))


_ID = r"(?P<schedule_id>[^/]+)"
handlers = [
    (r"/jupyter-jobs/schedules/?", SchedulesHandler),
    (rf"/jupyter-jobs/schedules/{_ID}", ScheduleHandler),
    (rf"/jupyter-jobs/schedules/{_ID}/(?P<action>pause|resume)", ScheduleActionHandler),
]
