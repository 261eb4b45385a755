"""Executions followed off the event loop by a few shared threads, never one per job: one loop
per kind of job that tails output files (local and Slurm jobs; `Follower` below), and for
containers one socket reader and one event stream per engine (docker_watch.py).

Those threads do the blocking work (reading output, asking the engine) and hand the outcome
to the event loop; `detach()` (server shutdown) stops following without touching the job.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import threading
import time
from typing import Any, BinaryIO, Callable, Optional

from ..storage.logs import STREAMS
from ..domain.status import FailureReason
from .base import Execution, JobContext, Outcome

log = logging.getLogger(__name__)

_READ = 1 << 20
_MIN_IDLE, _MAX_IDLE = 0.001, 0.025
_EAGER, _EAGER_IDLE = 2.0, 0.001  # after a poke: seconds of looking at most every 1 ms
#: a job silent this long is looked at every `_QUIET_LOOK` s only: hundreds of quiet jobs then cost
#: a tenth of their reads (measured: 200 quiet Slurm jobs took 12 % of a core, looked at every 25 ms)
_QUIET, _QUIET_LOOK = 1.0, 0.1


class FollowedExecution(Execution):
    """An execution whose outcome a shared thread hands over (`_finish`); `wait()` returns it."""

    def __init__(self, ctx: JobContext, state: dict[str, Any]):
        self.ctx = ctx
        self.state = state
        # what the log held before this execution wrote to it (an earlier attempt's output)
        self.state.setdefault("log_base", ctx.log_base or dict.fromkeys(STREAMS, 0))
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[Outcome] = self._loop.create_future()
        self._detached = threading.Event()

    def unseen(self) -> dict[str, int]:
        """Bytes of this execution's own output already in the log, per stream: skip them."""
        sizes, base = self.ctx.log.stream_sizes(), self.state["log_base"]
        return {s: max(0, n - base.get(s, 0)) for s, n in sizes.items()}

    def _finish(self, outcome: Optional[Outcome]) -> None:
        """The job is over (or no longer followed, with None): close its log, hand the outcome
        to the event loop. Called from any thread."""
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


class FileTailExecution(FollowedExecution):
    """A job writing its output to files in its folder: tailed into the job's log from where
    the log stands (so a restart resumes with nothing lost or repeated) until the job is over
    and the files are drained. All such jobs of one kind are followed by one thread (a
    `Follower`), not a thread each: a server watching hundreds of jobs runs one loop."""

    _followers: dict[type, Follower] = {}
    _followers_lock = threading.Lock()

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

    def _on_error(self) -> None:
        """The job's output could no longer be followed: make sure it does not run on unseen."""

    def begin(self) -> FileTailExecution:
        self._eager_until = 0.0
        self._said_at = time.monotonic()  # when it last wrote (or began)
        self._next_look = 0.0
        self._files: Optional[list[tuple[BinaryIO, Callable[[bytes], None]]]] = None
        with FileTailExecution._followers_lock:
            follower = self._followers.get(type(self))
            if follower is None:
                follower = self._followers[type(self)] = Follower(type(self).__name__)
        self._follower = follower
        follower.add(self)
        return self

    def poke(self) -> None:
        """Output is about to come (e.g. the job was released): stop idling, and look often for
        a little while (the first line's latency is what a user sees)."""
        self._eager_until = time.monotonic() + _EAGER
        self._follower.wake()

    def detach(self) -> None:
        super().detach()
        self._follower.wake()

    def _step(self) -> tuple[bool, bool]:
        """One look at the job (in the follower's thread): (over, got output). Once over, its
        outcome is handed to the event loop (none when detached)."""
        try:
            if self._detached.is_set():
                self._finish(None)
                return True, False
            if self._files is None:
                self._files = []
                for name, offset, feed in self._sources():
                    (self.ctx.dir / name).touch()
                    fh = open(self.ctx.dir / name, "rb")
                    fh.seek(offset)
                    self._files.append((fh, feed))
            alive = self._alive()
            got = self._drain(self._files)
            if alive:
                return False, got
            self._ended()
            self._drain(self._files)
            self._finish(self._outcome())
        except Exception as exc:  # never leave a job running forever in the service's eyes
            self._on_error()
            self._finish(Outcome(None, FailureReason.BACKEND_ERROR, f"following the job failed: {exc}"))
        return True, True

    def _finish(self, outcome: Optional[Outcome]) -> None:
        for fh, _ in self._files or []:
            fh.close()
        self._files = []
        super()._finish(outcome)

    @staticmethod
    def _drain(files: list[tuple[BinaryIO, Callable[[bytes], None]]]) -> bool:
        got = False
        for fh, feed in files:
            while data := fh.read(_READ):
                feed(data)
                got = True
        return got


class Follower:
    """One daemon thread that steps every job it follows: reads their new output, asks whether
    they are alive, hands over their outcomes. It looks often while output comes (or just
    after a job was released) and backs off to every 25 ms when all is quiet; a job silent for
    a second is looked at every 100 ms until it writes again."""

    def __init__(self, name: str):
        self._jobs: list[FileTailExecution] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"jobs-follower-{name}", daemon=True)
        self._thread.start()

    def add(self, execution: FileTailExecution) -> None:
        with self._lock:
            self._jobs.append(execution)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        idle = _MIN_IDLE
        while True:
            with self._lock:
                jobs = list(self._jobs)
            got, over, now = False, [], time.monotonic()
            for execution in jobs:
                if now < execution._next_look and now >= execution._eager_until and not execution._detached.is_set():
                    continue
                try:
                    done, output = execution._step()
                except Exception as exc:  # its own clean-up failed: it is over; the others go on
                    log.exception("following job %s failed", execution.ctx.job.id)
                    with contextlib.suppress(Exception):
                        execution._finish(Outcome(None, FailureReason.BACKEND_ERROR,
                                                  f"following the job failed: {exc}"))
                    done, output = True, False
                got = got or output
                if output:
                    execution._said_at = now
                elif now - execution._said_at > _QUIET:
                    execution._next_look = now + _QUIET_LOOK
                if done:
                    over.append(execution)
            if over:
                with self._lock:
                    self._jobs = [j for j in self._jobs if j not in over]
            if got:
                idle = _MIN_IDLE
                continue
            if self._wake.wait(idle if jobs else None):
                self._wake.clear()
                idle = _MIN_IDLE
            else:
                eager = any(time.monotonic() < j._eager_until for j in jobs)
                idle = min(idle * 2, _EAGER_IDLE if eager else _MAX_IDLE)
