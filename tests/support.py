"""Test and benchmark helpers: a real `jupyter server` process with the extension."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from collections.abc import Iterator
from typing import Any, Optional

import pytest

TERMINAL = {"succeeded", "failed", "cancelled"}
STRICT = os.environ.get("JUPYTER_JOBS_STRICT") == "1"


def require(part: str, problem: Optional[str]) -> None:
    """Skip a test whose `part` (docker, slurm, browser) is missing; in CI (strict), fail it."""
    if problem is None:
        return
    message = f"{part} is not available here: {problem}"
    if STRICT:
        pytest.fail(message + " (JUPYTER_JOBS_STRICT=1: nothing may skip)", pytrace=False)
    pytest.skip(message)


DOCKER_IMAGES = ("jupyter-jobs/busybox:test", "jupyter-jobs/python:test")


def docker_problem() -> Optional[str]:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        missing = [i for i in DOCKER_IMAGES if not client.images.list(name=i)]
    except Exception as exc:
        return f"no Docker engine ({exc}); run `bash scripts/docker-engine` as root"
    if missing:
        return f"test images missing: {', '.join(missing)}; run `bash scripts/docker-engine`"
    return None



def kill_running_jobs(db: Path) -> None:
    """Leave no job process behind a test (jobs outlive the server by design)."""
    if not db.exists():
        return
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT backend_state, dir FROM jobs WHERE status IN ('running', 'queued')").fetchall()
    cluster = []
    for state, _folder in rows:
        session = json.loads(state).get("pid")  # the job's supervisor leads the job's session
        for pid in _session_members(session) if session else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if json.loads(state).get("slurm_job_id"):  # nor a cluster job holding a node for the tests after
            cluster.append(str(json.loads(state)["slurm_job_id"]))
        if json.loads(state).get("container") and shutil.which("docker"):  # nor a container
            subprocess.run(["docker", "rm", "-f", json.loads(state)["container"]], capture_output=True, timeout=60)
    if cluster and shutil.which("scancel"):
        subprocess.run(["scancel", *cluster], env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=30,
                       capture_output=True)


def _session_members(sid: int) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # the session id
            found.append(int(pid))
    return found


def log_text(chunks: list[dict], stream: Optional[str] = None) -> str:
    return "".join(c["text"] for c in chunks if "text" in c and (stream is None or c["stream"] == stream))


# -- a real `jupyter server` process, for restarts ------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`jupyter server` with the extension in a child process, restartable on the same data."""

    def __init__(self, root: Path, data: Path, token: str = "test-token", extra: Optional[list[str]] = None,
                 env: Optional[dict[str, str]] = None, python: str = sys.executable, user: Optional[str] = None):
        self.root, self.data, self.token, self.python = root, data, token, python
        self.extra = extra or []
        self.env = env or {}
        self.user = user  # run as this Unix user (as root), with only `env` on a bare environment
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = data.parent / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready: str = "/jupyter-jobs/backends") -> ServerProcess:
        """Start it; return once `ready` answers."""
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", **self.env}
        if self.user:
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "USER": self.user,
                   "LOGNAME": self.user, "JUPYTER_PLATFORM_DIRS": "1", **self.env}
        as_user = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups"] if self.user else []
        cmd = [*as_user,
            self.python, "-m", "jupyter_server", "--no-browser", "--allow-root",
            f"--port={self.port}", "--port-retries=0", f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}", f"--JobsApp.data_dir={self.data}",
            "--JobsApp.kill_grace=2", *self.extra,
        ]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.request("GET", ready)
                return self
            except (urllib.error.URLError, ConnectionError):
                assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
                time.sleep(0.1)
        self.proc.kill()  # never left behind by a test that gives up on it
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

    async def fetch(self, *path: str, method: str = "GET", body: Any = None, params: Optional[dict] = None,
                    headers: Optional[dict] = None, raise_error: bool = True) -> Any:
        """pytest-jupyter's `jp_fetch`, against this process (conftest's `Api` takes either)."""
        import asyncio
        import urllib.parse

        url = f"{self.url}/{'/'.join(urllib.parse.quote(p) for p in path)}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}", **(headers or {})})

        def send() -> Response:
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    return Response(resp.status, resp.read(), resp.headers)
            except urllib.error.HTTPError as exc:
                if raise_error:
                    raise
                return Response(exc.code, exc.read(), exc.headers)

        return await asyncio.to_thread(send)

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




class Response:
    """What `ServerProcess.fetch` answers (as tornado's response: code, body, headers)."""

    def __init__(self, code: int, body: bytes, headers: Any):
        self.code, self.body, self.headers = code, body, headers


class Kernel:
    """A real IPython kernel (jupyter_client), recording every iopub message with its arrival time."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        from jupyter_client import KernelManager

        # named as Jupyter's servers name it (kernel-<uuid>.json): the magic takes its origin from it
        connection = Path(tempfile.gettempdir()) / f"kernel-{uuid.uuid4()}.json"
        self.km = KernelManager(kernel_name="python3", connection_file=str(connection))
        self.km.start_kernel(cwd=str(cwd), env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60, on_message: Any = None) -> Run:
        msg_id = self.kc.execute(code)
        run = Run()
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, f"cell did not finish in {timeout}s: {run.text()!r}"
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except Exception:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            run.messages.append((time.monotonic(), msg["msg_type"], msg["content"]))
            if on_message:
                on_message(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return run

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


class Run:
    """The iopub messages of one cell."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, str, dict]] = []

    def streams(self, name: Optional[str] = None) -> list[tuple[float, str]]:
        return [(t, c["text"]) for t, kind, c in self.messages
                if kind == "stream" and (name is None or c["name"] == name)]

    def text(self, name: Optional[str] = None) -> str:
        return "".join(text for _, text in self.streams(name))

    @property
    def error(self) -> Optional[dict]:
        return next((c for _, kind, c in self.messages if kind == "error"), None)

    def displays(self) -> list[str]:
        return [c["data"].get("text/plain", "") for _, kind, c in self.messages
                if kind in ("display_data", "update_display_data", "execute_result")]


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_problem() -> Optional[str]:
    if not os.path.exists(CHROMIUM):
        return f"no {CHROMIUM}; run `bash scripts/browser` as root"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


SLURM_CONF = os.environ.get("JUPYTER_JOBS_SLURM_DIR", "/tmp/jupyter-jobs-slurm") + "/slurm.conf"


def slurm_problem() -> Optional[str]:
    try:
        ping = subprocess.run(["scontrol", "ping"], env={**os.environ, "SLURM_CONF": SLURM_CONF},
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Slurm client tools ({exc}); run `bash scripts/slurm-cluster` as root"
    if "UP" not in ping.stdout:
        return f"no Slurm cluster at {SLURM_CONF}; run `bash scripts/slurm-cluster` as root"
    return None


@contextlib.contextmanager
def host_pool(prefix: str) -> Iterator[Path]:
    """A host's GPU pool folder as an admin makes it (root's, sticky, writable by all) in a
    folder every user can reach; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(base, 0o755)
    folder = base / "pool"
    folder.mkdir()
    os.chmod(folder, 0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(base, ignore_errors=True)


def git(*args: str, cwd: Path) -> str:
    """Run git with a fixed identity and no user config; its output, stripped."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}).stdout.strip()
