"""Shared fixtures: a real Jupyter server with the extension (in-process through pytest-jupyter,
or as a separate `jupyter server` process for restart tests), and a small REST client."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from support import TERMINAL, ServerProcess, docker_problem, free_port, git, kill_running_jobs, require

pytest_plugins = ["pytest_jupyter.jupyter_server", "rootless"]  # rootless: users with their own Podman
@pytest.fixture(scope="session")
def docker_client():
    require("docker", docker_problem())
    import docker

    return docker.from_env(timeout=60)


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
def extra_config() -> dict[str, Any]:
    """Other config sections for a test (e.g. {"DockerBackend": {...}})."""
    return {}


@pytest.fixture
def jp_server_config(jobs_data: Path, jobs_config: dict[str, Any], extra_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_jobs": True}},
        # a GPU pool of the test's own: tests never share devices with each other or the host
        "JobsApp": {"data_dir": str(jobs_data), "kill_grace": 2.0, "gpu_pool_dir": str(jobs_data.parent / "gpu-pool"),
                    **jobs_config},
        **extra_config,
    }


class Api:
    """The REST API through pytest-jupyter's authenticated `jp_fetch`."""

    def __init__(self, fetch: Any):
        self.fetch = fetch

    async def call(self, method: str, *path: str, body: Any = None, params: Optional[dict] = None,
                   expect: Optional[int] = 200, headers: Optional[dict] = None) -> Any:
        kwargs: dict[str, Any] = {"method": method, "raise_error": False}
        if headers:
            kwargs["headers"] = headers
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method == "POST":
            kwargs["body"] = b""
        if params:
            kwargs["params"] = params
        resp = await self.fetch("jupyter-jobs", *path, **kwargs)
        assert expect is None or resp.code == expect, f"{method} {path}: {resp.code} {resp.body[:500]!r}"
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


@pytest.fixture(scope="module")
def repo(tmp_path_factory):  # module-scoped: one daemon per test file
    """A repository with a tag v1 and a newer main, served by git daemon."""
    base = tmp_path_factory.mktemp("served")
    work = base / "repo"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "train.py").write_text("print(open('version.txt').read().strip())\n")
    (work / "version.txt").write_text("one\n")
    (work / "sub").mkdir()
    (work / "sub" / "inner.txt").write_text("inside\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "one", cwd=work)
    git("tag", "v1", cwd=work)
    v1 = git("rev-parse", "HEAD", cwd=work)
    (work / "version.txt").write_text("two\n")
    git("commit", "-q", "-am", "two", cwd=work)
    git("clone", "-q", "--bare", str(work), str(base / "repo.git"), cwd=base)
    port = free_port()
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
                               "--listen=127.0.0.1", f"--port={port}", str(base)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while subprocess.run(["git", "ls-remote", f"git://127.0.0.1:{port}/repo.git"], capture_output=True).returncode:
        assert time.monotonic() < deadline, "git daemon did not start"
        time.sleep(0.1)
    yield {"url": f"git://127.0.0.1:{port}/repo.git", "path": str(base / "repo.git"), "work": work, "v1": v1,
           "main": git("rev-parse", "HEAD", cwd=work), "bare": base / "repo.git"}
    daemon.terminate()
    daemon.wait()
