"""The `local` backend: the job is a process on the Jupyter host, in its own session.

stdout and stderr go to files in the job's folder (not pipes), so a job outlives a server
restart; a pump thread tails those files into the job's log. A tiny `sh` wrapper records
the exit code in a file, so the result of a job that ended while the server was down is
still known.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any, Optional

from traitlets import Unicode, default

from ..models import FailureReason
from ..replies import Capabilities
from .base import Availability, Backend, BackendError, Execution, JobContext, Outcome
from .tail import FileTailExecution

# `sh -c WRAPPER EXIT_FILE ARGV...`: run ARGV, then write its exit status to EXIT_FILE.
# The no-op TERM trap keeps the wrapper waiting while ARGV handles SIGTERM its own way (a
# caught signal, unlike an ignored one, is reset to the default for ARGV).
_WRAPPER = 'trap : TERM; "$@"; echo $? > "$0"'


def _start_time(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (guards against pid reuse)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[19])


class LocalExecution(FileTailExecution):
    """A process group started by this server (`proc`) or found again after a restart."""

    def __init__(self, ctx: JobContext, state: dict[str, Any], proc: Optional[subprocess.Popen]):
        super().__init__(ctx, state)
        self.pid = int(state["pid"])
        self.proc = proc

    def _alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.state["start_time"] is not None and _start_time(self.pid) == self.state["start_time"]

    def _ended(self) -> None:
        # as in a container: when the main process ends, what it left behind goes too
        if self.state["start_time"] is not None:
            self._kill_group(signal.SIGKILL)

    _on_error = _ended  # a job whose output cannot be kept must not run on

    def _outcome(self) -> Outcome:
        try:
            return Outcome(int((self.ctx.dir / "exit_code").read_text().strip()))
        except (OSError, ValueError):
            pass
        if self.proc is not None and self.proc.returncode is not None:
            code = self.proc.returncode
            return Outcome(128 - code if code < 0 else code)
        return Outcome(None, FailureReason.LOST, "the job's process ended while the server was down "
                       "and left no exit code")

    # -- Execution --------------------------------------------------------------------------
    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self._alive():
            self._kill_group(sig)

    def _kill_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class LocalBackend(Backend):
    """Processes on the Jupyter host. Works anywhere Jupyter does, Binder included."""

    name = "local"
    description = "a process on the Jupyter server's host"

    shell = Unicode("/bin/sh", help="Shell used for string commands and the exit-code wrapper.").tag(config=True)

    @default("max_running")
    def _default_max_running(self) -> int:
        return max(4, 2 * (os.cpu_count() or 1))

    async def availability(self) -> Availability:
        return Availability(True)

    def capabilities(self) -> Capabilities:
        return Capabilities(gpus=True)

    def _environment(self, ctx: JobContext) -> dict[str, str]:
        env = self.host_environment()
        # `python` in a job means the server's Python, where the user's packages are
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
        env.update(ctx.env())
        return env

    async def start(self, ctx: JobContext) -> Execution:
        argv = [self.shell, "-c", _WRAPPER, str(ctx.dir / "exit_code"), *ctx.job.spec.argv()]

        def spawn() -> subprocess.Popen:
            with open(ctx.dir / "stdout", "ab") as out, open(ctx.dir / "stderr", "ab") as err:
                return subprocess.Popen(
                    argv, cwd=ctx.workspace, env=self._environment(ctx), stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True, close_fds=True,
                )

        try:
            proc = await asyncio.to_thread(spawn)
        except OSError as exc:
            raise BackendError(f"could not start the job's process: {exc}") from exc
        return LocalExecution(ctx, {"pid": proc.pid, "start_time": _start_time(proc.pid)}, proc).begin()

    async def reattach(self, ctx: JobContext, state: dict[str, Any]) -> Execution:
        pid = int(state.get("pid") or 0)
        started = state.get("start_time")
        # a pid now held by another process (its start time differs) means the job is gone
        alive = pid > 0 and started is not None and _start_time(pid) == started
        return LocalExecution(ctx, {"pid": pid, "start_time": started if alive else None}, None).begin()
