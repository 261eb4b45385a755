"""Deployments against a real server process and real replicas (local processes serving HTTP):
one stable address balanced over two replicas; a replica killed under a steady load is replaced
and no request fails; a rolling update under load fails no request and ends on the new
version; a version that never gets healthy is stopped and the old one keeps serving; a restart
keeps the deployment and its replicas; bad input named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Optional

import pytest

from support import SLURM_CONF, ServerProcess, docker_problem, free_port, kill_running_jobs, require, slurm_problem

APP = r'''
import http.server, os, sys
VERSION = os.environ.get("APP_VERSION", "1")
if VERSION == "broken":
    sys.exit("this version cannot start")
class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/die":
            os._exit(1)
        if self.path == "/slow":
            import time
            time.sleep(0.3)
        body = f"{VERSION} {os.environ['JOB_ID']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ.get("BIND", "127.0.0.1"), int(os.environ["PORT_WEB"])), App).serve_forever()
'''


def spec(version: str = "1", **more) -> dict:
    return {"command": ["python3", "-c", APP], "workspace": "w", "env": {"APP_VERSION": version, **more.pop("env", {})},
            "expose": [{"port": more.pop("port", 8000), "name": "web", "health": "/health"}], **more}


@pytest.fixture
def server(tmp_path):
    (tmp_path / "root" / "w").mkdir(parents=True)
    made = ServerProcess(tmp_path / "root", tmp_path / "data", extra=[
        "--JobsApp.metrics_interval=0", f"--SlurmBackend.slurm_conf={SLURM_CONF}",
        f"--SlurmBackend.shared_dir={tmp_path / 'shared'}", "--SlurmBackend.poll_interval=0.2"]).start()
    yield made
    made.stop(signal.SIGKILL)
    kill_running_jobs(made.data / "jobs.db")


def until(server: ServerProcess, name: str, test, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while not test(found := server.request("GET", f"/jupyter-jobs/deployments/{name}")):
        if time.monotonic() >= deadline:
            print("MESSAGE", found["message"])
        assert time.monotonic() < deadline, (found["status"], found["message"], found)
        time.sleep(0.1)
    return found


def all_ready(count: int, version: int = 1):
    return lambda d: d["status"] == "ready" and len(d["running"]) == count and all(
        r["ready"] and r["version"] == version for r in d["running"])


class Load:
    """Steady clients (`clients` threads): one GET after another through the deployment's
    address, every answer and every failure counted."""

    def __init__(self, url: str, clients: int = 1):
        self.url, self.answers, self.failures, self.going = url, [], [], True
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self) -> None:
        while self.going:
            try:
                with urllib.request.urlopen(self.url, timeout=30) as reply:
                    self.answers.append(reply.read().decode())
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(repr(exc))
            time.sleep(0.01)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.going = False
        for thread in self.threads:
            thread.join(35)


def test_two_replicas_answer_at_one_address_and_a_killed_one_is_replaced(server):
    made = server.request("POST", "/jupyter-jobs/deployments", {"name": "echo", "spec": spec(),
                                                               "replicas": {"min": 2}})
    assert (made["name"], made["version"], made["replicas"]) == ("echo", 1, {"min": 2, "max": 2, "target": 4,
                                                                              "scale_in_after": 60.0})
    ready = until(server, "echo", all_ready(2))
    url = f"{server.url}/{ready['endpoints'][0]['path']}"
    replicas = {r["job_id"] for r in ready["running"]}
    with Load(url) as load:
        time.sleep(1)
        seen = Counter(a.split()[1] for a in load.answers)
        assert set(seen) == replicas, seen  # both replicas answer
        victim = sorted(replicas)[0]
        own = server.request("GET", f"/jupyter-jobs/jobs/{victim}")["endpoints"][0]["path"]
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{server.url}/{own}die", timeout=10)
        back = until(server, "echo", lambda d: all_ready(2)(d) and victim not in {r["job_id"] for r in d["running"]})
        time.sleep(1)
    assert load.failures == [], load.failures[:5]
    assert server.request("GET", f"/jupyter-jobs/jobs/{victim}")["status"] == "failed"
    fresh = {r["job_id"] for r in back["running"]} - replicas
    assert len(fresh) == 1 and fresh.pop() in {a.split()[1] for a in load.answers[-20:]}
    named = urllib.request.Request(f"{server.url}/jupyter-jobs/deployments/echo/web/",
                                   headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(named, timeout=10) as reply:  # by name, behind the login: sent on
        assert reply.read().decode().startswith("1 ") and reply.url.endswith(ready["endpoints"][0]["path"])


def test_a_rolling_update_under_load_fails_no_request_and_a_broken_version_is_rolled_back(server):
    server.request("POST", "/jupyter-jobs/deployments", {"name": "echo", "spec": spec(), "replicas": {"min": 2}})
    ready = until(server, "echo", all_ready(2))
    url = f"{server.url}/{ready['endpoints'][0]['path']}"
    with Load(url) as load:
        updated = server.request("PUT", "/jupyter-jobs/deployments/echo", {"spec": spec("2")})
        assert (updated["version"], updated["status"]) == (2, "rolling out")
        until(server, "echo", all_ready(2, version=2))
        done = len(load.answers)
        time.sleep(1)
    assert load.failures == [], load.failures[:5]
    assert {a.split()[0] for a in load.answers[done:]} == {"2"}, "every answer after the rollout is the new version"
    with Load(url) as load:
        server.request("PUT", "/jupyter-jobs/deployments/echo", {"spec": spec("broken")})
        failed = until(server, "echo", lambda d: d["status"] == "rollout failed", timeout=90)
        time.sleep(1)
    assert failed["version"] == 2 and "version 3 did not get healthy" in failed["message"], failed
    assert load.failures == [] and {a.split()[0] for a in load.answers} == {"2"}, "the old version kept serving"
    assert [v["version"] for v in failed["versions"]] == [3, 2, 1]
    back = server.request("PUT", "/jupyter-jobs/deployments/echo", {"version": 1})  # a rollback to any version
    assert back["version"] == 1
    until(server, "echo", all_ready(2, version=1))


def test_it_scales_out_under_load_and_back_in_when_quiet(server):
    server.request("POST", "/jupyter-jobs/deployments", {"name": "echo", "spec": spec(), "replicas": {
        "min": 1, "max": 3, "target": 2, "scale_in_after": 3}})
    ready = until(server, "echo", all_ready(1))
    with Load(f"{server.url}/{ready['endpoints'][0]['path']}slow", clients=8) as load:
        busy = until(server, "echo", lambda d: d["wanted"] == 3 and all_ready(3)(d), timeout=60)
        assert busy["stats"]["in_flight"] >= 4 and busy["stats"]["requests_per_second"] > 0, busy["stats"]
        time.sleep(2)
    assert load.failures == [], load.failures[:5]
    assert {a.split()[1] for a in load.answers} >= {r["job_id"] for r in busy["running"]}, "each replica answered"
    quiet = until(server, "echo", lambda d: d["wanted"] == 1 and len(d["running"]) == 1, timeout=60)
    assert quiet["stats"]["p50_ms"] >= 300 and quiet["stats"]["errors"] == 0, quiet["stats"]


def test_scaled_to_zero_the_first_request_waits_for_a_replica(server):
    made = server.request("POST", "/jupyter-jobs/deployments", {"name": "lazy", "spec": spec(), "replicas": {
        "min": 0, "max": 1, "scale_in_after": 2}})
    idle = until(server, "lazy", lambda d: d["status"] == "idle")
    assert (made["wanted"], idle["running"]) == (0, [])
    with urllib.request.urlopen(f"{server.url}/{idle['endpoints'][0]['path']}", timeout=60) as reply:
        first = reply.read().decode()
    woke = server.request("GET", "/jupyter-jobs/deployments/lazy")
    assert first == f"1 {woke['running'][0]['job_id']}" and woke["wanted"] == 1
    until(server, "lazy", lambda d: d["status"] == "idle" and d["running"] == [], timeout=60)


def test_a_deployment_and_its_replicas_survive_a_restart(server):
    server.request("POST", "/jupyter-jobs/deployments", {"name": "echo", "spec": spec()})
    before = until(server, "echo", all_ready(1))
    server.stop()
    server.start()
    with urllib.request.urlopen(f"{server.url}/{before['endpoints'][0]['path']}", timeout=60) as reply:
        assert reply.read().decode() == f"1 {before['running'][0]['job_id']}", "answered at once (it waits)"
    after = until(server, "echo", all_ready(1))
    assert [r["job_id"] for r in after["running"]] == [r["job_id"] for r in before["running"]], "reattached"
    assert after["endpoints"][0]["path"] == before["endpoints"][0]["path"], "the same address"
    with Load(f"{server.url}/{after['endpoints'][0]['path']}") as load:  # served at once, under load
        time.sleep(2)
    assert load.failures == [] and set(load.answers) == {f"1 {before['running'][0]['job_id']}"}
    bystander = server.request("POST", "/jupyter-jobs/jobs", {"command": "sleep 30", "workspace": "w"})["id"]
    server.wait(bystander, {"running"})
    server.request("DELETE", "/jupyter-jobs/deployments/echo")
    job = before["running"][0]["job_id"]
    deadline = time.monotonic() + 30
    while server.request("GET", f"/jupyter-jobs/jobs/{job}")["status"] != "cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1)
    assert server.request("GET", f"/jupyter-jobs/jobs/{bystander}")["status"] == "running", "only its replicas end"


def test_bad_deployments_are_named(server):
    def refused(method: str, path: str, body: Optional[dict], status: int = 400) -> dict:
        with pytest.raises(urllib.error.HTTPError) as caught:
            server.request(method, path, body)
        assert caught.value.code == status
        return json.loads(caught.value.read())

    base = "/jupyter-jobs/deployments"
    no_port = refused("POST", base, {"name": "x", "spec": {"command": "true", "workspace": "w"}})
    assert no_port["errors"][0]["field"] == "spec.expose"
    assert refused("POST", base, {"name": "x", "spec": spec(), "replicas": {"min": 2, "max": 1}}
                   )["errors"][0]["field"] == "replicas.max"
    assert refused("POST", base, {"name": "Bad Name", "spec": spec()})["errors"][0]["field"] == "name"
    assert refused("POST", base, {"name": "x", "spec": {**spec(), "timeout": "soon"}})["errors"][0]["field"] == \
        "spec.timeout"
    server.request("POST", base, {"name": "x", "spec": spec()})
    assert "exists" in refused("POST", base, {"name": "x", "spec": spec()}, 409)["message"]
    assert refused("PUT", f"{base}/x", {"version": 7})["errors"][0]["field"] == "version"
    refused("GET", f"{base}/nope", None, 404)
    refused("GET", f"{base}/x/nope/", None, 404)


def test_the_cli_deploys_updates_scales_rolls_back_and_deletes(server):
    (server.root / "w" / "app.py").write_text(APP)
    cli = [str(Path(sys.executable).with_name("jupyter-jobs")), "--url", server.url, "--token", server.token]
    env = {**os.environ, "JUPYTER_JOBS_ROOT": str(server.root)}

    def jobs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], capture_output=True, text=True, cwd=server.root / "w", env=env,
                              timeout=120)

    made = jobs("deploy", "echo", "--expose", "8000:web:/health", "-r", "2", "--wait", "--", "python3", "app.py")
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert lines[0] == "echo v1: ready" and lines[1].startswith("  2 of 2 ready (replicas 2-2)"), made.stdout
    address = lines[2].split(": ", 1)[1]
    with urllib.request.urlopen(address, timeout=10) as reply:
        assert reply.read().decode().startswith("1 ")
    again = jobs("deploy", "echo", "--expose", "8000:web:/health", "-e", "APP_VERSION=2", "--wait", "--",
                 "python3", "app.py")
    assert again.returncode == 0 and again.stdout.startswith("echo v2: ready"), (again.stdout, again.stderr)
    scaled = jobs("deployment", "scale", "echo", "1")
    assert "replicas 1-1" in scaled.stdout, scaled.stdout
    back = jobs("deployment", "rollback", "echo", "1")
    assert back.stdout.startswith("echo v1: rolling out"), back.stdout
    until(server, "echo", all_ready(1, version=1))
    bad = jobs("deployment", "scale", "echo", "many")
    assert bad.returncode != 0 and "--replicas takes MIN or MIN:MAX" in bad.stderr
    shown = jobs("--json", "deployment", "show", "echo")
    assert json.loads(shown.stdout)["version"] == 1
    gone = jobs("deployment", "delete", "echo")
    assert gone.stdout.strip() == "deployment echo deleted"
    missing = jobs("deployment", "show", "echo")
    assert missing.returncode != 0 and "no deployment 'echo'" in missing.stderr


def test_docker_replicas_roll_out_under_load(server):
    require("docker", docker_problem())
    docker = {"backend": "docker", "image": "jupyter-jobs/python:test", "env": {"BIND": "0.0.0.0"}}
    server.request("POST", "/jupyter-jobs/deployments", {"name": "boxed", "spec": spec(**docker),
                                                         "replicas": {"min": 2}})
    ready = until(server, "boxed", all_ready(2), timeout=120)
    with Load(f"{server.url}/{ready['endpoints'][0]['path']}") as load:
        time.sleep(1)
        server.request("PUT", "/jupyter-jobs/deployments/boxed", {"spec": spec("2", **docker)})
        until(server, "boxed", all_ready(2, version=2), timeout=120)
        done = len(load.answers)
        time.sleep(1)
    assert load.failures == [], load.failures[:5]
    assert {a.split()[1] for a in load.answers[:done]} >= {r["job_id"] for r in ready["running"]}
    assert {a.split()[0] for a in load.answers[done:]} == {"2"}
    replicas = {a.split()[1] for a in load.answers}
    server.request("DELETE", "/jupyter-jobs/deployments/boxed")
    for job_id in replicas:  # no container is left for the tests after this one
        assert server.wait(job_id)["status"] == "cancelled"


def test_a_replica_on_a_slurm_node(server):
    require("slurm", slurm_problem())
    slurm = {"backend": "slurm", "port": free_port(), "env": {"BIND": "0.0.0.0"}}
    server.request("POST", "/jupyter-jobs/deployments", {"name": "onnode", "spec": spec(**slurm)})
    ready = until(server, "onnode", all_ready(1), timeout=120)
    with urllib.request.urlopen(f"{server.url}/{ready['endpoints'][0]['path']}", timeout=30) as reply:
        assert reply.read().decode() == f"1 {ready['running'][0]['job_id']}"
    server.request("DELETE", "/jupyter-jobs/deployments/onnode")
    assert server.wait(ready["running"][0]["job_id"])["status"] == "cancelled", "its node is free again"


def test_streams_websockets_and_uploads_pass_through_the_deployment(server):
    """The endpoint proxy's streaming, through a deployment's address: server-sent events as
    they are sent, a websocket echo, a 20 MB upload hashed on the other side."""
    import asyncio
    import hashlib
    import shutil

    import aiohttp

    shutil.copy(Path(__file__).parent / "data" / "endpoint_app.py", server.root / "w" / "app.py")
    (server.root / "w" / "ready").touch()
    server.request("POST", "/jupyter-jobs/deployments", {"name": "streams", "spec": {
        "command": "exec python3 app.py", "workspace": "w", "expose": [{"port": 8000, "name": "api",
                                                                       "health": "/healthz"}]}})
    base = f"{server.url}/{until(server, 'streams', all_ready(1))['endpoints'][0]['path']}"
    block = bytes(range(256)) * 4096

    async def body():
        for _ in range(20):
            yield block

    async def main() -> tuple[list[float], list[str], dict]:
        async with aiohttp.ClientSession() as session:
            start = time.monotonic()
            async with session.get(base + "events?n=3&every=0.5") as resp:
                times = [time.monotonic() - start async for line in resp.content if line.startswith(b"data:")]
            async with session.ws_connect("ws" + base[4:] + "ws") as ws:
                echoed = []
                for word in ("one", "two"):
                    await ws.send_str(word)
                    echoed.append((await ws.receive()).data)
            async with session.put(base + "upload", data=body(), headers={"Content-Length": str(20 << 20)}) as resp:
                return times, echoed, await resp.json()

    times, echoed, uploaded = asyncio.run(main())
    assert len(times) == 3 and times[-1] - times[0] > 0.8, times  # as sent, not all at the end
    assert echoed == ["one", "two"]
    assert uploaded == {"size": 20 << 20, "sha256": hashlib.sha256(block * 20).hexdigest()}
    server.request("DELETE", "/jupyter-jobs/deployments/streams")


def test_a_model_version_a_deployment_serves_is_pinned_and_held(server):
    (server.root / "w" / "weights").mkdir()
    (server.root / "w" / "weights" / "w.bin").write_text("one")
    server.request("POST", "/jupyter-jobs/models/net/versions", {"folder": "w/weights", "framework": "custom"})
    made = server.request("POST", "/jupyter-jobs/deployments", {"name": "served", "spec": {
        **spec(), "models": [{"name": "net"}]}})
    assert made["versions"][0]["spec"]["models"] == [{"name": "net", "version": 1}], "resolved when it is made"
    (server.root / "w" / "weights" / "w.bin").write_text("two")
    server.request("POST", "/jupyter-jobs/models/net/versions", {"folder": "w/weights"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.request("DELETE", "/jupyter-jobs/models/net/versions/1")
    assert refused.value.code == 409 and "deployment 'served'" in json.loads(refused.value.read())["message"]
    with pytest.raises(urllib.error.HTTPError) as unknown:
        server.request("POST", "/jupyter-jobs/deployments", {"name": "x", "spec": {**spec(), "models": [
            {"name": "nope"}]}})
    assert json.loads(unknown.value.read())["errors"][0]["field"] == "spec.models.0.name"
    replicas = [r["job_id"] for r in server.request("GET", "/jupyter-jobs/deployments/served")["running"]]
    server.request("DELETE", "/jupyter-jobs/deployments/served")
    for job_id in replicas:
        server.wait(job_id)
    server.request("DELETE", "/jupyter-jobs/models/net/versions/1")  # held no more
