"""One GPU pool per host: two real Jupyter servers (different data folders, as two JupyterHub
users' servers) share a configured 4-GPU inventory through the host-wide pool folder. The
devices are configured fakes (no NVIDIA GPU here); the allocation is what is tested."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import ServerProcess, kill_running_jobs

#: each job writes when it held which device; a job of another server must never overlap it
JOB = ('echo "$(date +%s.%N) $CUDA_VISIBLE_DEVICES $JOB_ID" >> {log}.start; sleep {sleep}; '
       'echo "$(date +%s.%N) $CUDA_VISIBLE_DEVICES $JOB_ID" >> {log}.end')


@pytest.fixture
def two_servers(tmp_path):
    pool = tmp_path / "pool"
    servers = []
    for name in ("alice", "bob"):
        (tmp_path / name / "root" / "w").mkdir(parents=True)
        servers.append(ServerProcess(tmp_path / name / "root", tmp_path / name / "data", extra=[
            "--JobsApp.gpus=4", f"--JobsApp.gpu_pool_dir={pool}", "--LocalBackend.max_running=10",
            "--JobsApp.metrics_interval=0"]).start())
    yield servers, pool
    for server in servers:
        server.stop(signal.SIGKILL)
        kill_running_jobs(server.data / "jobs.db")


def intervals(log: Path) -> list[tuple[float, float, str, str]]:
    starts = {job: (float(at), gpu) for at, gpu, job in (line.split() for line in log.with_suffix(".start")
                                                         .read_text().splitlines())}
    ends = {job: float(at) for at, _, job in (line.split() for line in log.with_suffix(".end").read_text()
                                               .splitlines())}
    return [(starts[j][0], ends[j], starts[j][1], j) for j in starts]


def submit(server: ServerProcess, command: str) -> str:
    return server.request("POST", "/jupyter-jobs/jobs", {"command": command, "workspace": "w",
                                                         "resources": {"gpus": 1}})["id"]


def test_two_servers_never_share_a_device_and_all_jobs_run(two_servers, tmp_path):
    (alice, bob), pool = two_servers
    log = tmp_path / "held"
    ids = {}
    for _ in range(10):  # interleaved, as two users at once
        for server in (alice, bob):
            ids[submit(server, JOB.format(log=log, sleep=0.6))] = server
    for job_id, server in ids.items():
        assert server.wait(job_id, timeout=90)["status"] == "succeeded"
    held = intervals(log)
    assert len(held) == 20 and {gpu for *_, gpu, _ in held} <= {"0", "1", "2", "3"}
    for a in held:
        for b in held:
            if a is not b and a[2] == b[2]:
                assert a[1] <= b[0] or b[1] <= a[0], f"device {a[2]} held by {a[3]} and {b[3]} at once"
    # with four devices and twenty jobs of 0.6 s, both servers' jobs ran side by side
    assert max(len([h for h in held if h[0] <= t < h[1]]) for t, *_ in held) >= 3
    assert len(list(pool.glob("*/service.json"))) == 2, "each server writes in a folder of its own"
    assert not [p for p in pool.glob("*/*.json") if p.name not in ("service.json", "usage.json")], \
        "every record is released when its job ends"
    ledgers = [json.loads(p.read_text()) for p in pool.glob("*/usage.json")]
    used = sum(sum(ledger["hours"].values()) for ledger in ledgers)
    assert len(ledgers) == 2 and 20 * 0.6 <= used < 20 * 5, f"each server's ledger has its jobs' GPU time: {used} s"


def test_a_killed_servers_running_jobs_keep_their_devices_until_they_end(two_servers, tmp_path):
    (alice, bob), pool = two_servers
    log = tmp_path / "held"
    theirs = [submit(alice, JOB.format(log=log, sleep=5)) for _ in range(4)]
    deadline = time.monotonic() + 30
    while not log.with_suffix(".start").exists() or len(log.with_suffix(".start").read_text().splitlines()) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    queued_behind = submit(alice, "true")  # queued, holding nothing: it must not keep a device
    alice.stop(signal.SIGKILL)  # the server dies; its four jobs run on
    mine = submit(bob, JOB.format(log=log, sleep=0))
    time.sleep(1.5)
    waiting = bob.request("GET", f"/jupyter-jobs/jobs/{mine}")
    assert waiting["status"] == "queued" and "GPU" in waiting["waiting"], waiting
    done = bob.wait(mine, timeout=60)
    assert done["status"] == "succeeded"
    held = intervals(log)
    ends = [end for _, end, _, job in held if job in theirs]
    (started,) = [start for start, _, _, job in held if job == mine]
    assert len(ends) == 4 and started >= max(ends), "a device was handed out while its job still ran"
    assert queued_behind not in {job for *_, job in held}
    assert all(p.stat().st_uid == os.geteuid() for p in pool.glob("*/gpu-*.json"))


def test_the_pool_serves_the_host_oldest_first_and_ignores_what_does_not_hold(tmp_path):
    """The pool's own rules, on real files and processes (three services in one process)."""
    from jupyter_jobs.jobs.gpupool import HostGPUPool, PoolError

    folder = tmp_path / "pool"
    alice, bob, carol = (HostGPUPool(folder, [0, 1], 1, name) for name in ("alice", "bob", "carol"))
    (folder / "gpu-junk.json").write_text("{not json")
    (folder / "gpu-odd.json").write_text(json.dumps({"gpus": "all", "holder": None}))
    ended = subprocess.Popen(["true"])
    ended.wait()
    (folder / "gpu-gone.json").write_text(json.dumps({"gpus": [0, 1], "holder": {"pid": ended.pid, "start": 1}}))
    assert alice.allocate(2, "a1", since=1.0)[0] == [0, 1]  # junk, odd and a gone holder hold nothing
    assert bob.allocate(1, "b1", since=2.0)[:2] == (None, 0)  # waits, with a ticket
    assert carol.allocate(1, "c1", since=3.0)[0] is None
    alice.release("a1")
    assert carol.allocate(1, "c1", since=3.0)[0] is None, "an older ticket that fits goes first"
    assert bob.allocate(1, "b1", since=2.0)[0] == [0]
    assert carol.allocate(1, "c1", since=3.0)[0] == [1]
    assert oct(folder.stat().st_mode & 0o7777) == "0o1777"
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(PoolError):
        HostGPUPool(link, [0], 1, "dave")


def test_a_record_being_replaced_is_never_missed_by_a_reader(tmp_path):
    """A job's record is rewritten when its job starts (held by its process from then on): a
    reader listing the pool at that moment still counts the device (a miss handed it to two
    jobs at once under load in CI). Real files, a writer and a reader in two processes."""
    import multiprocessing

    from jupyter_jobs.backends.base import start_time
    from jupyter_jobs.jobs.gpupool import HostGPUPool

    folder = tmp_path / "pool"
    alice = HostGPUPool(folder, [0, 1], 1, "alice")
    assert alice.allocate(1, "a1", since=1.0)[0] == [0]
    me = {"pid": os.getpid(), "start": start_time(os.getpid())}
    stop = multiprocessing.Event()

    def rewrite() -> None:
        while not stop.is_set():
            alice.held("a1", [0], me)

    writer = multiprocessing.get_context("fork").Process(target=rewrite)
    writer.start()
    try:
        bob = HostGPUPool(folder, [0, 1], 1, "bob")
        seen = [bob.usage()[0] for _ in range(3000)]
    finally:
        stop.set()
        writer.join()
    assert seen.count(1) == len(seen), f"device 0 looked free in {seen.count(0)} of {len(seen)} reads"
