"""The host-wide GPU pool against a hostile local user: real throwaway Unix users (made with
`useradd`, as root) put whatever they like in the pool's folder while two real Jupyter servers
(root's, as two JupyterHub users' servers) share a configured 4-GPU inventory through it.
Nothing they do may block, freeze or mislead the servers: every endpoint answers, jobs get
free devices promptly, one device never goes to two jobs, `gpus_per_user` counts real jobs."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import host_pool, ServerProcess, kill_running_jobs, require

MALLORY = "jjpool-mallory"  # the attacker
CAROL = "jjpool-carol"  # a user whose container runs as root on the host
#: a Python the throwaway users can run (the test's own may live under /root)
PYTHON = "/usr/bin/python3"

JOB = ('echo "$(date +%s.%N) $CUDA_VISIBLE_DEVICES $JOB_ID" >> {log}.start; sleep {sleep}; '
       'echo "$(date +%s.%N) $CUDA_VISIBLE_DEVICES $JOB_ID" >> {log}.end')

#: what the attacker runs, as herself: `mode` picks the attack; it goes on until killed
ATTACK = r'''
import fcntl, json, os, sys, time
pool, mode, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

def start(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    except OSError:
        return None

me, init = {"pid": os.getpid(), "start": start(os.getpid())}, {"pid": 1, "start": start(1)}
own = os.path.join(pool, "mallory")
os.makedirs(own, exist_ok=True)
os.chmod(own, 0o755)

def put(path, data):
    with open(path + ".new", "w") as fh:
        json.dump(data, fh)
    os.chmod(path + ".new", 0o644)
    os.replace(path + ".new", path)

def tree():
    found = [pool]
    for folder in [pool] + [os.path.join(pool, n) for n in os.listdir(pool)]:
        try:
            found += [os.path.join(folder, n) for n in os.listdir(folder)]
        except OSError:
            pass
    return found

locked, planted, ready = {}, set(), False
while True:
    if mode == "lock":  # flock everything it can open, and keep it locked
        for path in tree():
            if path not in locked:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked[path] = fd
                except OSError:
                    os.close(fd)
    elif mode == "fifo" and not ready:  # FIFOs named like records and tickets, everywhere it may
        for folder in [pool, own]:
            for name in ("gpu-jam.json", "wait-jam.json", "service.json",
                         *(f"gpu-{p}-jam.json" for p in extra["prefixes"])):
                try:
                    os.mkfifo(os.path.join(folder, name), 0o666)
                except OSError:
                    pass
    elif mode == "forge":  # records and tickets that lie, renewed as an honest server's are
        for folder in [pool, own]:
            for p in extra["prefixes"]:
                if extra.get("init", True):
                    put(os.path.join(folder, f"gpu-{p}-forged1.json"), {
                        "gpus": [0, 1, 2, 3], "user": 0, "server": init, "holder": init, "job": "forged1",
                        "since": 0})
                for server in extra["servers"]:  # in root's name, naming root's live server
                    put(os.path.join(folder, f"gpu-{p}-forged{server['pid']}.json"), {
                        "gpus": [0, 1], "user": 0, "server": server, "holder": None, "job": f"f{server['pid']}",
                        "since": 0})
                if extra.get("tickets", True):
                    put(os.path.join(folder, f"wait-{p}-forged3.json"), {
                        "count": 1, "since": 0, "at": 1e12, "user": 0, "server": init, "job": "forged3"})
                    put(os.path.join(folder, f"wait-{p}-forged4.json"), {
                        "count": 1, "since": 0, "at": time.time(), "user": os.getuid(), "server": me,
                        "job": "forged4"})
            put(os.path.join(folder, "service.json"), {"service": extra["prefixes"][0], "server": me})
        if extra.get("own"):  # a real claim of her own: her own live process holds devices 0 and 1
            put(os.path.join(own, "gpu-mine-1.json"), {"gpus": [0, 1], "user": os.getuid(), "server": me,
                                                       "holder": me, "job": "mine", "since": 0})
    elif mode == "plant":  # a temporary file under every name a server may write, then take it over
        for path in tree():
            name = os.path.basename(path)
            if not name.endswith(".json") or not name.startswith(("gpu-", "wait-")):
                continue
            try:
                info = os.stat(path, follow_symlinks=False)
                with open(path) as fh:
                    server = json.load(fh).get("server") or {}
            except (OSError, ValueError):
                continue
            if info.st_uid == os.getuid() and path not in planted:
                try:
                    os.unlink(path)  # a server's record written into her file: she removes it
                except OSError:
                    pass
                continue
            stem = path[:-len(".json")]
            for victim in (f"{stem}.{server.get('pid')}.tmp", f"{stem.replace('wait-', 'gpu-', 1)}."
                           f"{server.get('pid')}.tmp"):
                try:
                    os.close(os.open(victim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                    os.chmod(victim, 0o666)
                except OSError:
                    pass
    if not ready:
        print("ready", flush=True)
        ready = True
    time.sleep(0.005 if mode == "plant" else 0.1 if mode == "lock" else 1.0)
'''


def _user(name: str) -> pwd.struct_passwd:
    require("root (to act as throwaway local users)",
            None if os.geteuid() == 0 else "these tests make Unix users with useradd and act as them")
    require("runuser and useradd", None if shutil.which("runuser") and shutil.which("useradd") and
            os.path.exists(PYTHON) else f"needs runuser, useradd and {PYTHON}")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        return pwd.getpwnam(name)


@pytest.fixture(scope="session")
def mallory() -> pwd.struct_passwd:
    return _user(MALLORY)


@pytest.fixture(scope="session")
def carol() -> pwd.struct_passwd:
    return _user(CAROL)


@pytest.fixture
def pool():
    """The host's pool folder, made by an administrator (root, sticky, world-writable) in a
    folder every user can reach."""
    with host_pool("jjpool-") as folder:
        yield folder


@pytest.fixture
def attack(pool, mallory):
    """Start an attack as mallory; it runs until the test ends."""
    started = []

    def run(mode: str, **extra) -> subprocess.Popen:
        proc = subprocess.Popen(["runuser", "-u", MALLORY, "--", PYTHON, "-I", "-c", ATTACK, str(pool), mode,
                                 json.dumps(extra)], stdout=subprocess.PIPE, start_new_session=True)
        started.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready and proc.stdout.readline().strip() == b"ready", "the attack did not start"
        return proc

    yield run
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


@pytest.fixture
def servers(tmp_path, pool):
    """Root's two servers on the pool (started by the test, after or before the attack)."""
    made = []

    def start(*extra: str) -> list[ServerProcess]:
        for name in ("alice", "bob"):
            (tmp_path / name / "root" / "w").mkdir(parents=True)
            made.append(ServerProcess(tmp_path / name / "root", tmp_path / name / "data", extra=[
                "--JobsApp.gpus=4", f"--JobsApp.gpu_pool_dir={pool}", "--LocalBackend.max_running=10",
                "--JobsApp.metrics_interval=0", *extra]).start())
        return made

    yield start
    for server in made:
        server.stop(signal.SIGKILL)
        kill_running_jobs(server.data / "jobs.db")


