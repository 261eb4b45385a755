"""Executions followed by a thread of their own, and the file tailing local and Slurm jobs share.

The thread does all blocking work (reading output, asking the engine) and hands the outcome
to the event loop; `detach()` (server shutdown) stops following without touching the job.
"""

from __future__ import annotations

import abc
import asyncio
import threading
import time
from typing import Any, BinaryIO, Callable, Optional

from ..logs import STREAMS
from ..models import FailureReason
from .base import Execution, JobContext, Outcome

_READ = 1 << 20
_MIN_IDLE, _MAX_IDLE = 0.001, 0.025
_EAGER, _EAGER_IDLE = 2.0, 0.002  # after a poke: seconds of looking at most every 2 ms


class ThreadedExecution(Execution):
    """Runs `_follow()` in a daemon thread; its result is the outcome `wait()` returns."""

    def __init__(self, ctx: JobContext, state: dict[str, Any]):
        self.ctx = ctx
        self.state = state
        # what the log held before this execution wrote to it (an earlier attempt's output)
        self.state.setdefault("log_base", ctx.log_base or dict.fromkeys(STREAMS, 0))
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[Outcome] = self._loop.create_future()
        self._detached = threading.Event()
        self._wake = threading.Event()  # look at the job now (it was released, or is detached)
        self._eager_until = 0.0
        self._thread = threading.Thread(target=self._pump, name=f"job-{ctx.job.id}", daemon=True)

    def unseen(self) -> dict[str, int]:
        """Bytes of this execution's own output already in the log, per stream: skip them."""
        sizes, base = self.ctx.log.stream_sizes(), self.state["log_base"]
        return {s: max(0, n - base.get(s, 0)) for s, n in sizes.items()}

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
        self._wake.set()

    def poke(self) -> None:
        """Output is about to come (e.g. the job was released): stop idling, and look often for
        a little while (the first line's latency is what a user sees)."""
        self._eager_until = time.monotonic() + _EAGER
        self._wake.set()

    def done(self) -> bool:
        return self._done.done()

    async def wait(self) -> Outcome:
        return await asyncio.shield(self._done)


class FileTailExecution(ThreadedExecution):
    """A job writing its output to files in its folder: tailed into the job's log from where
    the log stands (so a restart resumes with nothing lost or repeated) until the job is over
    and the files are drained."""

    @abc.abstractmethod
    def _alive(self) -> bool:
        """Whether the job may still write (called often: keep it cheap)."""

    @abc.abstractmethod
    def _outcome(self) -> Outcome:
        """How the job ended, once `_alive()` said it did."""

    @abc.abstractmethod
    def _sources(self) -> list[tuple[str, int, Callable[[bytes], None]]]:
        """The files to tail: (name in the job's folder, offset to start at, what takes the bytes)."""

    def _ended(self) -> None:
        """Called once the job is no longer alive, before its files are drained."""

    def _follow(self) -> Optional[Outcome]:
        files: list[tuple[BinaryIO, Callable[[bytes], None]]] = []
        try:
            for name, offset, feed in self._sources():
                (self.ctx.dir / name).touch()
                fh = open(self.ctx.dir / name, "rb")
                fh.seek(offset)
                files.append((fh, feed))
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
                elif self._wake.wait(idle):
                    if self._detached.is_set():
                        return None
                    self._wake.clear()
                    idle = _MIN_IDLE
                else:
                    idle = min(idle * 2, _EAGER_IDLE if time.monotonic() < self._eager_until else _MAX_IDLE)
        finally:
            for fh, _ in files:
                fh.close()

    @staticmethod
    def _drain(files: list[tuple[BinaryIO, Callable[[bytes], None]]]) -> bool:
        got = False
        for fh, feed in files:
            while data := fh.read(_READ):
                feed(data)
                got = True
        return got
