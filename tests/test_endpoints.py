"""Job endpoints through the Jupyter server: real jobs serving real ports (an aiohttp app and
`python -m http.server` on the local backend, a container on Docker), reached through a real
server process with real HTTP and websocket clients."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import psutil
import pytest

from support import TERMINAL, ServerProcess, docker_problem, kill_running_jobs, log_text, require

APP = Path(__file__).parent / "data" / "endpoint_app.py"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("endpoints")
    (tmp / "root" / "w").mkdir(parents=True)
    shutil.copy(APP, tmp / "root" / "w" / "app.py")
    (tmp / "root" / "w" / "index.html").write_text("<h1>served by the job</h1>\n")
    server = ServerProcess(tmp / "root", tmp / "data").start()
    yield server
    server.stop()
    kill_running_jobs(tmp / "data" / "jobs.db")


def wait_state(srv: ServerProcess, job_id: str, state: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = srv.request("GET", f"/jupyter-jobs/jobs/{job_id}")
        if all(e["state"] == state for e in job["endpoints"]):
            return job
        assert time.monotonic() < deadline, f"endpoints of {job_id} not {state}: {job['endpoints']} {job['status']}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def app(srv):
    """The aiohttp app as a job, ready; cancelled at the end."""
    job = srv.request("POST", "/jupyter-jobs/jobs", {"command": "exec python3 app.py", "workspace": "w",
                                                     "expose": [{"port": 8000, "name": "api"}]})
    job = wait_state(srv, job["id"], "ready")
    yield job
    srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")


def url(srv: ServerProcess, job: dict, rest: str = "", name: str = "api") -> str:
    path = next(e["path"] for e in job["endpoints"] if e["name"] == name)
    return f"{srv.url}/{path}{rest}"


def auth(srv: ServerProcess) -> dict:
    return {"Authorization": f"token {srv.token}"}


async def fetch(method: str, target: str, **kwargs) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session, session.request(
            method, aiohttp.client.URL(target, encoded=True), allow_redirects=False, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.read()


class Canary:
    """A listener on another port of this host: nothing the proxy is asked may ever reach it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


# -- reaching a job's port --------------------------------------------------------------------
def named(srv: ServerProcess, job: dict, name: str, rest: str = "") -> str:
    return f"{srv.url}/jupyter-jobs/jobs/{job['id']}/endpoints/{name}/{rest}"


def test_a_job_serving_files_is_reached_at_its_keyed_address_and_by_name_after_login(srv):
    job = srv.request("POST", "/jupyter-jobs/jobs", {
        "command": "exec python3 -m http.server $PORT_WEB --bind 127.0.0.1", "workspace": "w",
        "expose": [{"port": 8000, "name": "web"}]})
    (endpoint,) = job["endpoints"]
    assert re.fullmatch(r"jupyter-jobs/ep/[a-z2-7]{32}/", endpoint["path"]), endpoint
    assert endpoint == {"name": "web", "port": 8000, "state": "waiting", "path": endpoint["path"], "url": None}
    job = wait_state(srv, job["id"], "ready")
    port = job["endpoints"][0]["port"]
    assert port != 8000, "the local backend gives each job a free port of its own"
    # the key in the address is the credential: no Jupyter login, no token
    status, headers, body = asyncio.run(fetch("GET", url(srv, job, "index.html", "web")))
    assert status == 200 and body.endswith(b"<h1>served by the job</h1>\n") and headers["Content-Type"] == "text/html"
    assert body.startswith(b"<script>"), "an HTML page gets the sandbox's storage shim first"
    assert headers["Content-Security-Policy"].startswith("sandbox ") and "allow-same-origin" not in \
        headers["Content-Security-Policy"], "under Jupyter's origin the page runs in an opaque origin"
    other_key = url(srv, job, "index.html", "web").replace(endpoint["path"][16:48], "a" * 32)
    assert asyncio.run(fetch("GET", other_key))[0] == 404
    # by name: Jupyter's login (and authorizer) first, then on to the keyed address, any method
    status, headers, _ = asyncio.run(fetch("GET", named(srv, job, "web", "index.html?a=1")))
    assert status == 302 and headers["Location"].startswith("/login?next=")
    assert asyncio.run(fetch("POST", named(srv, job, "web", "index.html"), data=b"x"))[0] == 403
    status, headers, _ = asyncio.run(fetch("POST", named(srv, job, "web", f"index.html?a=1&token={srv.token}")))
    assert status == 307 and headers["Location"] == f"/{job['endpoints'][0]['path']}index.html?a=1"
    status, _, _ = asyncio.run(fetch("GET", url(srv, job, "", "web")[:-1]))
    assert status == 302  # .../ep/<key> -> .../ep/<key>/ (relative links need the slash)
    srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")
    srv.wait(job["id"])
    start = time.monotonic()
    status, _, body = asyncio.run(fetch("GET", url(srv, job, "index.html", "web")))
    assert status == 404 and time.monotonic() - start < 1 and b"no running job" in body
    status, _, body = asyncio.run(fetch("GET", named(srv, job, "web"), headers=auth(srv)))
    assert status == 404 and b"not running" in body
    assert srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}")["endpoints"][0]["state"] == "gone"


