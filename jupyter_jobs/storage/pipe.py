"""Bytes a blocking writer makes (zipfile, tarfile), streamed to an async reader as they come.

The writer runs on a thread of its own, never the event loop's default pool: it waits on the
reader (a client downloading at its own pace), and a slow or stalled client must not hold a
pool thread other requests need. A reader that stops (the client went away) stops the writer
at its next write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, Callable

_CHUNK = 1 << 20
_END = b""


class _Stopped(Exception):
    """The reader went away: the writer stops where it is."""


class _ToLoop(io.RawIOBase):
    """A file the writer writes to: each buffered chunk goes onto the reader's queue, waiting
    while the queue is full (the reader's pace)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes], stop: threading.Event):
        self.loop, self.queue, self.stop = loop, queue, stop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if chunk:
            self.put(chunk)
        return len(chunk)

    def put(self, chunk: bytes) -> None:
        sent = asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop)
        while True:
            if self.stop.is_set():
                sent.cancel()
                raise _Stopped
            try:
                sent.result(timeout=0.5)
                return
            except concurrent.futures.TimeoutError:
                continue


async def stream_from_thread(write: Callable[[BinaryIO], Any]) -> AsyncIterator[bytes]:
    """The bytes `write(out)` writes to `out`, in chunks of about a MiB; its exception, if any,
    is raised here after the bytes written before it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
    stop = threading.Event()
    raw = _ToLoop(loop, queue, stop)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with io.BufferedWriter(raw, _CHUNK) as out:
                write(out)  # type: ignore[arg-type]
        except _Stopped:
            return
        except BaseException as exc:  # handed to the reader
            failed.append(exc)
        try:
            raw.put(_END)
        except _Stopped:
            pass

    thread = threading.Thread(target=run, name="jupyter-jobs-stream", daemon=True)
    thread.start()
    try:
        while (chunk := await queue.get()) != _END:
            yield chunk
        if failed:
            raise failed[0]
    finally:
        stop.set()
