"""A job's web page must not act as the user on the Jupyter server: a hostile job's page in real
Chromium (logged in to Jupyter) tries the API, a kernel, a job, a service worker over `/`,
Jupyter's cookies; the cookie, token and header tricks over plain HTTP; and real web apps
(TensorBoard, a FastAPI app with its own calls and websocket) still work through the sandbox.
Also an endpoint on an origin of its own (`JobsApp.endpoint_url`, `*.localhost`)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from support import CHROMIUM, CHROMIUM_ARGS, ServerProcess, browser_problem, free_port, kill_running_jobs, require

DATA = Path(__file__).parent / "data"


def start_server(tmp: Path, extra: list[str] = (), port: int = 0) -> ServerProcess:
    (tmp / "root" / "w").mkdir(parents=True)
    for name in ("hostile_app.py", "fastapi_app.py", "tensorboard_job.py"):
        shutil.copy(DATA / name, tmp / "root" / "w" / name)
    server = ServerProcess(tmp / "root", tmp / "data", extra=list(extra))
    server.port = port or server.port
    return server.start()


def serve(srv: ServerProcess, script: str, name: str = "web", timeout: float = 60) -> dict:
    """A job running `script` (in the workspace) with one endpoint, once it answers."""
    job = srv.request("POST", "/jupyter-jobs/jobs", {"command": [sys.executable, script], "workspace": "w",
                                                     "expose": [{"port": 8000, "name": name}]})
    deadline = time.monotonic() + timeout
    while (job := srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}"))["endpoints"][0]["state"] != "ready":
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def address(srv: ServerProcess, job: dict, rest: str = "") -> str:
    endpoint = job["endpoints"][0]
    return (endpoint.get("url") or f"{srv.url}/{endpoint['path']}") + rest


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("isolation"))
    yield server
    server.stop()
    kill_running_jobs(server.data / "jobs.db")


@pytest.fixture(scope="module")
def hostile(srv):
    job = serve(srv, "hostile_app.py")
    yield job
    srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")


@pytest.fixture
def browser():
    require("browser", browser_problem())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def logged_in(browser, srv: ServerProcess):
    """A browser page logged in to Jupyter (its login cookie set), as the user's is."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{srv.url}/api/status?token={srv.token}")
    login = [c for c in context.cookies() if c["name"].startswith("username-")]
    assert login, context.cookies()
    return context, page, login[0]["value"]


#: Jupyter's token rides along on plain requests (the proxy must drop it; the key is what counts)
TOKEN = {"Authorization": "token test-token"}


def _get(url: str) -> bytes:
    return _read(urllib.request.Request(url, headers=TOKEN))


def _read(request: urllib.request.Request) -> bytes:
    with urllib.request.urlopen(request, timeout=30) as resp:  # sync: Playwright's loop runs in this thread
        return resp.read()


def attack(page, url: str) -> dict:
    page.goto(url)
    page.wait_for_function("document.title === 'reported'")
    return page.evaluate("results")


def kernels_and_jobs(srv: ServerProcess) -> tuple[list, list]:
    return srv.request("GET", "/api/kernels"), [j["spec"]["command"] for j in srv.request(
        "GET", "/jupyter-jobs/jobs")["jobs"]]


