"""The `local` backend: the job is a process on the Jupyter host, in its own session and,
where the server may make one, its own cgroup (so nothing it starts escapes, and `cpus` and
`memory` are enforced).

The job runs under a small supervisor (relay.py, in the job's session so it outlives a server
restart): it waits at a gate until the service has recorded the launch, keeps stdout and
stderr apart but in arrival order in one file that a pump thread tails into the job's log,
kills what the command leaves behind, and records the exit code in a file, so the result of
a job that ended while the server was down is still known, and a server that dies before
recording the launch leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from traitlets import Bool, Unicode, default

from .notebooks import runner_source
from ..storage.files import read_regular
from .base import start_time
from ..domain.status import FailureReason
from ..domain.spec import JobSpec
from ..domain.replies import Capabilities
from . import cgroups
from .base import Availability, Backend, BackendError, Execution, JobContext, Outcome, Usage
from .cgroups import JobCgroup
from .forks import ForkServer, Relayed
from .docker_stream import Demux
from .tail import FileTailExecution

RELAY = str(Path(__file__).with_name("relay.py"))
_RELAY_ARGV = [sys.executable, "-I", "-S", RELAY]  # isolated, no site packages: it needs none
HELD = "held"


def _tree_usage(pid: int) -> Usage:
    """Without a cgroup: the supervisor's process tree as it is now (CPU of processes that
    already ended is not counted)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return Usage()
    cpu = rss = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system
            rss += proc.memory_info().rss
        except psutil.Error:
            continue
    return Usage(cpu, int(rss))