def test_the_ready_state_follows_the_port_and_the_health_path(srv):
    """waiting while nothing listens; with a health path, waiting until it answers 2xx."""
    job = srv.request("POST", "/jupyter-jobs/jobs", {
        "command": "sleep 2; python3 app.py PORT_SLOW & sleep 4; touch ready; wait", "workspace": "w",
        "expose": [{"port": 8001, "name": "slow", "health": "/healthz"}]})
    time.sleep(1)
    assert srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}")["endpoints"][0]["state"] == "waiting"
    deadline = time.monotonic() + 20
    seen_port_up_but_waiting = False
    while (info := srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}"))["endpoints"][0]["state"] != "ready":
        if asyncio.run(fetch("GET", url(srv, info, "healthz", "slow"), headers=auth(srv)))[0] == 503:
            seen_port_up_but_waiting = True  # the port answers, its health path does not yet
        assert time.monotonic() < deadline, info
        time.sleep(0.2)
    assert seen_port_up_but_waiting
    assert asyncio.run(fetch("GET", url(srv, info, "healthz", "slow"), headers=auth(srv)))[0] == 200
    srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")


def test_a_port_that_drops_every_connection_is_not_ready(srv):
    """Accepting is not answering: Docker's proxy accepts on a published port while nothing
    listens in the container, and drops the connection; such a port stays waiting."""
    dropper = ("import os, socket\ns = socket.socket()\ns.bind(('127.0.0.1', int(os.environ['PORT_WEB'])))\n"
               "s.listen()\nwhile True:\n    s.accept()[0].close()\n")
    job = srv.request("POST", "/jupyter-jobs/jobs", {"command": ["python3", "-c", dropper], "workspace": "w",
                                                     "expose": [{"port": 8002, "name": "web"}]})
    deadline = time.monotonic() + 30
    while srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}")["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(3)  # six probes of a port that accepts (and drops) connections
    info = srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}")
    assert info["status"] == "running"
    assert info["endpoints"][0]["state"] == "waiting"
    srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")


def test_all_methods_and_headers_pass_without_jupyters_credentials(srv, app):
    cookie_name = f"username-127-0-0-1-{srv.port}"
    headers = {**auth(srv), "Cookie": f"{cookie_name}=secret-login; _xsrf=secret-xsrf; app=1",
               "X-XSRFToken": "secret-xsrf", "X-Custom": "kept", "Host": "localhost:9",
               "X-Forwarded-Host": "evil.example"}
    status, _, body = asyncio.run(fetch("POST", url(srv, app, f"headers?x=1&token={srv.token}"), headers=headers,
                                        data=b"{}"))
    assert status == 200, body
    seen = json.loads(body)
    sent = {k.lower(): v for k, v in seen["headers"].items()}
    assert "authorization" not in sent and "x-xsrftoken" not in sent
    assert sent["cookie"] == "app=1" and sent["x-custom"] == "kept"
    assert srv.token not in body.decode() and "secret-login" not in body.decode()
    assert seen["path"] == "/headers?x=1", "Jupyter's token is not passed on in the query"
    assert seen["peer"] == app["endpoints"][0]["port"], "whatever the Host header, the job's port answers"
    assert sent["x-forwarded-prefix"] == f"/{app['endpoints'][0]['path'].rstrip('/')}"
    for method in ("PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"):
        status, _, body = asyncio.run(fetch(method, url(srv, app, "any/where"), headers=auth(srv)))
        assert status == 200 and body == (b"" if method == "HEAD" else b"ok /any/where"), (method, body)


