"""Executions followed by a thread of their own, and the file tailing local and Slurm jobs share.

The thread does all blocking work (reading output, asking the engine) and hands the outcome
to the event loop; `detach()` (server shutdown) stops following without touching the job.
"""

from __future__ import annotations

import abc
import asyncio
import threading
from typing import Any, BinaryIO, Optional

from ..models import FailureReason
from .base import Execution, JobContext, Outcome

_READ = 1 << 20
_MIN_IDLE, _MAX_IDLE = 0.001, 0.025


class ThreadedExecution(Execution):
    """Runs `_follow()` in a daemon thread; its result is the outcome `wait()` returns."""

    def __init__(self, ctx: JobContext, state: dict[str, Any]):
        self.ctx = ctx
        self.state = state
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[Outcome] = self._loop.create_future()
        self._detached = threading.Event()
        self._thread = threading.Thread(target=self._pump, name=f"job-{ctx.job.id}", daemon=True)

    def begin(self) -> ThreadedExecution:
        self._thread.start()
        return self

    @abc.abstractmethod
    def _follow(self) -> Optional[Outcome]:
        """Follow the job to its end (None: detached meanwhile)."""

    def _on_error(self) -> None:
        """The job's output could no longer be followed: make sure it does not run on unseen."""

    def _pump(self) -> None:
        try:
            outcome = self._follow()
        except Exception as exc:  # never leave a job running forever in the service's eyes
            self._on_error()
            outcome = Outcome(None, FailureReason.BACKEND_ERROR, f"following the job failed: {exc}")
        self.ctx.log.close()
        if outcome is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: self._done.done() or self._done.set_result(outcome))

    def detach(self) -> None:
        super().detach()
        self._detached.set()

    def done(self) -> bool:
        return self._done.done()

    async def wait(self) -> Outcome:
        return await asyncio.shield(self._done)


class FileTailExecution(ThreadedExecution):
    """A job writing stdout and stderr to files in its folder: tailed into the job's log from
    where the log stands (so a restart resumes with nothing lost or repeated) until the job
    is over and the files are drained."""

    @abc.abstractmethod
    def _alive(self) -> bool:
        """Whether the job may still write (called often: keep it cheap)."""

    @abc.abstractmethod
    def _outcome(self) -> Outcome:
        """How the job ended, once `_alive()` said it did."""

    def _ended(self) -> None:
        """Called once the job is no longer alive, before its files are drained."""

    def _follow(self) -> Optional[Outcome]:
        sizes = self.ctx.log.stream_sizes()
        files: dict[str, BinaryIO] = {}
        try:
            for stream in ("stdout", "stderr"):
                (self.ctx.dir / stream).touch()
                files[stream] = open(self.ctx.dir / stream, "rb")
                files[stream].seek(sizes[stream])
            idle = _MIN_IDLE
            while True:
                alive = self._alive()
                got = self._drain(files)
                if not alive:
                    self._ended()
                    self._drain(files)
                    return self._outcome()
                if got:
                    idle = _MIN_IDLE
                elif self._detached.wait(idle):
                    return None
                else:
                    idle = min(idle * 2, _MAX_IDLE)
        finally:
            for fh in files.values():
                fh.close()

    def _drain(self, files: dict[str, BinaryIO]) -> bool:
        got = False
        for stream, fh in files.items():
            while data := fh.read(_READ):
                self.ctx.log.append(stream, data)
                got = True
        return got
