"""Three Unix users, each with their own Jupyter server (running as that user), share a
configured GPU inventory through the host's pool under the admin's policy: a burst from all
three is served by fair share (the user who used the least GPU time lately first, whatever the
order of submission), each waiting job says which rule holds it, and the quotas refuse or hold
with reasons in words. No GPU here: the inventory is configured, the same interface NVML fills;
the users, servers, processes, files and allocation are real."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from jupyter_jobs.jobs.gpupool import HostGPUPool
from rootless import PYTHON, PodmanUser, unix_account
from support import ServerProcess, host_pool, kill_running_jobs, require

USERS = ("jjfair-alice", "jjfair-bob", "jjfair-carol")


def unix_user(name: str) -> PodmanUser:
    """A throwaway user with a home, who can run the test Python (no Podman needed here)."""
    require("root (to act as throwaway local users)", None if os.geteuid() == 0 else "run as root")
    require("a Python other users can run", None if PYTHON.exists() else "run `bash scripts/podman` as root")
    entry = unix_account(name)
    return PodmanUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), Path(entry.pw_dir), login=False)


@pytest.fixture
def host():
    """The admin's pool folder (root's, sticky) with the host's policy, and the users' servers."""
    with host_pool("jjfair-") as pool:
        (pool / "policy.json").write_text(json.dumps({"default": {"gpus": 2}, "users": {"root": {"gpus": 4}}}))
        os.chmod(pool / "policy.json", 0o644)
        servers: list[ServerProcess] = []

        def start(name: str) -> ServerProcess:
            user = unix_user(name)
            server = user.server(pool.parent / name, "--JobsApp.gpus=4", f"--JobsApp.gpu_pool_dir={pool}",
                                 "--LocalBackend.max_running=10")
            servers.append(server)
            return server.start()

        yield pool, start
        for server in servers:
            server.stop(signal.SIGKILL)
            kill_running_jobs(server.data / "jobs.db")


def submit(server: ServerProcess, gpus: int, seconds: float) -> str:
    spec = {"command": f"sleep {seconds}", "resources": {"gpus": gpus}}
    return server.request("POST", "/jupyter-jobs/jobs", spec)["id"]


def test_a_burst_from_three_users_is_served_by_fair_share(host):
    pool, start = host
    alice, bob, carol = (start(name) for name in USERS)
    for server, gpus, seconds in ((alice, 2, 3), (bob, 1, 1.5)):  # lately: alice ~6 GPU-s, bob ~1.5, carol 0
        assert server.wait(submit(server, gpus, seconds), timeout=60)["status"] == "succeeded"
    blocker = HostGPUPool(pool, [0, 1, 2, 3], 1, "the admin's maintenance")  # root's: holds all four
    for i in range(4):
        assert blocker.allocate(1, f"maintenance{i}", 0.0)[0] == [i]
    burst = [(server, submit(server, 1, 1)) for server in (alice, alice, bob, bob, carol, carol)]  # alice first
    rule = re.compile(r"^needs 1 GPU\(s\), 0 of 4 free; jjfair-alice has used \d+ GPU-s lately, more than "
                      r"jjfair-carol \(0 GPU-s\); #5 for a GPU")  # behind carol's and bob's
    deadline = time.monotonic() + 30
    while not rule.search(waiting := alice.request("GET", f"/jupyter-jobs/jobs/{burst[0][1]}")["waiting"] or ""):
        assert time.monotonic() < deadline, waiting  # every job tries, leaves its ticket, and looks again
        time.sleep(0.1)
    for i in range(4):
        blocker.release(f"maintenance{i}")
    done = [(server, server.wait(job, timeout=90)) for server, job in burst]
    assert all(job["status"] == "succeeded" for _, job in done), done
    first = {name: min(job["started_at"] for server, job in done if server is srv)
             for name, srv in zip(USERS, (alice, bob, carol))}
    assert first["jjfair-carol"] <= first["jjfair-bob"] < first["jjfair-alice"], first


def test_quotas_refuse_and_hold_with_reasons(host):
    alice = host[1]("jjfair-alice")
    never = alice.wait(submit(alice, 3, 1), timeout=30)
    assert (never["status"], never["message"]) == ("failed", "asks for 3 GPUs; jjfair-alice may hold 2 at once")
    running = submit(alice, 2, 30)
    alice.wait(running, statuses={"running"}, timeout=30)
    held = submit(alice, 1, 1)
    time.sleep(1.5)
    job = alice.request("GET", f"/jupyter-jobs/jobs/{held}")
    assert job["status"] == "queued", job
    assert job["waiting"].startswith("jjfair-alice holds 2 GPUs of 2 allowed at once"), job
    alice.request("POST", f"/jupyter-jobs/jobs/{running}/cancel")
    assert alice.wait(held, timeout=30)["status"] == "succeeded"