def test_the_job_cannot_set_jupyters_cookies(srv, app):
    cookie_name = f"username-127-0-0-1-{srv.port}"

    async def cookies() -> list[str]:
        async with aiohttp.ClientSession() as session, session.get(
                url(srv, app, f"cookie?name={cookie_name}"), headers=auth(srv)) as resp:
            return resp.headers.getall("Set-Cookie")

    set_cookies = asyncio.run(cookies())
    assert any(c.startswith("app=1") for c in set_cookies)
    assert not any(c.startswith(cookie_name) for c in set_cookies), set_cookies


def test_a_jupyter_login_alone_reaches_no_endpoint(srv, app):
    async def main() -> tuple[int, int]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),  # as a browser
                                         connector=aiohttp.TCPConnector(force_close=True)) as session:
            async with session.get(f"{srv.url}/api/status?token={srv.token}") as resp:
                assert resp.status == 200
            assert any(c.key.startswith("username-") for c in session.cookie_jar)
            wrong = url(srv, app, "headers").replace(app["endpoints"][0]["path"][16:48], "a" * 32)
            async with session.post(wrong, data=b"x", headers={"Origin": srv.url}) as resp:
                logged_in_wrong_key = resp.status
            async with session.post(url(srv, app, "headers"), data=b"x", headers={"Origin": "null"}) as resp:
                keyed_from_the_sandbox = resp.status
                assert resp.headers["Access-Control-Allow-Origin"] == "*"
            return logged_in_wrong_key, keyed_from_the_sandbox

    assert asyncio.run(main()) == (404, 200)


# -- streaming ---------------------------------------------------------------------------------
def test_server_sent_events_arrive_as_they_are_sent(srv, app):
    async def main() -> list[float]:
        async with aiohttp.ClientSession(headers=auth(srv)) as session:
            start = time.monotonic()
            async with session.get(url(srv, app, "events?n=4&every=0.5"),
                                   headers={"Accept": "text/event-stream"}) as resp:
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                return [time.monotonic() - start async for line in resp.content if line.startswith(b"data:")]

    times = asyncio.run(main())
    assert len(times) == 4
    assert times[0] < 1.0 and times[-1] - times[0] > 1.2, times


