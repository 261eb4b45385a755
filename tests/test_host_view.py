"""What an admin sees of a shared GPU host (GET /jupyter-jobs/host): two real Jupyter servers on
one pool folder (root's, one of them a host admin, the other not) and a second real Unix user's
service (made with useradd, holding a device and waiting for another) on a configured 4-GPU
inventory, with NVML faked only for utilization (no GPU here). Then one server alone (no pool):
the same view of its own jobs, its week's GPU-hours from its history."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from support import ServerProcess, kill_running_jobs
from test_gpu_policy import BOB, As, pool  # noqa: F401 (the pool fixture: root's sticky folder)

#: pynvml as the servers import it: utilization 40 + the device's index
FAKE_NVML = """
import types
def nvmlInit(): pass
def nvmlShutdown(): pass
def nvmlDeviceGetHandleByIndex(index): return index
def nvmlDeviceGetUtilizationRates(handle): return types.SimpleNamespace(gpu=40 + handle, memory=10)
def nvmlDeviceGetMemoryInfo(handle): return types.SimpleNamespace(used=(handle + 1) * 2**30, total=16 * 2**30, free=0)
"""
#: what must never reach another user: a job's name, its command, its env
SECRETS = ("very-private-name", "hunter2-in-the-command", "s3cr3t-env-value")


def gpu_job(seconds: float = 60) -> dict:
    return {"command": f"echo hunter2-in-the-command; sleep {seconds}", "workspace": "w",
            "name": "very-private-name", "env": {"TOKEN": "s3cr3t-env-value"}, "resources": {"gpus": 1}}


@pytest.fixture
def servers(tmp_path, pool):  # noqa: F811
    fake = tmp_path / "fake-nvml"
    fake.mkdir()
    (fake / "pynvml.py").write_text(FAKE_NVML)
    made = {}
    for name, admins in (("alice", "nobody-here"), ("admin", "root")):
        (tmp_path / name / "root" / "w").mkdir(parents=True)
        made[name] = ServerProcess(tmp_path / name / "root", tmp_path / name / "data", env={"PYTHONPATH": str(fake)},
                                   extra=["--JobsApp.gpus=4", f"--JobsApp.gpu_pool_dir={pool}",
                                          "--LocalBackend.max_running=10", "--JobsApp.metrics_interval=0",
                                          f"--JobsApp.host_admins={admins}"]).start()
    yield made
    for server in made.values():
        server.stop(signal.SIGKILL)
        kill_running_jobs(server.data / "jobs.db")


def host(server: ServerProcess) -> dict:
    return server.request("GET", "/jupyter-jobs/host")


def running(server: ServerProcess, job_id: str) -> dict:
    return server.wait(job_id, {"running"}, timeout=30)


def test_the_admin_sees_the_whole_host_and_a_user_only_their_own_jobs(servers, pool):  # noqa: F811
    alice, admin = servers["alice"], servers["admin"]
    mine = [alice.request("POST", "/jupyter-jobs/jobs", gpu_job())["id"] for _ in range(2)]
    for job_id in mine:
        running(alice, job_id)
    bob = As(BOB, pool, devices=4)  # a real second Unix user: his own process holds one device
    try:
        (held, *_), = [bob("allocate", 1, "bob-train", time.time(), 0, "vision")]
        bob("hold", "bob-train", held)
        theirs = admin.request("POST", "/jupyter-jobs/jobs", gpu_job())["id"]
        device = running(admin, theirs)["gpus"][0]
        assert bob("allocate", 1, "bob-next", time.time(), 0, "vision")[0] is None  # all four busy: a ticket
        waiting = alice.request("POST", "/jupyter-jobs/jobs", gpu_job())["id"]
        deadline = time.monotonic() + 30  # its ticket is written at alice's next queue pass, not by the POST
        while not [q for q in host(admin)["queue"] if q["job"] == waiting]:
            assert time.monotonic() < deadline, "alice's waiting job never reached the host's queue"
            time.sleep(0.1)
        seen = host(admin)
        text = json.dumps(seen)
        assert seen["scope"] == "host" and seen["admin"] is True and seen["user"] == "root"
        holders = {d["index"]: d["holders"] for d in seen["devices"]}
        assert sorted(holders) == [0, 1, 2, 3] and all(len(h) == 1 for h in holders.values())
        assert {h[0]["job"] for h in holders.values()} == {*mine, theirs, "bob-train"}  # every id, for an admin
        assert holders[held[0]][0] == {**holders[held[0]][0], "user": BOB, "project": "vision"}
        assert holders[device][0]["user"] == "root"
        assert {d["index"]: d["utilization"] for d in seen["devices"]} == {i: 40.0 + i for i in range(4)}
        assert [(q["user"], q["job"]) for q in seen["queue"]] == [(BOB, "bob-next"), ("root", waiting)]
        assert "#1 for a GPU" in seen["queue"][0]["waiting"]
        assert "#2 for a GPU" in seen["queue"][1]["waiting"] and BOB in seen["queue"][1]["waiting"]
        assert seen["users"]["root"]["gpus"] == 3 and seen["users"][BOB]["gpus"] == 1
        assert seen["users"][BOB]["running"] == 1 and seen["users"]["root"]["day"] > 0
        assert seen["projects"]["vision"]["gpus"] == 1
        assert seen["policy"]["default"]["max_priority"] == 0 and seen["policy_problem"] is None
        assert not any(s in text for s in SECRETS)  # the pool holds no name, command or env

        own = host(alice)  # not a host admin: other users' (and other servers') job ids are hidden
        text = json.dumps(own)
        assert own["admin"] is False and own["scope"] == "host"
        ids = {h["job"] for d in own["devices"] for h in d["holders"]}
        assert ids == {*mine, None}
        assert {h["user"] for d in own["devices"] for h in d["holders"]} == {"root", BOB}
        assert [(q["user"], q["job"]) for q in own["queue"]] == [(BOB, None), ("root", waiting)]
        assert "bob-train" not in text and "bob-next" not in text and theirs not in text
        assert not any(s in text for s in SECRETS)
    finally:
        bob.stop()


def test_the_admins_policy_not_applied_says_why(servers, pool):  # noqa: F811
    (pool / "policy.json").write_text("{not json")
    os.chmod(pool / "policy.json", 0o644)
    seen = host(servers["admin"])
    assert seen["policy_problem"] == "it is not readable JSON"
    (pool / "policy.json").write_text(json.dumps({"default": {"gpus": 1, "max_priority": 5}}))
    os.utime(pool / "policy.json", (time.time() + 5, time.time() + 5))  # a stamp the reader sees as new
    seen = host(servers["admin"])
    assert seen["policy_problem"] is None
    assert seen["policy"]["default"] == {"max_priority": 5, "gpus": 1, "running": None, "gpu_hours_per_day": None}


# -- one server alone (no host pool) -------------------------------------------------------------
@pytest.fixture
def jobs_config(request):
    return getattr(request, "param", {"gpus": 2, "gpu_pool_dir": "", "metrics_interval": 0})


async def test_without_a_pool_the_server_shows_its_own_gpus_queue_and_history(api, workspace, monkeypatch):
    monkeypatch.setattr("jupyter_jobs.telemetry.host.LEDGER_LIFE", 0.0)  # the history read at every view
    spec = {"command": ["sleep", "2"], "workspace": "proj", "resources": {"gpus": 1}, "project": "mnist"}
    first = [await api.submit(spec) for _ in range(2)]
    for job in first:
        await api.wait(job["id"], {"running"})
    third = await api.submit({**spec, "priority": 0})
    seen = await api.call("GET", "host")
    assert seen["scope"] == "server" and seen["admin"] is True  # root's server
    assert sorted(h["job"] for d in seen["devices"] for h in d["holders"]) == sorted(j["id"] for j in first)
    assert [q["job"] for q in seen["queue"]] == [third["id"]]
    assert "0 of 2 free" in seen["queue"][0]["waiting"]
    assert seen["users"]["root"]["gpus"] == 2 and seen["projects"]["mnist"]["running"] == 2
    assert all(d["utilization"] is None for d in seen["devices"])  # no NVML here: no figures, no error
    await api.wait(third["id"])
    seen = await api.call("GET", "host")
    assert seen["queue"] == [] and all(d["holders"] == [] for d in seen["devices"])
    week = (await api.call("GET", "host"))["users"]["root"]["week"]
    assert 3 * 1.9 / 3600 < week < 3 * 3 / 3600  # three jobs of 2 s on one GPU each, from the history


@pytest.mark.parametrize("jobs_config", [{"gpus": 0, "gpu_pool_dir": ""}], indirect=True)
async def test_a_server_without_gpus_answers_an_empty_host(api):
    seen = await api.call("GET", "host")
    assert seen["devices"] == [] and seen["queue"] == [] and seen["scope"] == "server"


async def test_the_host_view_needs_a_login(jp_fetch, jp_serverapp, jp_base_url):
    from tornado.httpclient import AsyncHTTPClient

    url = f"http://127.0.0.1:{jp_serverapp.port}{jp_base_url}jupyter-jobs/host"
    for headers in ({}, {"Authorization": "token wrong"}):
        resp = await AsyncHTTPClient().fetch(url, headers=headers, raise_error=False)
        assert resp.code == 403 and b"devices" not in resp.body