# -- in the browser ---------------------------------------------------------------------------------
def test_a_jobs_page_cannot_act_as_the_user_on_the_jupyter_server(srv, hostile, browser):
    before = kernels_and_jobs(srv)
    context, page, login = logged_in(browser, srv)
    results = attack(page, address(srv, hostile, "page"))
    # what the page may not do: read Jupyter's cookies, storage or API, start a kernel, submit a
    # job, install a service worker (over `/` or anywhere), read a Jupyter page in a frame
    assert results["cookie"] == "" or results["cookie"].startswith("error"), results
    assert "_xsrf" not in results["cookie"] and login not in json.dumps(results)
    assert results["contents"] != 200 and results["kernel"] not in (200, 201) and results["job"] not in (200, 201)
    assert str(results["sw_root"]).startswith("error") and str(results["sw_own"]).startswith("error"), results
    assert not str(results["frame"]).startswith("read"), results
    # what it still does: call its own app (a JSON POST, preflighted) and open its own websocket
    assert results["own_call"] == 42 and results["own_ws"] == "ping", results
    # nothing happened on the server, and no service worker sits over Jupyter's pages
    time.sleep(1)
    kernels, commands = kernels_and_jobs(srv)
    assert kernels == before[0] and commands == before[1]
    assert not (srv.root / "w" / "hostile-was-here").exists()
    page.goto(f"{srv.url}/api/status")
    assert page.evaluate("navigator.serviceWorker.getRegistrations().then(r => r.map(x => x.scope))") == []
    # Jupyter's cookies are untouched, and the job's own are kept to its path
    jar = {c["name"]: c for c in context.cookies()}
    assert jar[next(n for n in jar if n.startswith("username-"))]["value"] == login
    prefix = "/" + hostile["endpoints"][0]["path"].rstrip("/")
    assert {n: c["path"] for n, c in jar.items() if n in ("aaa", "zzz")} == {"aaa": prefix + "/", "zzz": prefix + "/"}
    # and nothing the job was sent holds the login cookie or the token
    seen = json.dumps(json.loads(_get(address(srv, hostile, "seen")))["seen"])
    assert login not in seen and srv.token not in seen
    context.close()


def test_tensorboard_runs_through_the_sandbox(srv, browser):
    job = serve(srv, "tensorboard_job.py", name="tb", timeout=120)
    try:
        context, page, _ = logged_in(browser, srv)
        workers: list[str] = []
        page.on("worker", lambda worker: workers.append(worker.url))
        page.goto(address(srv, job))
        page.wait_for_selector("text=loss", timeout=60_000)  # the run's scalar card
        page.wait_for_selector("text=0.0549", timeout=60_000)  # its smoothed last value: the data arrived
        assert workers, "its chart worker started (through the shim: an opaque origin cannot start one by URL)"
        context.close()
    finally:
        srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")


def test_a_fastapi_app_calls_its_api_and_websocket_from_the_sandbox(srv, browser):
    job = serve(srv, "fastapi_app.py")
    try:
        context, page, _ = logged_in(browser, srv)
        page.goto(address(srv, job))
        page.wait_for_selector("text=saved gpu x2; ws HELLO")
        context.close()
    finally:
        srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")


def test_an_endpoint_on_an_origin_of_its_own(tmp_path, browser):
    port = free_port()
    srv = start_server(tmp_path, [f"--JobsApp.endpoint_url=http://{{key}}.localhost:{port}/"], port=port)
    try:
        job = serve(srv, "hostile_app.py")
        (endpoint,) = job["endpoints"]
        assert endpoint["url"] == f"http://{endpoint['path'][16:48]}.localhost:{port}/"
        before = kernels_and_jobs(srv)
        context, page, login = logged_in(browser, srv)
        results = attack(page, address(srv, job, f"page?jupyter={srv.url}"))
        # a full web app on its origin: storage and a service worker of its own
        assert results["storage"] == "ok" and results["sw_own"] == "registered", results
        assert results["own_call"] == 42 and results["own_ws"] == "ping", results
        # Jupyter's origin is another origin: nothing of it is readable or doable
        assert results["contents"] != 200 and results["kernel"] not in (200, 201), results
        assert results["job"] not in (200, 201) and not str(results["frame"]).startswith("read"), results
        time.sleep(1)
        assert kernels_and_jobs(srv) == before
        assert login not in json.dumps(results)
        context.close()
        # the endpoint's origin serves the endpoint only: Jupyter's API is not there, even with the token
        host = f"{endpoint['path'][16:48]}.localhost:{port}"
        request = urllib.request.Request(f"{srv.url}/api/contents?token={srv.token}", headers={"Host": host})
        assert _read(request) == b"GET /api/contents"  # answered by the job's own app
    finally:
        srv.stop()
        kill_running_jobs(srv.data / "jobs.db")