def test_a_100_mb_upload_and_download_stream_through(srv, app):
    server = psutil.Process(srv.proc.pid)
    before = server.memory_info().rss
    size = 100 << 20
    block = bytes(range(256)) * 4096  # 1 MiB
    peak = [before]

    async def body():
        for _ in range(size // len(block)):
            peak[0] = max(peak[0], server.memory_info().rss)
            yield block

    async def main() -> tuple[dict, int, str]:
        async with aiohttp.ClientSession(headers=auth(srv)) as session:
            async with session.put(url(srv, app, "upload"), data=body(),
                                   headers={"Content-Length": str(size)}) as resp:
                assert resp.status == 200
                uploaded = await resp.json()
            digest, got = hashlib.sha256(), 0
            async with session.get(url(srv, app, "big?mb=100")) as resp:
                assert resp.headers["Content-Length"] == str(size)
                async for chunk in resp.content.iter_chunked(1 << 20):
                    digest.update(chunk)
                    got += len(chunk)
                    peak[0] = max(peak[0], server.memory_info().rss)
            return uploaded, got, digest.hexdigest()

    uploaded, got, digest = asyncio.run(main())
    assert uploaded == {"size": size, "sha256": hashlib.sha256(block * (size // len(block))).hexdigest()}
    assert got == size and digest == hashlib.sha256(b"x" * size).hexdigest()
    assert peak[0] - before < 64 << 20, f"the server grew by {(peak[0] - before) >> 20} MiB: it buffers"


def test_websocket_echo_of_10000_messages(srv, app):
    async def main() -> tuple[int, str, bytes]:
        async with aiohttp.ClientSession(headers=auth(srv)) as session, session.ws_connect(
                "ws" + url(srv, app, "ws")[4:], protocols=("chat",)) as ws:
            for i in range(10_000):
                await ws.send_str(f"message {i}")
                msg = await ws.receive()
                assert msg.data == f"message {i}", msg
            await ws.send_bytes(b"\x00\x01binary")
            binary = (await ws.receive()).data
            return i + 1, ws.protocol, binary

    assert asyncio.run(main()) == (10_000, "chat", b"\x00\x01binary")


def test_a_websocket_needs_the_key_not_a_login(srv, app):
    async def main(target: str) -> int:
        async with aiohttp.ClientSession(headers=auth(srv)) as session:
            try:
                async with session.ws_connect("ws" + target[4:], origin="null") as ws:
                    await ws.send_str("hi")
                    return 101 if (await ws.receive()).data == "hi" else 0
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(main(url(srv, app, "ws").replace(app["endpoints"][0]["path"][16:48], "a" * 32))) == 404
    assert asyncio.run(main(url(srv, app, "ws"))) == 101


# -- nothing else is reachable ------------------------------------------------------------------
def test_paths_hosts_and_redirects_cannot_leave_the_job(srv, app):
    canary = Canary()
    climbing = ["..%2F..%2F..%2Fapi%2Fstatus", "%2e%2e/%2e%2e/backends", "%252e%252e%252fx", "a/../../b",
                "..\\..\\x", "/%2F127.0.0.1:{p}/", "%2F%2F127.0.0.1:{p}/"]
    for rest in climbing:
        status, _, body = asyncio.run(fetch("GET", url(srv, app, rest.format(p=canary.port)), headers=auth(srv)))
        assert status == 400 and b"leaves the endpoint" in body, (rest, status, body)
    # an absolute URL as the path is only a path on the job's own server
    status, _, body = asyncio.run(fetch("GET", url(srv, app, f"http://127.0.0.1:{canary.port}/x"),
                                        headers=auth(srv)))
    assert status == 200 and body == f"ok /http://127.0.0.1:{canary.port}/x".encode()
    # a redirect elsewhere is handed to the client, never followed; one within the app stays within
    status, headers, _ = asyncio.run(fetch("GET", url(srv, app, f"redirect?to=http://127.0.0.1:{canary.port}/"),
                                           headers=auth(srv)))
    assert status == 302 and headers["Location"] == f"http://127.0.0.1:{canary.port}/"
    status, headers, _ = asyncio.run(fetch("GET", url(srv, app, "redirect?to=/inner/page"), headers=auth(srv)))
    assert status == 302 and headers["Location"] == f"/{app['endpoints'][0]['path']}inner/page"
    port = app["endpoints"][0]["port"]
    status, headers, _ = asyncio.run(fetch("GET", url(srv, app, f"redirect?to=http://127.0.0.1:{port}/p"),
                                           headers=auth(srv)))
    assert headers["Location"] == f"/{app['endpoints'][0]['path']}p"
    # another name, another (finished or unknown) job: 404, whatever the path
    for target in (url(srv, app, "x").replace(app["endpoints"][0]["path"][16:48], "b" * 32),
                   named(srv, app, "other", "x"), named(srv, app, "api", "x").replace(app["id"], "000000000000")):
        status, _, _ = asyncio.run(fetch("GET", target, headers=auth(srv)))
        assert status == 404, target
    time.sleep(0.5)
    assert canary.hits == 0


def test_bad_expose_specs_name_the_field(srv):
    bad = [
        ([{"port": 0, "name": "a"}], "expose.0.port"),
        ([{"port": 8000, "name": "Bad_Name"}], "expose.0.name"),
        ([{"port": 8000, "name": "a", "health": "http://evil/"}], "expose.0.health"),
        ([{"port": 8000, "name": "a"}, {"port": 8001, "name": "a"}], "expose"),
        ([{"port": 8000, "name": "a"}, {"port": 8000, "name": "b"}], "expose"),
        ([{"port": 8000}], "expose.0.name"),
        ("8000", "expose"),
    ]
    for expose, field in bad:
        body = json.dumps({"command": "true", "workspace": "w", "expose": expose}).encode()
        req = urllib.request.Request(f"{srv.url}/jupyter-jobs/jobs", data=body, method="POST",
                                     headers=auth(srv))
        try:
            urllib.request.urlopen(req)
            raise AssertionError(f"{expose} was accepted")
        except urllib.error.HTTPError as exc:
            reply = json.loads(exc.read())
            assert exc.code == 400 and field in [e["field"] for e in reply["errors"]], (expose, reply)


def test_the_job_learns_its_port_from_the_environment(srv):
    job = srv.request("POST", "/jupyter-jobs/jobs", {"command": "echo $PORT_TENSORBOARD $PORT_MY_API",
                                                     "workspace": "w", "expose": [
                                                         {"port": 6006, "name": "tensorboard"},
                                                         {"port": 6007, "name": "my-api"}]})
    done = srv.wait(job["id"])
    ports = [int(p) for p in log_text(srv.logs(job["id"])).split()]
    assert done["status"] == "succeeded" and len(set(ports)) == 2 and all(p > 1024 for p in ports)
    assert [e["state"] for e in done["endpoints"]] == ["gone", "gone"]


# -- docker ----------------------------------------------------------------------------------------
def test_a_container_serves_a_port_published_on_loopback_only(tmp_path, docker_client):
    require("docker", docker_problem())
    (tmp_path / "root" / "w").mkdir(parents=True)
    (tmp_path / "root" / "w" / "index.html").write_text("from the container\n")
    server = ServerProcess(tmp_path / "root", tmp_path / "data").start()
    try:
        job = server.request("POST", "/jupyter-jobs/jobs", {
            "backend": "docker", "image": "jupyter-jobs/python:test", "workspace": "w",
            "command": "exec python3 -m http.server $PORT_WEB", "expose": [{"port": 8080, "name": "web"}]})
        job = wait_state(server, job["id"], "ready", timeout=60)
        assert job["endpoints"][0]["port"] == 8080, "in a container the declared port is the job's own"
        status, _, body = asyncio.run(fetch("GET", url(server, job, "index.html", "web"), headers=auth(server)))
        assert status == 200 and body.endswith(b"from the container\n")  # after the sandbox's shim
        (container,) = docker_client.containers.list(filters={"label": f"jupyter_jobs.job={job['id']}"})
        bindings = container.attrs["HostConfig"]["PortBindings"]["8080/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"], bindings
        server.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")
        assert server.wait(job["id"], timeout=30)["status"] in TERMINAL
    finally:
        server.stop()
        kill_running_jobs(tmp_path / "data" / "jobs.db")


def test_the_cli_runs_a_job_with_an_endpoint_and_shows_where_it_is(srv):
    cli = str(Path(sys.executable).with_name("jupyter-jobs"))
    env = {**os.environ, "JUPYTER_JOBS_ROOT": str(srv.root)}
    env.pop("JUPYTER_JOBS_URL", None)
    given = ["--url", srv.url, "--token", srv.token]
    started = subprocess.run([cli, *given, "--json", "run", "--detach", "--expose", "8000:web", "--",
                              "sh", "-c", "exec python3 -m http.server $PORT_WEB --bind 127.0.0.1"],
                             capture_output=True, text=True, cwd=srv.root / "w", env=env, timeout=60)
    assert started.returncode == 0, started.stderr
    job = json.loads(started.stdout)
    assert job["spec"]["expose"] == [{"port": 8000, "name": "web", "health": None, "internal": False}]
    wait_state(srv, job["id"], "ready")
    shown = subprocess.run([cli, *given, "show", job["id"]], capture_output=True, text=True, env=env, timeout=60)
    job = srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}")
    assert f"endpoint web (ready): {srv.url}/{job['endpoints'][0]['path']}" in shown.stdout
    bad = subprocess.run([cli, *given, "run", "--detach", "--expose", "web", "--", "true"], capture_output=True,
                         text=True, cwd=srv.root / "w", env=env, timeout=60)
    assert bad.returncode == 2 and "--expose takes PORT:NAME" in bad.stderr
    srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")
