"""Webhooks against a real receiver on 127.0.0.1: signed events for a job's life, a workflow
run's end and a schedule's firing; retries through a receiver outage (refused connections,
then 503s) with nothing lost and the service unaffected; the state in GET /backends."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SECRET = "s3cret-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """Records what it receives; answers 503 to the first `failing` requests."""

    def __init__(self, port: int, failing: int = 0):
        self.port, self.failing, self.got, self.refused = port, failing, [], 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failing > 0:
                    receiver.failing -= 1
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.got.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.got]


PORT = free_port()


@pytest.fixture
def receiver():
    r = Receiver(PORT)
    yield r
    r.stop()


def config(**more):
    return {"webhooks": [{"url": f"http://127.0.0.1:{PORT}/hook", "secret": SECRET}], "webhook_backoff": 0.2,
            **more}


async def until(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    return got


@pytest.mark.parametrize("jobs_config", [config()])
async def test_signed_events_for_a_jobs_life(api, workspace, receiver):
    receiver.start()
    job = await api.submit({"command": "echo hi", "workspace": "proj"})
    await until(lambda: [e for e in receiver.events() if e["event"] == "job.ended"])
    kinds = [e["event"] for e in receiver.events() if e["job"]["id"] == job["id"]]
    assert kinds == ["job.queued", "job.started", "job.ended"]
    ended = receiver.events()[-1]
    assert ended["job"]["status"] == "succeeded" and ended["job"]["exit_code"] == 0
    for headers, body in receiver.got:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Jupyter-Jobs-Signature"], expected)
        assert headers["X-Jupyter-Jobs-Event"] == json.loads(body)["event"]
    hooks = (await api.call("GET", "backends"))["webhooks"]
    assert hooks[0]["delivered"] == 3 and hooks[0]["failed"] == 0 and SECRET not in json.dumps(hooks)


@pytest.mark.parametrize("jobs_config", [config()])
async def test_a_receiver_outage_loses_nothing(api, workspace, receiver):
    """Down (connections refused), then up but failing (503): every event arrives, in order,
    and the jobs ran as if nothing happened."""
    jobs = [await api.submit({"command": f"echo {i}", "workspace": "proj"}) for i in range(3)]
    for job in jobs:
        assert (await api.wait(job["id"]))["status"] == "succeeded"  # the receiver's outage held nothing up
    hooks = (await api.call("GET", "backends"))["webhooks"]
    assert hooks[0]["pending"] >= 1 and hooks[0]["delivered"] == 0 and "Connection refused" in hooks[0]["last_error"]
    receiver.failing = 2
    receiver.start()
    await until(lambda: len(receiver.events()) == 9)
    assert receiver.refused == 2
    for job in jobs:
        kinds = [e["event"] for e in receiver.events() if e["job"]["id"] == job["id"]]
        assert kinds == ["job.queued", "job.started", "job.ended"]
    hooks = (await api.call("GET", "backends"))["webhooks"]
    assert hooks[0]["delivered"] == 9 and hooks[0]["pending"] == 0 and hooks[0]["failed"] == 0


@pytest.mark.parametrize("jobs_config", [{"webhooks": [{"url": f"http://127.0.0.1:{PORT}/only-ends",
                                                        "events": ["workflow.ended", "schedule.fired"]}]}])
async def test_workflow_and_schedule_events_only_when_asked(api, workspace, receiver):
    receiver.start()
    run = await api.call("POST", "workflows", body={"spec": {"jobs": {"a": {"command": "true"}}}, "workspace": "proj"},
                         expect=201)
    made = await api.call("POST", "schedules", body={"spec": {"command": "true", "workspace": "proj"},
                                                     "cron": "* * * * * *"}, expect=201)
    await until(lambda: {e["event"] for e in receiver.events()} == {"workflow.ended", "schedule.fired"})
    ended = next(e for e in receiver.events() if e["event"] == "workflow.ended")
    assert ended["workflow"]["id"] == run["id"] and ended["workflow"]["status"] == "succeeded"
    fired = next(e for e in receiver.events() if e["event"] == "schedule.fired")
    assert fired["schedule"]["id"] == made["id"] and fired["job"]["schedule"] == made["id"]
    assert "X-Jupyter-Jobs-Signature" not in receiver.got[0][0]  # no secret, no signature
    await api.call("DELETE", "schedules", made["id"], expect=204)


def test_a_bad_webhook_setting_stops_the_server_with_a_reason():
    from jupyter_jobs.telemetry.webhooks import Webhooks

    for bad, words in [([{"url": "ftp://x"}], "http(s) URL"), ([{"url": "http://x", "events": ["job.exploded"]}],
                                                                "unknown ['job.exploded']"),
                       ([{"url": "http://x", "sekret": "typo"}], "must be")]:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            Webhooks(bad)