# -- over HTTP ------------------------------------------------------------------------------------
def test_cookie_token_and_header_tricks_reach_no_job(srv, hostile):
    login_name = f"username-127-0-0-1-{srv.port}"
    tricks = [
        {"Cookie": f'aaa="x; {login_name}=LOGIN-SECRET-1; _xsrf=XSRF-SECRET-1; zzz=y"'},
        [("Cookie", "app=1"), ("Cookie", f"{login_name}=LOGIN-SECRET-2")],
        {"Referer": f"{srv.url}/lab/tree/x.ipynb?token={srv.token}"},
        {"Authorization": f"token\t{srv.token}"},
        {"Authorization": f"Bearer  {srv.token} "},
        {"X-Anything": f"t={srv.token}"},
    ]

    async def main() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            for headers in tricks:
                given = list(headers.items()) if isinstance(headers, dict) else headers
                if not any(k == "Authorization" for k, _ in given):
                    given.append(("Authorization", f"token {srv.token}"))
                async with session.get(address(srv, hostile, "trick"), headers=given) as resp:
                    assert resp.status == 200

    asyncio.run(main())
    seen = json.loads(_get(address(srv, hostile, "seen")))["seen"]
    sent = json.dumps([s for s in seen if s["path"] == "/trick"])
    for secret in ("LOGIN-SECRET-1", "LOGIN-SECRET-2", "XSRF-SECRET-1", srv.token):
        assert secret not in sent, (secret, sent)
    cookies = [v for s in seen if s["path"] == "/trick" for k, v in s["headers"] if k.lower() == "cookie"]
    assert cookies == ['aaa="x; zzz=y"', "app=1"], cookies


def test_the_jobs_headers_cannot_act_on_jupyters_origin(srv, hostile):
    async def main() -> aiohttp.ClientResponse:
        async with aiohttp.ClientSession() as session, session.get(address(srv, hostile, "page"), headers=TOKEN) \
                as resp:
            return resp

    resp = asyncio.run(main())
    headers = resp.headers
    assert "Service-Worker-Allowed" not in headers and "Clear-Site-Data" not in headers
    assert headers.get("Access-Control-Allow-Origin") is None and "Access-Control-Allow-Credentials" not in headers
    assert headers["Content-Security-Policy"].startswith("sandbox allow-scripts") and \
        "allow-same-origin" not in headers["Content-Security-Policy"]
    prefix = "/" + hostile["endpoints"][0]["path"].rstrip("/")
    assert sorted(headers.getall("Set-Cookie")) == [f'aaa="x; Path={prefix}/', f'zzz=y"; Path={prefix}/']
    service_worker = asyncio.run(_fetch_status(address(srv, hostile, "sw.js"), {"Service-Worker": "script"}))
    assert service_worker == 403


async def _fetch_status(url: str, headers: dict, method: str = "GET") -> int:
    async with aiohttp.ClientSession() as session, session.request(method, url, headers={**TOKEN, **headers}) \
            as resp:
        return resp.status


def test_a_refused_websocket_handshake_closes_the_jobs_side(srv, hostile):
    target = address(srv, hostile, "ws")
    path = target.split(str(srv.port), 1)[1]
    for _ in range(40):  # a version Tornado refuses (426), after the proxy opened the job's side
        with socket.create_connection(("127.0.0.1", srv.port)) as conn:
            conn.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nUpgrade: websocket\r\n"
                          f"Authorization: token {srv.token}\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 99\r\n\r\n").encode())
            assert conn.recv(64).startswith(b"HTTP/1.1 426"), "Tornado refuses the handshake"
    deadline = time.monotonic() + 10
    while (count := json.loads(_get(address(srv, hostile, "seen")))["wscount"]) != 0:
        assert time.monotonic() < deadline, f"{count} websockets of the job stayed open"
        time.sleep(0.2)


def test_any_method_with_an_upgrade_header_is_plain_http(srv, hostile):
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"):
        assert asyncio.run(_fetch_status(address(srv, hostile, "any"), upgrade, method)) == 200, method