def prefix(server: ServerProcess) -> str:
    """The name the servers' records had in the shared folder (a guess anyone could make)."""
    return hashlib.sha256(str(server.data.resolve()).encode()).hexdigest()[:12]


def process(pid: int) -> dict:
    from jupyter_jobs.backends.base import start_time

    return {"pid": pid, "start": start_time(pid)}


def answers(servers: list[ServerProcess]) -> None:
    """Every server answers its endpoints (a hang fails: each request gives up after 30 s)."""
    for server in servers:
        reply = server.request("GET", "/jupyter-jobs/backends")
        assert len(reply["gpus"]) == 4
        server.request("GET", "/jupyter-jobs/jobs")


def run_jobs(servers: list[ServerProcess], log: Path, per_server: int, sleep: float,
             timeout: float = 90) -> list[tuple[float, float, str, str]]:
    """GPU jobs submitted to each server, interleaved; all must succeed. Their device intervals."""
    ids = {}
    for _ in range(per_server):
        for server in servers:
            spec = {"command": JOB.format(log=log, sleep=sleep), "workspace": "w", "resources": {"gpus": 1}}
            ids[server.request("POST", "/jupyter-jobs/jobs", spec)["id"]] = server
    answers(servers)  # while jobs wait for devices too
    for job_id, server in ids.items():
        done = server.wait(job_id, timeout=timeout)
        assert done["status"] == "succeeded", done
    starts = {job: (float(at), gpu) for at, gpu, job in (line.split() for line in log.with_suffix(".start")
                                                         .read_text().splitlines())}
    ends = {job: float(at) for at, _, job in (line.split() for line in log.with_suffix(".end").read_text()
                                               .splitlines())}
    held = [(starts[j][0], ends[j], starts[j][1], j) for j in starts]
    assert len(held) == len(ids)
    return held


def never_shared(held: list[tuple[float, float, str, str]]) -> None:
    for a in held:
        for b in held:
            if a is not b and a[2] == b[2]:
                assert a[1] <= b[0] or b[1] <= a[0], f"device {a[2]} held by {a[3]} and {b[3]} at once"


def most_at_once(held: list[tuple[float, float, str, str]]) -> int:
    return max(len([h for h in held if h[0] <= t < h[1]]) for t, *_ in held)


