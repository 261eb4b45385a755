"""The ceiling of any handler inside Jupyter's HTTP server: a bare tornado app answering
"ok" (no Jupyter, no auth, no proxy), on the same tornado and interpreter the server uses.
bench_endpoints measures it beside the proxy: a small-response target it misses too cannot
be met by a proxy that lives in the Jupyter server's own HTTP server.

`python tornado_floor.py` prints {"listening": PORT} once it accepts."""

from __future__ import annotations

import asyncio
import json
import socket

from tornado import web
from tornado.httpserver import HTTPServer


class Small(web.RequestHandler):
    def get(self) -> None:
        self.finish("ok " + self.request.uri)


async def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    server = HTTPServer(web.Application([(r"/.*", Small)]))
    server.add_sockets([listener])
    print(json.dumps({"listening": listener.getsockname()[1]}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
