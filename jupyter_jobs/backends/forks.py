"""The local backend's fork server: one `relay.py --fork-server` per backend, started on first
use, forks each job's supervisor. A fork of a loaded interpreter takes about a millisecond where
starting one takes ten, and a queue being drained starts a supervisor per job. The fork server
tells each supervisor's exit code, which the server (not its parent) could not otherwise learn.

Should it die, its supervisors run on (each in its own session) and are then told alive by their
start time; a new fork server is tried at the next start, and where none answers a supervisor is
started as a process of the server's own.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import threading
import time
import weakref
from typing import Callable, Optional

from .base import start_time
from .relay import RECORD

_GONE = -1  # poll()'s answer for a supervisor that ended with its exit code unknown


class ForkServer:
    """Starts supervisors (blocking calls: use from a thread), one request at a time."""

    def __init__(self, argv: list[str], env: Callable[[], dict[str, str]]):
        self._argv, self._env = argv, env
        self._lock = threading.Lock()
        self._ends: dict[int, int] = {}
        self._ends_lock = threading.Lock()
        self._running: weakref.WeakValueDictionary[int, Relayed] = weakref.WeakValueDictionary()
        self._proc: Optional[subprocess.Popen] = None
        self._sock: Optional[socket.socket] = None
        self._started: queue.Queue[Optional[int]] = queue.Queue()
        self._lost = threading.Event()  # set: the running fork server (none yet) is gone
        self._lost.set()

    def start(self, gate: int) -> Relayed:
        """A new supervisor, its stdin the read end `gate`. OSError: the fork server cannot."""
        with self._lock:
            if self._lost.is_set():
                self._stop()  # one that ended: its socket closed, its process waited for
                self._launch()
            assert self._sock is not None
            try:
                socket.send_fds(self._sock, [b"r"], [gate])
                pid = self._started.get(timeout=10)
            except (OSError, queue.Empty) as exc:
                self._stop()
                raise OSError(f"the fork server did not answer: {exc}") from None
            if pid is None:
                raise OSError("the fork server ended")
            relayed = self._running[pid] = Relayed(pid, start_time(pid), self, self._lost)
        return relayed

    def _launch(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [*self._argv, "--fork-server", str(theirs.fileno())], pass_fds=(theirs.fileno(),), cwd="/",
                env=self._env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock, self._started, self._lost = ours, queue.Queue(), threading.Event()
        threading.Thread(target=self._read, args=(ours, self._started, self._lost), name="jobs-relay-forks",
                         daemon=True).start()

    def _read(self, sock: socket.socket, started: queue.Queue[Optional[int]], lost: threading.Event) -> None:
        buf = b""
        while True:
            try:
                data = sock.recv(1 << 12)
            except OSError:
                data = b""
            if not data:  # every end it told is stored by now
                lost.set()
                started.put(None)
                return
            buf += data
            while len(buf) >= RECORD.size:
                kind, pid, code = RECORD.unpack_from(buf)
                buf = buf[RECORD.size:]
                with self._ends_lock:
                    if kind == b"p":
                        self._ends.pop(pid, None)  # an earlier process's, the pid now reused
                    else:
                        self._ends[pid] = code
                if kind == b"p":
                    started.put(pid)
                elif (relayed := self._running.pop(pid, None)) is not None and relayed.on_end is not None:
                    with contextlib.suppress(Exception):  # this thread must read on, whatever a hook does
                        relayed.on_end()

    def ended(self, pid: int) -> Optional[int]:
        """The exit code of a supervisor it started, once told (then forgotten)."""
        with self._ends_lock:
            return self._ends.pop(pid, None)

    def _stop(self) -> None:
        self._lost.set()
        sock, self._sock = self._sock, None
        if sock is not None:  # EOF: it ends (the supervisors it started run on). Shut down, not
            with contextlib.suppress(OSError):  # only closed: the reader thread's recv() holds the
                sock.shutdown(socket.SHUT_RDWR)  # socket open until it returns, and no EOF is sent
            sock.close()
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        with self._lock:
            self._stop()


class Relayed:
    """A supervisor the fork server started: what the local backend uses of a `Popen`."""

    def __init__(self, pid: int, started: Optional[int], forks: ForkServer, lost: threading.Event):
        self.pid, self._started, self._forks, self._lost = pid, started, forks, lost
        self.returncode: Optional[int] = None
        self.on_end: Optional[Callable[[], None]] = None  # called (in a reader thread) once its end is told

    def poll(self) -> Optional[int]:
        """None while it runs; then its exit code, told by its fork server. Once that fork server
        is gone (`lost`), a supervisor gone too ended with `_GONE`, its code unknown (`returncode`
        stays None)."""
        if self.returncode is None:
            self.returncode = self._forks.ended(self.pid)
        if self.returncode is not None or not self._lost.is_set():
            return self.returncode
        if self._started is not None and start_time(self.pid) == self._started:
            return None
        self.returncode = self._forks.ended(self.pid)  # told just before its fork server went
        return _GONE if self.returncode is None else self.returncode

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.005)
        return code