class LocalExecution(FileTailExecution):
    """A process group started by this server (`proc`) or found again after a restart."""

    def __init__(self, ctx: JobContext, state: dict[str, Any], proc: Optional[subprocess.Popen | Relayed],
                 cgroup: Optional[JobCgroup], gate: Optional[int] = None):
        super().__init__(ctx, state)
        self.pid = int(state["pid"])
        self.proc = proc
        self.cgroup = cgroup
        self._gate = gate  # the write end of the wrapper's gate, until released
        self.released: Callable[[], None] = lambda: None  # told once the job is let run

    async def release(self) -> None:
        if self._gate is not None:
            os.write(self._gate, b"go\n")
            self._close_gate()
            self.poke()
            self.released()

    def _close_gate(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            os.close(gate)  # unreleased: the wrapper reads EOF and ends without running the command

    def _sources(self) -> list[tuple[str, int, Callable[[bytes], None]]]:
        return [("output", 0, Demux(self.ctx.log.append, self.unseen()).feed)]

    def _alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.state["start_time"] is not None and start_time(self.pid) == self.state["start_time"]

    def _ended(self) -> None:
        # as in a container: when the main process ends, what it left behind goes too
        self._close_gate()
        if self.cgroup is not None:
            self.cgroup.kill()
        elif self.state["start_time"] is not None:
            self._kill_group(signal.SIGKILL)

    def _on_error(self) -> None:  # a job whose output cannot be kept must not run on
        self._ended()
        self._discard_cgroup()

    def _discard_cgroup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.retire()

    def _outcome(self) -> Outcome:
        outcome = self._exit_outcome()
        if self.cgroup is not None:
            if self.cgroup.oom_killed() and outcome.exit_code != 0:
                outcome = Outcome(outcome.exit_code, FailureReason.OOM, "the job went over its memory limit "
                                  "and was killed (raise resources.memory)")
            self.cgroup.retire()
        return outcome

    def _exit_outcome(self) -> Outcome:
        raw = read_regular(self.ctx.dir / "exit_code", 64)  # (a FIFO the job put there is not waited on)
        if raw is not None:
            text = raw.decode(errors="replace").strip()
            with contextlib.suppress(ValueError):
                return Outcome(None, not_started=True) if text == HELD else Outcome(int(text))
        if self.proc is not None and self.proc.returncode is not None:
            code = self.proc.returncode
            return Outcome(128 - code if code < 0 else code)
        return Outcome(None, FailureReason.LOST, "the job's process ended while the server was down "
                       "and left no exit code")

    # -- Execution --------------------------------------------------------------------------
    async def address(self, port: int) -> Optional[tuple[str, int]]:
        return None if self.done() else ("127.0.0.1", port)

    async def process(self) -> Optional[int]:
        return int(self.state["pid"]) if self.state.get("pid") else None

    def usage(self) -> Usage:
        if self.cgroup is not None:
            return Usage(*self.cgroup.usage())
        return _tree_usage(self.pid)

    def terminate(self) -> None:
        self._close_gate()
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill()
        self._signal(signal.SIGUSR1)  # the relay kills the command's group, cleans up, records the end

    def _signal(self, sig: int) -> None:
        if self._alive():
            self._kill_group(sig)

    def _kill_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass
class _Spare:
    """A relay started ahead of need, waiting for a job at its gate."""

    proc: subprocess.Popen | Relayed
    gate: int  # the write end of its stdin
    group: Optional[JobCgroup]

    def discard(self) -> None:
        os.close(self.gate)  # EOF before any job: it ends
        self.proc.wait()
        if self.group is not None:
            self.group.retire()


class LocalBackend(Backend):
    """Processes on the Jupyter host. Works anywhere Jupyter does, Binder included."""

    name = "local"
    description = "a process on the Jupyter server's host"

    shell = Unicode("/bin/sh", help="Shell that runs string commands.").tag(config=True)
    cgroups = Bool(
        True, help="Contain each job in a cgroup of its own where the server may create one (as root, or with "
        "a delegated cgroup v2 tree): nothing the job starts outlives it, and cpus and memory are enforced. "
        "Elsewhere a job is its process group, and cpus and memory are not enforced."
    ).tag(config=True)
    cgroup_parent = Unicode("jupyter_jobs", help="The cgroup under which each job gets its own.").tag(config=True)
    fork_server = Bool(
        True, help="Start each job's supervisor as a fork of a supervisor process kept ready (about 1 ms) "
        "rather than as a new Python process (about 10 ms): a queue drains faster."
    ).tag(config=True)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._spare: Optional[tuple[subprocess.Popen, int]] = None
        self._spare_lock = threading.Lock()
        self._closed = False
        self._handed: dict[int, None] = {}  # ports given to jobs, oldest first
        self._forks = ForkServer(_RELAY_ARGV, self.host_environment)  # started on first use

    @default("max_running")
    def _default_max_running(self) -> int:
        return max(4, 2 * (os.cpu_count() or 1))

    async def availability(self) -> Availability:
        return Availability(True)

    def capabilities(self) -> Capabilities:
        contained = self.cgroups and cgroups.version() is not None and os.geteuid() == 0
        return Capabilities(gpus=True, cpus=contained, memory=contained, environments=True)

    def _environment(self, ctx: JobContext) -> dict[str, str]:
        env = self.host_environment()
        # `python` in a job means the server's Python, where the user's packages are
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
        env.update(ctx.env())
        return env

    async def listen_ports(self, spec: JobSpec) -> dict[str, int]:
        """Jobs share the host's ports: each endpoint gets one the kernel says is free (and that
        this server has not handed out lately), on 127.0.0.1."""
        ports = {}
        for expose in spec.expose:
            while True:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
                if port not in self._handed:
                    break
            self._handed[port] = None
            ports[expose.name] = port
        while len(self._handed) > 4096:
            del self._handed[next(iter(self._handed))]
        return ports

    async def start(self, ctx: JobContext) -> Execution:
        relay = await asyncio.to_thread(self._hand_over, ctx)
        state = {"pid": relay.proc.pid, "start_time": start_time(relay.proc.pid),
                 "cgroup": relay.group.leaf if relay.group else None}
        execution = LocalExecution(ctx, state, relay.proc, relay.group, relay.gate).begin()
        execution.released = self._replenish_soon  # the next job's spare, once this one's start is under way
        if isinstance(relay.proc, Relayed):  # its end is looked at once told, not at the follower's next look
            relay.proc.on_end = execution.poke
        return execution

    def _relay(self) -> _Spare:
        """A relay waiting for a job, in a cgroup of its own: its Python start-up and the move
        into the cgroup (~10 ms each) are then off the job's path. Its own environment holds no
        credentials; the job's is handed to it."""
        group = JobCgroup.create(self.cgroup_parent, f"relay-{uuid.uuid4().hex[:12]}") if self.cgroups else None
        gate_read, gate = os.pipe()  # not inherited by anything but the relay
        try:
            proc = self._start_relay(gate_read)
        except OSError as exc:
            os.close(gate)
            if group is not None:
                group.remove()
            raise BackendError(f"could not start the job's process: {exc}") from exc
        finally:
            os.close(gate_read)
        if group is not None:
            try:  # before it runs anything: all it starts inherits the cgroup
                group.add(proc.pid)
            except OSError as exc:
                self.log.warning("a job runs without a cgroup: %s", exc)
                group = None
        return _Spare(proc, gate, group)

    def _start_relay(self, gate_read: int) -> subprocess.Popen | Relayed:
        if self.fork_server:
            try:
                return self._forks.start(gate_read)
            except OSError as exc:
                self.log.warning("a job's supervisor is started without the fork server: %s", exc)
        return subprocess.Popen(_RELAY_ARGV, cwd="/", env=self.host_environment(),
                                stdin=gate_read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)

    def _hand_over(self, ctx: JobContext) -> _Spare:
        """Give the spare relay this job, held at its gate; a new spare is started beside
        (blocking: runs in a thread)."""
        for stale in ("exit_code", "output"):  # from a start a restart interrupted
            (ctx.dir / stale).unlink(missing_ok=True)
        with self._spare_lock:
            spare = self._spare or self._relay()
            self._spare = None
        res = ctx.job.spec.resources
        argv = ctx.job.spec.argv(self.python(ctx.job.spec), runner_source())
        if isinstance(ctx.job.spec.command, str):
            argv = [self.shell, *argv[1:]]
        job = {"argv": argv, "cwd": str(ctx.workspace), "env": self._environment(ctx), "dir": str(ctx.dir),
               "reap": spare.group is None}  # no cgroup: the relay kills what the command leaves behind
        try:
            if spare.group is not None:
                spare.group.limit(res.cpus, res.memory_bytes)
            os.write(spare.gate, json.dumps(job).encode() + b"\n")
        except OSError as exc:
            spare.discard()
            raise BackendError(f"could not start the job's process: {exc}") from exc
        return spare

    def _replenish_soon(self) -> None:
        """Start the next spare relay beside, not before, the job just released: its fork and
        cgroup were measured on the job's own start when begun at the hand-over."""
        threading.Thread(target=self._replenish, name="jobs-relay-spare", daemon=True).start()

    def _replenish(self) -> None:
        spare: Optional[_Spare] = self._relay()
        with self._spare_lock:
            if self._spare is None and not self._closed:
                self._spare, spare = spare, None
        if spare is not None:  # another job's replenish won, or the backend closed
            spare.discard()

    async def close(self) -> None:
        with self._spare_lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            await asyncio.to_thread(spare.discard)
        await asyncio.to_thread(self._forks.close)
        await asyncio.to_thread(cgroups.flush_removals, 5.0)

    async def reattach(self, ctx: JobContext, state: dict[str, Any]) -> Execution:
        pid = int(state.get("pid") or 0)
        started = state.get("start_time")
        # a pid now held by another process (its start time differs) means the job is gone
        alive = pid > 0 and started is not None and start_time(pid) == started
        leaf = state.get("cgroup")
        group = JobCgroup.find(self.cgroup_parent, leaf) if self.cgroups and leaf else None
        return LocalExecution(ctx, {"pid": pid, "start_time": started if alive else None}, None, group).begin()
