"""A job's web service for the endpoint tests and benchmark (aiohttp, keep-alive): small replies,
a large streamed download, an upload it counts and hashes, server-sent events, a websocket echo,
redirects, headers echoed back, and a health path that answers once a file exists.
Listens on $PORT_<NAME> (argv[1] names the variable; default PORT_API)."""

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

from aiohttp import WSMsgType, web

CHUNK = b"x" * (1 << 20)


async def small(request: web.Request) -> web.Response:
    return web.Response(text="ok " + request.path_qs)


async def big(request: web.Request) -> web.StreamResponse:
    size = int(request.query.get("mb", "100")) << 20
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
    await resp.prepare(request)
    while size > 0:
        part = CHUNK[:min(size, len(CHUNK))]
        await resp.write(part)
        size -= len(part)
    await resp.write_eof()
    return resp


async def upload(request: web.Request) -> web.Response:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"size": size, "sha256": digest.hexdigest()})


async def events(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    for i in range(int(request.query.get("n", "5"))):
        await resp.write(f"data: {i}\n\n".encode())
        await asyncio.sleep(float(request.query.get("every", "0.3")))
    return resp


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("chat", "other"))
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def headers(request: web.Request) -> web.Response:
    return web.json_response({"headers": dict(request.headers), "path": request.raw_path,
                              "peer": request.transport.get_extra_info("sockname")[1]})


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.query["to"])


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ready") if Path("ready").exists() else web.Response(status=503, text="not yet")


async def cookie(request: web.Request) -> web.Response:
    resp = web.Response(text="set")
    resp.set_cookie("app", "1", path="/")
    resp.headers.add("Set-Cookie", f"{request.query['name']}=evil; Path=/")
    return resp


app = web.Application(client_max_size=1 << 40)
app.router.add_get("/big", big)
app.router.add_post("/upload", upload)
app.router.add_put("/upload", upload)
app.router.add_get("/events", events)
app.router.add_get("/ws", echo)
app.router.add_get("/headers", headers)
app.router.add_post("/headers", headers)
app.router.add_get("/redirect", redirect)
app.router.add_get("/healthz", health)
app.router.add_get("/cookie", cookie)
app.router.add_route("*", "/{tail:.*}", small)

if __name__ == "__main__":
    port = int(os.environ[sys.argv[1] if len(sys.argv) > 1 else "PORT_API"])
    print(json.dumps({"listening": port}), flush=True)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