def test_a_lock_held_on_anything_in_the_pool_stops_no_server(servers, attack, tmp_path):
    alice, bob = servers()
    answers([alice, bob])  # the servers have read the pool: whatever they made there is locked now
    attack("lock")
    answers([alice, bob])
    held = run_jobs([alice, bob], tmp_path / "held", per_server=4, sleep=0.5)
    never_shared(held)
    assert {gpu for *_, gpu, _ in held} <= {"0", "1", "2", "3"}


def test_fifos_named_like_records_freeze_no_server(servers, attack, tmp_path):
    alice, bob = servers()
    attack("fifo", prefixes=[prefix(alice), prefix(bob)])
    answers([alice, bob])
    never_shared(run_jobs([alice, bob], tmp_path / "held", per_server=4, sleep=0.5))
    answers([alice, bob])


def test_records_and_tickets_forged_by_another_user_hold_and_delay_nothing(servers, attack, tmp_path):
    """Records naming pid 1 or root's own server, in root's name; tickets older than any job,
    one naming pid 1, one her own live process, renewed: none holds a device or a job back."""
    alice, bob = servers()
    attack("forge", prefixes=[prefix(alice), prefix(bob)], servers=[process(alice.proc.pid), process(bob.proc.pid)])
    answers([alice, bob])
    held = run_jobs([alice, bob], tmp_path / "held", per_server=3, sleep=0.5, timeout=60)
    never_shared(held)
    usage = {g["index"]: g["in_use"] for g in alice.request("GET", "/jupyter-jobs/backends")["gpus"]}
    assert usage == {0: 0, 1: 0, 2: 0, 3: 0}, "the forged records hold nothing"


def test_gpus_per_user_counts_the_users_real_jobs_only(servers, attack, tmp_path):
    """Root may hold 2 devices; mallory forges records in root's name (naming root's own live
    servers) and holds devices 0 and 1 for a live process of her own, in her own name: root's
    jobs run two at a time, on devices 2 and 3, never three."""
    alice, bob = servers("--JobsApp.gpus_per_user=2")
    attack("forge", prefixes=[prefix(alice), prefix(bob)], servers=[process(alice.proc.pid), process(bob.proc.pid)],
           init=False, tickets=False, own=True)
    usage = {g["index"]: g["in_use"] for g in alice.request("GET", "/jupyter-jobs/backends")["gpus"]}
    assert usage == {0: 1, 1: 1, 2: 0, 3: 0}, "her own claim for her own live process holds, in her name"
    held = run_jobs([alice, bob], tmp_path / "held", per_server=2, sleep=2, timeout=60)
    never_shared(held)
    assert {gpu for *_, gpu, _ in held} <= {"2", "3"}
    assert most_at_once(held) == 2, "root's limit counts root's real jobs, all of them and only them"


def test_planted_temporary_files_never_give_one_device_to_two_jobs(servers, attack, tmp_path):
    """She plants a file under each name a server's temporary file may take (next to every
    record and ticket she sees), and removes any record written into one of hers."""
    alice, bob = servers()
    attack("plant")
    held = run_jobs([alice, bob], tmp_path / "held", per_server=6, sleep=0.7)
    never_shared(held)
    answers([alice, bob])


def test_a_users_job_whose_process_root_runs_keeps_its_devices(pool, carol):
    """A non-root user's container whose init runs as root on the host (Docker's default): its
    record names a keeper process of the user's, so the devices stay held while the container
    runs, also once the user's server is gone, and are free once it ends."""
    from jupyter_jobs.jobs.gpupool import HostGPUPool

    container_init = subprocess.Popen(["sleep", "120"])  # root's
    child = os.fork()
    if child == 0:  # carol's server
        code = 1
        try:
            os.setgroups([])
            os.setgid(carol.pw_gid)
            os.setuid(carol.pw_uid)
            theirs = HostGPUPool(pool, [0, 1], 1, "carol's server")
            theirs.python = PYTHON
            got, *_ = theirs.allocate(1, "job", since=1.0)
            theirs.held("job", got, process(container_init.pid))
            code = 0 if got == [0] else 2
        finally:
            os._exit(code)
    assert os.waitpid(child, 0)[1] == 0
    try:
        root = HostGPUPool(pool, [0, 1], 1, "root's server")
        assert root.usage() == {0: 1, 1: 0}, "carol's job still holds its device, her server gone"
        assert root.allocate(2, "two", since=2.0)[0] is None
        assert root.allocate(1, "one", since=3.0)[0] == [1]
    finally:
        container_init.kill()
        container_init.wait()
    deadline = time.monotonic() + 30
    while root.usage()[0]:
        assert time.monotonic() < deadline, "the device stayed held after the container ended"
        time.sleep(0.1)
