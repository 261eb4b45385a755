"""What an audit broke, as tests against real parts: artifact downloads racing symlink swaps,
a job that must run exactly once across a crash, processes that try to escape their job, and
bad input that must be a 400 naming the field."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from jupyter_jobs.backends import cgroups
from support import log_text, require

SWAPPER = r"""
import os, sys, time
os.chdir(os.environ["JOB_ARTIFACTS_DIR"])
os.makedirs("real", exist_ok=True)
open("real/data.txt", "w").write("ok\n")
print("swapping", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    open("f.tmp", "w").write("ok\n"); os.replace("f.tmp", "out.txt")
    os.symlink("/etc/passwd", "l.tmp"); os.replace("l.tmp", "out.txt")
    os.symlink("/etc", "d.tmp"); os.replace("d.tmp", "dir")
    os.symlink("real", "d.tmp"); os.replace("d.tmp", "dir")
"""


async def _downloads_never_leave_the_artifacts(api, job_id: str, rounds: int) -> set[int]:
    codes = set()
    host_file = Path("/etc/passwd").read_bytes()
    for _ in range(rounds):
        for path in ("out.txt", "dir/passwd", "dir/data.txt"):
            resp = await api.fetch("jupyter-jobs", "jobs", job_id, "artifacts", path, raise_error=False)
            codes.add(resp.code)
            assert resp.code in (200, 404), resp.code
            if resp.code == 200:
                assert resp.body == b"ok\n", f"{path} served {resp.body[:40]!r}"
                assert resp.body != host_file
        listing = await api.call("GET", "jobs", job_id, "artifacts")
        assert {a["path"] for a in listing["artifacts"]} <= {"out.txt", "real/data.txt", "f.tmp"}
    return codes


async def test_artifact_downloads_never_follow_a_swapped_in_symlink(api, workspace):
    (workspace / "swap.py").write_text(SWAPPER)
    job = await api.submit({"command": ["python", "swap.py", "8"], "workspace": "proj"})
    await api.wait_for_output(job["id"], "swapping")
    codes = await _downloads_never_leave_the_artifacts(api, job["id"], 150)
    assert 200 in codes  # the race was really run: real files were served between the swaps
    await api.call("POST", "jobs", job["id"], "cancel", body={})


async def test_a_symlink_loop_in_the_workspace_is_left_out_with_a_note(api, jp_root_dir):
    (jp_root_dir / "loop-a").symlink_to("loop-b")
    (jp_root_dir / "loop-b").symlink_to("loop-a")
    job = await api.submit({"command": "echo fine"})  # the default workspace: the whole root
    assert any("loop-a" in note and "symlink loop" in note for note in job["notes"])
    assert (await api.wait(job["id"]))["status"] == "succeeded"


@pytest.mark.parametrize(("body", "field"), [
    ({"command": "x", "timeout": 10**300}, "timeout"),
    ({"command": "x", "resources": {"memory": 10**300}}, "resources.memory"),
    ({"command": "x", "resources": {"gpus": False}}, "resources.gpus"),
    ({"command": "x", "resources": {"gpus": "2"}}, "resources.gpus"),
    ({"command": "x", "resources": {"nodes": 1.5}}, "resources.nodes"),
    ({"command": "x", "env": {"A\nB": "1"}}, "env"),
    ({"command": "x", "env": {"BIG": "v" * (40 << 10)}}, "env"),
    ({"command": "x" * (70 << 10)}, "command"),
    ({"command": ["x"] * 20000}, "command"),
    ({"command": "x", "image": "i" * 2000}, "image"),
])
async def test_bad_input_is_a_400_naming_the_field(api, body, field):
    reply = await api.submit(body, expect=400)
    assert field in {e["field"] for e in reply["errors"]}, reply


@pytest.mark.parametrize("raw", [
    "[" * 100_000 + "]" * 100_000,  # nested too deeply for any parser
    json.dumps({"command": "x", "env": {f"K{i}": "v" * 1000 for i in range(2000)}}),  # 2 MB
], ids=["nested", "too-large"])
async def test_bodies_that_are_too_deep_or_too_large_are_refused(api, raw):
    reply = await api.submit(raw, expect=400)
    assert reply["errors"][0]["field"] == "body"
    assert (await api.call("GET", "jobs"))["jobs"] == []  # nothing was stored


@pytest.mark.parametrize("job_id", ["odd.id", "with space", "a%2Fb", "ünïcode"])
async def test_any_unknown_job_id_gets_a_json_404(api, job_id):
    resp = await api.call("GET", "jobs", job_id, expect=404)
    assert "no job" in resp["message"]


# -- processes stay inside the job (a cgroup per local job) ------------------------------------
def _cgroup_problem() -> str | None:
    if cgroups.version() is None:
        return "no cgroup hierarchy is mounted"
    if os.geteuid() != 0:
        return "creating cgroups needs root (or a delegated cgroup v2 tree)"
    return None


ESCAPES = (
    "setsid sleep {n}1 > /dev/null 2>&1 &\n"                     # a new session
    "(sleep {n}2 > /dev/null 2>&1 &)\n"                          # a double fork, reparented to init
    "python -c 'import os,time; os.setpgid(0,0); os.fork() or time.sleep({n}3)' &\n"  # a new group
    "echo started\n"
)


def _survivors(n: int) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(f"{n}{k}" in cmd for k in (1, 2, 3)) and ("sleep" in cmd or "python" in cmd):
            found.append(f"{pid}: {cmd}")
    return found


async def _until_gone(n: int, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _survivors(n)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


def _contain(jp_serverapp, contained: bool) -> None:
    """With a cgroup per job, or (where none can be made) the supervisor as subreaper alone."""
    if contained:
        require("cgroups", _cgroup_problem())
    app = jp_serverapp.extension_manager.extension_apps["jupyter_jobs"].pop()
    app.service.backends["local"].cgroups = contained


@pytest.mark.parametrize("contained", [True, False], ids=["cgroup", "subreaper"])
async def test_nothing_a_job_starts_outlives_it(api, workspace, jp_serverapp, contained):
    _contain(jp_serverapp, contained)
    n = 9871 if contained else 9873
    job = await api.submit({"command": ESCAPES.format(n=n) + "sleep 0.5\n", "workspace": "proj"})
    done = await api.wait(job["id"])
    assert done["status"] == "succeeded" and "started" in log_text(await api.logs(job["id"]))
    assert await _until_gone(n) == []


@pytest.mark.parametrize("contained", [True, False], ids=["cgroup", "subreaper"])
async def test_cancel_ends_every_process_of_the_job(api, workspace, jp_serverapp, contained):
    _contain(jp_serverapp, contained)
    n = 9872 if contained else 9874
    job = await api.submit({"command": ESCAPES.format(n=n) + "sleep 600\n", "workspace": "proj"})
    await api.wait_for_output(job["id"], "started")
    await asyncio.sleep(0.3)
    assert len(_survivors(n)) >= 3  # the escapes did escape their process group
    await api.call("POST", "jobs", job["id"], "cancel", body={})
    assert (await api.wait(job["id"]))["status"] == "cancelled"
    assert await _until_gone(n) == []


async def test_local_jobs_get_their_memory_and_cpu_limits(api, workspace):
    require("cgroups", _cgroup_problem())
    hog = "python -c 'b = bytearray(400 << 20); print(len(b))'"
    job = await api.submit({"command": hog, "workspace": "proj", "resources": {"memory": "64m"}})
    done = await api.wait(job["id"])
    assert (done["status"], done["reason"]) == ("failed", "oom"), done
    quota = ("""p=$(grep -E ':cpu,cpuacct:|:cpu:' /proc/self/cgroup | cut -d: -f3); """
             """echo "$p" >&2; cat /sys/fs/cgroup/cpu$p/cpu.cfs_quota_us""" if cgroups.version() == 1
             else """p=$(cut -d: -f3 /proc/self/cgroup); echo "$p" >&2; cut -d' ' -f1 /sys/fs/cgroup$p/cpu.max""")
    job = await api.submit({"command": quota, "workspace": "proj", "resources": {"cpus": 0.5}})
    assert (await api.wait(job["id"]))["status"] == "succeeded"
    chunks = await api.logs(job["id"])
    assert log_text(chunks, "stdout").strip() == "50000"
    assert log_text(chunks, "stderr").startswith("/jupyter_jobs/")  # the job's own cgroup
    backends = await api.call("GET", "backends")
    local = next(b for b in backends["backends"] if b["name"] == "local")
    assert local["capabilities"]["cpus"] and local["capabilities"]["memory"]


# -- exactly once, across a crash ---------------------------------------------------------------
COUNT = "import os; open(os.environ['JOB_STORAGE_DIR'] + '/runs', 'a').write('ran\\n'); print('ran')"


def test_a_crash_between_spawn_and_record_never_runs_the_job_twice(server_process):
    """The window the audit widened: the history is locked (another writer holds it) while the
    job's process is spawned; the server is killed before it can record the launch."""
    for _attempt in range(3):
        server = server_process().start()
        lock = sqlite3.connect(server.data / "jobs.db", timeout=30, isolation_level=None)
        job = server.request("POST", "/jupyter-jobs/jobs", {"command": ["python", "-c", COUNT]})
        lock.execute("BEGIN IMMEDIATE")  # from here on the server cannot record anything
        wrapper = _wait_for_wrapper(server.data / "jobs" / job["id"])
        state = lock.execute("SELECT status, backend_state FROM jobs WHERE id = ?", (job["id"],)).fetchone()
        if not wrapper or state != ("queued", "{}"):
            lock.execute("ROLLBACK")  # it got past the window before the lock: try again
            server.stop(signal.SIGKILL)
            continue
        server.stop(signal.SIGKILL)
        lock.execute("ROLLBACK")
        lock.close()
        server.start()
        done = server.wait(job["id"])
        assert done["status"] == "succeeded"
        assert log_text(server.logs(job["id"])) == "ran\n"
        time.sleep(0.5)  # the first wrapper, had it run the command, would have written by now
        assert (server.data / "storage" / "runs").read_text() == "ran\n"
        return
    pytest.fail("never caught the server between spawning a job and recording it")


def _wait_for_wrapper(job_dir: Path, timeout: float = 5) -> bool:
    """Whether the job's supervisor took the job (it opens its diagnostics file in the job's
    folder as it does), held at its gate."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (job_dir / "relay.log").exists():
            return True
        time.sleep(0.01)
    return False
