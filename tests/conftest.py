"""Shared fixtures: a real Jupyter server with the extension (in-process through pytest-jupyter,
or as a separate `jupyter server` process for restart tests), and a small REST client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

TERMINAL = {"succeeded", "failed", "cancelled"}


def kill_running_jobs(db: Path) -> None:
    """Leave no job process behind a test (jobs outlive the server by design)."""
    if not db.exists():
        return
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT backend_state FROM jobs WHERE status = 'running'").fetchall()
    for (state,) in rows:
        pid = json.loads(state).get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def jobs_data(tmp_path: Path) -> Path:
    path = tmp_path / "jobs-data"
    yield path
    kill_running_jobs(path / "jobs.db")


@pytest.fixture
def jobs_config() -> dict[str, Any]:
    """Extra `JobsApp` settings for a test; override in a module to change them."""
    return {}


@pytest.fixture
def jp_server_config(jobs_data: Path, jobs_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_jobs": True}},
        "JobsApp": {"data_dir": str(jobs_data), "kill_grace": 2.0, **jobs_config},
    }


class Api:
    """The REST API through pytest-jupyter's authenticated `jp_fetch`."""

    def __init__(self, fetch: Any):
        self.fetch = fetch

    async def call(self, method: str, *path: str, body: Any = None, params: Optional[dict] = None,
                   expect: int = 200) -> Any:
        kwargs: dict[str, Any] = {"method": method, "raise_error": False}
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method == "POST":
            kwargs["body"] = b""
        if params:
            kwargs["params"] = params
        resp = await self.fetch("jupyter-jobs", *path, **kwargs)
        assert resp.code == expect, f"{method} {path}: {resp.code} {resp.body[:500]!r}"
        if resp.headers.get("Content-Type", "").startswith("application/json") and resp.body:
            return json.loads(resp.body)
        return resp

    async def submit(self, spec: dict, expect: int = 201) -> dict:
        return await self.call("POST", "jobs", body=spec, expect=expect)

    async def job(self, job_id: str) -> dict:
        return await self.call("GET", "jobs", job_id)

    async def wait(self, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout}s"
            await asyncio.sleep(0.05)

    async def logs(self, job_id: str, offset: int = 0, follow: bool = False) -> list[dict]:
        params = {"offset": str(offset), "follow": "true" if follow else "false"}
        resp = await self.call("GET", "jobs", job_id, "logs", params=params)
        assert resp.headers["Content-Type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in resp.body.decode().splitlines()]

    async def wait_for_output(self, job_id: str, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in "".join(c.get("text", "") for c in await self.logs(job_id)):
            assert time.monotonic() < deadline, f"{text!r} never appeared in job {job_id}'s log"
            await asyncio.sleep(0.05)


def log_text(chunks: list[dict], stream: Optional[str] = None) -> str:
    return "".join(c["text"] for c in chunks if "text" in c and (stream is None or c["stream"] == stream))


@pytest.fixture
def api(jp_fetch: Any) -> Api:
    return Api(jp_fetch)


@pytest.fixture
def workspace(jp_root_dir: Path) -> Path:
    """A project folder under the server's root holding a tiny script."""
    folder = jp_root_dir / "proj"
    folder.mkdir()
    (folder / "hello.py").write_text("import os\nprint('hello from', os.environ['JOB_ID'])\n")
    return folder


# -- a real `jupyter server` process, for restarts ------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`jupyter server` with the extension in a child process, restartable on the same data."""

    def __init__(self, root: Path, data: Path, token: str = "test-token", extra: Optional[list[str]] = None):
        self.root, self.data, self.token = root, data, token
        self.extra = extra or []
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = data.parent / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
        cmd = [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
            f"--port={self.port}", "--port-retries=0", f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}", f"--JobsApp.data_dir={self.data}",
            "--JobsApp.kill_grace=2", *self.extra,
        ]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.request("GET", "/jupyter-jobs/backends")
                return self
            except (urllib.error.URLError, ConnectionError):
                assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
                time.sleep(0.1)
        raise AssertionError("jupyter server did not start:\n" + self.log_path.read_text()[-3000:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(self, method: str, path: str, body: Any = None, token: Optional[str] = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"token {token or self.token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            if resp.headers.get("Content-Type", "").startswith("application/json"):
                return json.loads(raw)
            return raw

    def wait(self, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.request("GET", f"/jupyter-jobs/jobs/{job_id}")
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
            time.sleep(0.05)

    def logs(self, job_id: str, offset: int = 0, follow: bool = False) -> list[dict]:
        raw = self.request("GET", f"/jupyter-jobs/jobs/{job_id}/logs?offset={offset}&follow={str(follow).lower()}")
        return [json.loads(line) for line in raw.decode().splitlines()]


@pytest.fixture
def server_process(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    data = tmp_path / "data"
    servers: list[ServerProcess] = []

    def make(**kwargs: Any) -> ServerProcess:
        server = ServerProcess(root, data, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(signal.SIGKILL)
    kill_running_jobs(data / "jobs.db")
