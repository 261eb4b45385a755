"""Two threads follow all of a docker backend's containers, however many run: one reads every
attached output socket (a selector), one reads the engine's event stream filtered by the
service's label and learns from it which containers ended. Before, each container had a
thread blocked on its stream and on `wait`.

A container is over once its output stream has ended *and* the engine said it died (either
order); then its outcome is concluded in a worker thread (docker.py). When the event stream
breaks (the engine stopped or restarted), the containers followed meanwhile are marked as
having lived through it, and on reconnecting one listing of the service's containers finds
those that ended while no stream was open.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from typing import Any, Callable, Optional, Protocol

log = logging.getLogger(__name__)

_CHUNK = 1 << 18
#: after reading only a little, let more output gather this long before looking again: a
#: container printing line by line then costs a read per millisecond, not a read per line
_GATHER, _LITTLE = 0.001, 1 << 14
_ALIVE = {"created", "running", "paused", "restarting"}


class Watched(Protocol):
    """What the watch needs of a followed container (DockerExecution)."""

    container_id: str
    engine_gone: bool

    def _output(self, data: bytes | memoryview) -> None: ...

    def _stream_ended(self) -> None: ...

    def _died(self, give_up: bool = False) -> None: ...


class DockerWatch:
    """The reader and the event stream of one docker backend, started with its first container."""

    def __init__(self, client: Callable[[], Any], label: str, engine_wait: Callable[[], float],
                 die_filter: bool = True):
        self._client = client  # the backend's (re-made after the engine was away)
        self._label = label  # "key=value" on every container of this service
        #: ask the engine for `die` events only (Podman 4's compat API matches that filter against
        #: its own event names and sends none: there the others are skipped here)
        self._die_filter = die_filter
        self._engine_wait = engine_wait
        self._lock = threading.Lock()
        self._watched: dict[str, Watched] = {}  # container id -> execution
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._changes: list[Callable[[], None]] = []  # selector changes, made by the reader thread
        self._events: Any = None  # the open event stream (closed to stop its thread)
        self._closed = False
        self._threads: list[threading.Thread] = []

    # -- what the executions call (any thread) ----------------------------------------------
    def watch(self, execution: Watched) -> None:
        """Learn of its end from now on (call before its container starts)."""
        with self._lock:
            self._watched[execution.container_id] = execution
            if not self._threads and not self._closed:
                self._threads = [threading.Thread(target=target, name=f"jobs-docker-{name}", daemon=True)
                                 for name, target in (("reader", self._read), ("events", self._listen))]
                for thread in self._threads:
                    thread.start()

    def read(self, execution: Watched, response: Any) -> None:
        """Read the container's attached output (an upgraded response) until it ends."""
        from .docker_stream import upgraded

        first, sock = upgraded(response)
        if first:
            execution._output(first)

        def register() -> None:
            with self._lock:
                forgotten = self._watched.get(execution.container_id) is not execution
            if not forgotten:  # (a detach may have come first)
                self._selector.register(sock, selectors.EVENT_READ, (execution, response, sock))

        self._change(register)

    def forget(self, execution: Watched, response: Any = None) -> None:
        """Stop following it (it ended, was never started, or the server goes): its stream is closed."""
        with self._lock:
            if self._watched.get(execution.container_id) is execution:
                del self._watched[execution.container_id]

        def drop() -> None:
            for key in list(self._selector.get_map().values()):
                if key.data is not None and key.data[0] is execution:
                    self._selector.unregister(key.fileobj)
            with contextlib.suppress(Exception):
                response is not None and response.close()

        self._change(drop)

    def close(self) -> None:
        """Stop both threads; the containers run on."""
        with self._lock:
            self._closed = True
            events = self._events
        with contextlib.suppress(Exception):
            events is not None and events.close()
        self._change(lambda: None)

    # -- the reader thread --------------------------------------------------------------------
    def _change(self, change: Callable[[], None]) -> None:
        with self._lock:
            self._changes.append(change)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if not self._threads:  # no reader yet: nothing is registered, apply it here
            self._apply()

    def _apply(self) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
        for change in changes:
            try:
                change()
            except Exception:
                log.exception("changing what the docker reader follows")

    def _read(self) -> None:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while not self._closed:
            most = 0
            try:
                ready = self._selector.select()
            except (OSError, ValueError):  # a socket closed under it: drop those, go on
                for key in list(self._selector.get_map().values()):
                    if key.data is not None and key.fileobj.fileno() < 0:
                        self._selector.unregister(key.fileobj)
                continue
            for key, _ in ready:
                if key.data is None:  # woken: registrations, or close
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                    self._apply()
                    continue
                execution, response, sock = key.data
                try:
                    n = sock.recv_into(buf)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    n = 0  # reset: the engine went away; the end is settled below
                if n:
                    most = max(most, n)
                    try:
                        execution._output(view[:n])  # copied into its demux's buffer at once
                    except Exception:
                        log.exception("keeping the output of container %s", execution.container_id)
                    continue
                self._selector.unregister(sock)
                with contextlib.suppress(Exception):
                    response.close()
                execution._stream_ended()
            if 0 < most < _LITTLE:
                time.sleep(_GATHER)

    # -- the events thread --------------------------------------------------------------------
    def _listen(self) -> None:
        down_since: Optional[float] = None
        while True:
            try:
                wanted = {"type": "container", "label": self._label}
                events = self._client().api.events(decode=True, filters={**wanted, "event": "die"}
                                                   if self._die_filter else wanted)
                with self._lock:
                    if self._closed:
                        events.close()
                        return
                    self._events = events
                self._reconcile()  # what ended while no stream was open
                down_since = None
                for event in events:
                    if event.get("Action", event.get("status")) == "die":
                        self._ended(event.get("id") or (event.get("Actor") or {}).get("ID") or "")
            except Exception as exc:
                log.debug("the docker event stream broke: %s", exc)
            with self._lock:
                if self._closed:
                    return
                self._events = None
                followed = list(self._watched.values())
            for execution in followed:  # it lived through an engine restart (or lost contact)
                execution.engine_gone = True
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > self._engine_wait():
                for execution in followed:  # concluding says the engine was away too long
                    execution._died(give_up=True)
            time.sleep(1)

    def _reconcile(self) -> None:
        containers = self._client().api.containers(all=True, filters={"label": self._label})
        alive = {c["Id"] for c in containers if c.get("State") in _ALIVE}
        with self._lock:
            ended = [cid for cid in self._watched if cid not in alive]
        for cid in ended:
            self._ended(cid)

    def _ended(self, cid: str) -> None:
        with self._lock:
            execution = self._watched.get(cid)
        if execution is not None:
            execution._died()
