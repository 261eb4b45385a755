"""The local backend's supervisors come from a fork server (a fork of a loaded interpreter, not a
new one per job): real processes, real signals. How a supervisor ended is known even though the
server is not its parent, and a fork server that dies takes no job with it."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from support import log_text

PARENT = "import os, sys, time\nprint(os.getppid(), flush=True)\ntime.sleep(float(sys.argv[1]))\nprint('done')\n"


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


async def _supervisor(api, workspace: Path, seconds: float) -> tuple[dict, int]:
    """A running job and its supervisor's pid (the parent of the job's command)."""
    (workspace / "parent.py").write_text(PARENT)
    job = await api.submit({"command": ["python", "parent.py", str(seconds)], "workspace": "proj"})
    await api.wait(job["id"], {"running"})
    deadline = asyncio.get_running_loop().time() + 20
    while not (text := log_text(await api.logs(job["id"]))).strip():
        assert asyncio.get_running_loop().time() < deadline, "the job never printed its parent"
        await asyncio.sleep(0.05)
    return job, int(text.split()[0])


async def test_supervisors_are_forked_and_their_end_is_known(api, workspace):
    job, relay = await _supervisor(api, workspace, 60)
    forks = _parent(relay)
    assert forks != os.getpid() and "--fork-server" in _cmdline(forks)
    assert os.getsid(relay) == relay  # a session of its own: it outlives the server
    os.kill(relay, signal.SIGKILL)  # its exit code comes from the fork server, its parent
    done = await api.wait(job["id"])
    assert (done["status"], done["exit_code"]) == ("failed", 137), done


async def test_a_fork_server_that_dies_takes_no_job_with_it(api, workspace):
    job, relay = await _supervisor(api, workspace, 1.5)
    forks = _parent(relay)
    assert "--fork-server" in _cmdline(forks)
    os.kill(forks, signal.SIGKILL)
    done = await api.wait(job["id"])  # ended as it would have: the supervisor wrote its exit code
    assert done["status"] == "succeeded" and log_text(await api.logs(job["id"])).endswith("done\n"), done
    after = await api.submit({"command": "echo again", "workspace": "proj"})  # a new fork server starts it
    assert (await api.wait(after["id"]))["status"] == "succeeded"
    assert log_text(await api.logs(after["id"])) == "again\n"


async def test_a_pipeline_reading_less_than_it_is_given_ends_quietly(api, workspace):
    """`yes | head -1`: the writer dies of SIGPIPE, as in a terminal (Python, which supervises,
    ignores SIGPIPE; a job must not inherit that and print `Broken pipe`)."""
    job = await api.submit({"command": "yes | head -1; echo ok", "workspace": "proj"})
    done = await api.wait(job["id"])
    text = log_text(await api.logs(job["id"]))
    assert done["status"] == "succeeded" and text == "y\nok\n", text


def test_a_closed_fork_server_ends_at_once_and_its_supervisors_run_on():
    """Closing it is an EOF it sees while a thread of ours is blocked reading from it (a socket
    only closed stays open until that read returns: it was killed after 5 s, every server stop)."""
    import sys

    from jupyter_jobs.backends.forks import ForkServer
    from jupyter_jobs.backends.local import RELAY

    forks = ForkServer([sys.executable, "-I", "-S", RELAY], lambda: dict(os.environ))
    gate_read, gate = os.pipe()
    relay = forks.start(gate_read)
    os.close(gate_read)
    server = forks._proc
    forks.close()
    assert server is not None and server.returncode == 0  # it ended by itself, not killed
    assert os.getsid(relay.pid) == relay.pid and _parent(relay.pid) != server.pid  # alive, its own
    os.close(gate)  # EOF at its gate before any job: it ends


def test_a_supervisors_end_is_told_as_it_happens():
    """The fork server's record of an end calls the supervisor's hook (the local backend's
    follower looks at the job then, not at its next round), with its exit code already known."""
    import sys
    import threading

    from jupyter_jobs.backends.forks import ForkServer
    from jupyter_jobs.backends.local import RELAY

    forks = ForkServer([sys.executable, "-I", "-S", RELAY], lambda: dict(os.environ))
    try:
        gate_read, gate = os.pipe()
        relay = forks.start(gate_read)
        os.close(gate_read)
        told = threading.Event()
        codes: list = []
        relay.on_end = lambda: (codes.append(relay.poll()), told.set())
        assert relay.poll() is None and not told.is_set()
        os.close(gate)  # EOF before any job: the supervisor ends, exit code 0
        assert told.wait(10), "no end was told"
        assert codes == [0] and relay.returncode == 0
    finally:
        forks.close()
