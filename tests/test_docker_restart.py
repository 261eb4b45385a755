"""Docker jobs across restarts of the Jupyter server and of the Docker engine itself."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import STRICT, log_text, require

BUSYBOX = "jupyter-jobs/busybox:test"
COUNT = 'i=0; while [ $i -lt {n} ]; do echo "line $i"; i=$((i+1)); sleep {pause}; done'


@pytest.fixture(autouse=True)
def _engine(docker_client):
    yield


def submit(server, command):
    return server.request("POST", "/jupyter-jobs/jobs", {"backend": "docker", "image": BUSYBOX, "command": command})


def wait_text(server, job_id, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in log_text(server.logs(job_id)):
        assert time.monotonic() < deadline, f"{text!r} never appeared"
        time.sleep(0.05)


def leftover(client, job_id):
    """The job's containers as the engine lists them (no per-container inspect, which races a
    container being removed between the list and the inspect)."""
    return client.api.containers(all=True, filters={"label": f"jupyter_jobs.job={job_id}"})


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "crash"])
def test_running_container_is_reattached_with_no_lost_or_repeated_lines(server_process, docker_client, sig):
    server = server_process().start()
    job = submit(server, COUNT.format(n=60, pause=0.05))
    wait_text(server, job["id"], "line 5\n")
    server.stop(sig)
    time.sleep(0.7)  # it goes on printing while no server watches
    server.start()
    chunks = server.logs(job["id"], follow=True)
    assert log_text(chunks) == "".join(f"line {i}\n" for i in range(60))
    assert chunks[-1]["status"] == "succeeded"
    assert leftover(docker_client, job["id"]) == []


def test_container_that_finished_while_down(server_process, docker_client):
    server = server_process().start()
    job = submit(server, "echo begun; sleep 1; echo ended >&2; exit 5")
    wait_text(server, job["id"], "begun")
    server.stop(signal.SIGKILL)
    time.sleep(2)
    server.start()
    done = server.wait(job["id"])
    assert done["status"] == "failed" and done["exit_code"] == 5
    chunks = server.logs(job["id"])
    assert log_text(chunks, "stdout") == "begun\n" and log_text(chunks, "stderr") == "ended\n"
    assert leftover(docker_client, job["id"]) == []


def test_engine_restart_mid_job_ends_the_job_clearly(server_process, docker_client):
    opted_in = STRICT or os.environ.get("JUPYTER_JOBS_RESTART_DOCKER") == "1"
    require("docker engine restart", None if opted_in else "it restarts dockerd: set JUPYTER_JOBS_RESTART_DOCKER=1")
    server = server_process().start()
    job = submit(server, "echo up; sleep 120")
    wait_text(server, job["id"], "up")
    subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=True)
    deadline = time.monotonic() + 60
    while subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.2)
    subprocess.run(["bash", str(Path(__file__).parent.parent / "scripts" / "docker-engine")], check=True,
                   capture_output=True)
    done = server.wait(job["id"], timeout=90)
    assert done["status"] == "failed" and done["reason"] == "backend_error"
    assert "Docker engine" in done["message"]


def test_a_crash_between_create_and_record_never_runs_the_container_twice(server_process, docker_client):
    """The launch is recorded before the container starts: a server killed in between leaves a
    created, never started container, which the next server replaces; the job runs once."""
    import sqlite3

    for _attempt in range(3):
        server = server_process().start()
        lock = sqlite3.connect(server.data / "jobs.db", timeout=30, isolation_level=None)
        job = submit(server, 'echo ran >> "/storage/runs-$JOB_ID"; echo ran')
        lock.execute("BEGIN IMMEDIATE")  # the server can no longer record anything
        deadline = time.monotonic() + 10
        while not (held := leftover(docker_client, job["id"])) and time.monotonic() < deadline:
            time.sleep(0.01)
        state = lock.execute("SELECT status, backend_state FROM jobs WHERE id = ?", (job["id"],)).fetchone()
        if not held or state != ("queued", "{}"):
            lock.execute("ROLLBACK")  # it got past the window before the lock: try again
            server.stop(signal.SIGKILL)
            continue
        assert held[0]["State"] == "created"  # created, never started
        server.stop(signal.SIGKILL)
        lock.execute("ROLLBACK")
        lock.close()
        server.start()
        done = server.wait(job["id"], timeout=60)
        assert done["status"] == "succeeded" and log_text(server.logs(job["id"])) == "ran\n"
        assert (server.data / "storage" / f"runs-{job['id']}").read_text() == "ran\n"
        return
    pytest.fail("never caught the server between creating a container and recording it")
