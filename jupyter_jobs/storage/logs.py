"""Per-job logs: stdout and stderr interleaved in arrival order, addressable by byte offset.

A log is two append-only files: `log` holds the raw bytes, `log.idx` records where the stream
changes (8-byte offset + 1-byte stream). Writers are backend threads; readers are async
followers that resume from any offset with no loss and no duplicates.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import struct
import threading
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from collections.abc import AsyncIterator

from .files import open_append

STREAMS = ("stdout", "stderr")
_RECORD = struct.Struct("<QB")
READ_SIZE = 1 << 20
#: bytes of a log's newest output kept in memory: followers at the end read them from there
TAIL = 1 << 18


@dataclass
class Chunk:
    offset: int
    stream: str
    data: bytes
    end: int = -1  # where the next chunk starts: offset + len(data), except for a note on a cut

    def __post_init__(self) -> None:
        if self.end < 0:
            self.end = self.offset + len(self.data)

    def to_json(self) -> dict:
        return {"offset": self.offset, "next": self.end, "stream": self.stream,
                "text": self.data.decode("utf-8", errors="replace")}


def _complete(data: bytes) -> int:
    """Length of the longest prefix of `data` that ends on a whole UTF-8 character."""
    start = len(data) - 1
    while start > 0 and len(data) - start < 4 and (data[start] & 0xC0) == 0x80:
        start -= 1
    if start < 0:
        return 0
    lead = data[start]
    need = 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4 if lead >> 3 == 0b11110 else 1
    return len(data) if start + need <= len(data) else start


class JobLog:
    """One job's log. Thread-safe appends; async waiting for new data on the owning loop."""

    def __init__(self, folder: Path, loop: Optional[asyncio.AbstractEventLoop] = None, cap: int = 0,
                 new: bool = False):
        self.path = Path(folder) / "log"
        self.index_path = Path(folder) / "log.idx"
        self.cut_path = Path(folder) / "log.cut"
        self.cap = cap  # most bytes kept (0: all); past it the oldest output is dropped
        self.cut = 0  # bytes before this offset were dropped (offsets stay as they were)
        self._loop = loop
        self._lock = threading.Lock()
        self._offsets = array("q")
        self._streams = bytearray()
        self._fd: Optional[int] = None
        self._index_fd: Optional[int] = None
        self._waiters: list[asyncio.Future] = []
        self._partial = [b"", b""]  # per stream: the start of a character still being written
        self.size = 0
        self.finished = False
        if not new:  # a new job's: nothing written yet, nothing to read (no I/O: fine on the loop)
            self._load()
        self._tail = bytearray()  # the newest output, from offset _tail_start (written here)
        self._tail_start = self.size

    def _load(self) -> None:
        try:
            raw = self.index_path.read_bytes()
        except FileNotFoundError:
            raw = b""
        for i in range(0, len(raw) - len(raw) % _RECORD.size, _RECORD.size):
            offset, stream = _RECORD.unpack_from(raw, i)
            self._offsets.append(offset)
            self._streams.append(stream)
        try:
            self.size = self.path.stat().st_size
        except FileNotFoundError:
            self.size = 0
        try:
            self.cut = int(self.cut_path.read_text())
        except (OSError, ValueError):
            self.cut = 0

    # -- writing (any thread) ---------------------------------------------------------------
    def append(self, stream: str, data: bytes) -> None:
        """Add a stream's bytes in arrival order. A character split across two writes of one
        stream is held back until it is whole, so it never lands on both sides of the other
        stream's output (and decodes as itself, not as two U+FFFD)."""
        code = STREAMS.index(stream)
        with self._lock:
            held = self._partial[code]
            if held:
                data = held + data
            cut = _complete(data)
            self._partial[code], data = data[cut:], data[:cut]
            if data:
                self._write(code, data)
        if data:
            self._wake()

    def open_files(self) -> JobLog:
        """Open the log's files for appending (blocking), ahead of the first output: opening them
        then was measured on the first line's path."""
        with self._lock:
            self._open_files()
        return self

    def _open_files(self) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = open_append(self.path)
            try:
                self._index_fd = open_append(self.index_path)
            except OSError:
                os.close(fd)  # both or neither: a half-open log would write an index-less stream
                raise
            self._fd = fd

    def note(self, text: str) -> None:
        """The service's own words in the log (a retry, a preemption, outputs kept), on stderr. A
        log its job swapped for a link or a FIFO (see `files.open_append`) is not written; the job
        goes on."""
        try:
            self.append("stderr", text.encode())
        except OSError as exc:
            logging.getLogger(__name__).warning("%s: a note was not written: %s", self.path, exc)

    def _write(self, code: int, data: bytes) -> None:
        """Append to the log files (under the lock)."""
        self._open_files()
        if not self._streams or self._streams[-1] != code:
            os.write(self._index_fd, _RECORD.pack(self.size, code))  # type: ignore[arg-type]
            self._offsets.append(self.size)
            self._streams.append(code)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)
        self._tail += data
        if len(self._tail) > 2 * TAIL:
            del self._tail[: len(self._tail) - TAIL]
        self._tail_start = self.size - len(self._tail)
        if self.cap and self.size - self.cut > self.cap:
            self._drop_head()

    def _drop_head(self) -> None:
        """Keep the newest half of the cap: free the older bytes' disk blocks (a hole in the
        file, so every offset stays valid) and remember where the kept output starts."""
        cut = self.size - self.cap // 2
        with open(self.path, "rb") as fh:  # start the kept part at a line
            fh.seek(cut)
            line_end = fh.read(1 << 16).find(b"\n")
        if line_end >= 0 and cut + line_end + 1 < self.size:
            cut += line_end + 1
        old, self.cut = self.cut, cut
        tmp = self.cut_path.with_suffix(".tmp")  # recorded before the bytes go: a crash in
        tmp.write_text(str(cut))  # between leaves a range never served, never one read as zeros
        os.replace(tmp, self.cut_path)
        _punch_hole(self._fd, old, cut - old)  # type: ignore[arg-type]

    def close(self) -> None:
        """The writer is done: bytes held back as half a character go out as they are."""
        with self._lock:
            for code, held in enumerate(self._partial):
                if held:
                    self._partial[code] = b""
                    self._write(code, held)
            for fd in (self._fd, self._index_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._index_fd = None
        self._wake()

    def stream_sizes(self) -> dict[str, int]:
        """Bytes of each stream in the log: where a tailer resumes after a restart."""
        sizes = dict.fromkeys(STREAMS, 0)
        bounds = list(self._offsets) + [self.size]
        for i, code in enumerate(self._streams):
            sizes[STREAMS[code]] += bounds[i + 1] - bounds[i]
        return sizes

    # -- waking followers -------------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiters and self._loop is not None:
            self._loop.call_soon_threadsafe(self._release)

    def finish(self) -> None:
        """The job has a terminal status and every byte of its output is here (on the loop)."""
        self.finished = True
        self._release()

    def _release(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_beyond(self, offset: int, timeout: float) -> None:
        """Return once the log grows past `offset`, on a wake-up, or after `timeout`."""
        if self.size > offset:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if self.size > offset:
            fut.set_result(None)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass

    # -- reading ----------------------------------------------------------------------------
    def align(self, offset: int) -> int:
        """A client's offset that falls inside a character moves on to the next one."""
        if offset <= 0 or offset >= self.size:
            return max(offset, 0)
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            head = fh.read(3)
        skip = 0
        while skip < len(head) and (head[skip] & 0xC0) == 0x80:
            skip += 1
        return offset + skip

    def _cut_note(self, offset: int) -> Chunk:
        note = (f"[jupyter_jobs] {self.cut - offset} bytes of output were dropped here: a job's log keeps "
                f"its last {self.cap or self.size - self.cut} bytes (c.JobsApp.max_log_size)\n")
        return Chunk(offset, "stderr", note.encode(), end=self.cut)

    def read(self, offset: int, limit: int = READ_SIZE, final: bool = False) -> list[Chunk]:
        """Chunks from `offset` (blocking file I/O: call off the loop). Unless `final`, ends on
        whole characters and, where the range holds one, on a line end. A range that was
        dropped (the log cap) reads as one note that ends where the kept output starts."""
        size = self.size
        if offset >= size:
            return []
        if offset < self.cut:
            return [self._cut_note(offset)]
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(min(limit, size - offset))
        if offset < self.cut:  # dropped while being read
            return [self._cut_note(offset)]
        return self._chunks(offset, data, size, final)

    def read_recent(self, offset: int, final: bool = False) -> Optional[list[Chunk]]:
        """The same as `read`, from the newest output kept in memory (no file I/O: safe on the
        loop); None when `offset` is older than that."""
        with self._lock:
            size = self.size
            if offset >= size:
                return []
            if offset < self._tail_start or offset < self.cut:
                return None
            data = bytes(self._tail[offset - self._tail_start: offset - self._tail_start + READ_SIZE])
            return self._chunks(offset, data, size, final)

    def _chunks(self, offset: int, data: bytes, size: int, final: bool) -> list[Chunk]:
        if not final:
            cut = data.rfind(b"\n") + 1 if offset + len(data) < size else 0
            data = data[: cut or _complete(data)]
        chunks = []
        pos = 0
        i = max(bisect_right(self._offsets, offset) - 1, 0)
        while pos < len(data):
            seg_end = self._offsets[i + 1] - offset if i + 1 < len(self._offsets) else len(data)
            seg_end = min(seg_end, len(data))
            if seg_end > pos:
                code = self._streams[i] if self._streams else 0
                chunks.append(Chunk(offset + pos, STREAMS[code], data[pos:seg_end]))
                pos = seg_end
            i += 1
        return chunks


async def follow(
    log: JobLog,
    offset: int,
    *,
    follow: bool,
    gone: Callable[[], bool] = lambda: False,
    poll: float = 1.0,
) -> AsyncIterator[Chunk]:
    """Yield chunks from `offset`; with `follow`, keep going until the log is finished and
    every byte in it has been yielded, or the reader is `gone()`."""
    if offset > 0:  # (from the start: nothing to align, no thread to wait for)
        offset = await asyncio.to_thread(log.align, offset)
    while True:
        seen, final = log.size, log.finished  # finished: the size is final, send every byte
        chunks = log.read_recent(offset, final)  # a follower at the end: from memory, at once
        if chunks is None:
            chunks = await asyncio.to_thread(log.read, offset, READ_SIZE, final)
        for chunk in chunks:
            yield chunk
            offset = chunk.end
        if chunks:
            continue
        if final or not follow or gone():
            return
        await log.wait_beyond(seen, poll)  # past `seen`: a held-back half character waits too


def _punch_hole(fd: int, offset: int, length: int) -> None:
    """Free a file range's disk blocks (Linux fallocate PUNCH_HOLE); where it cannot, the range
    stays on disk but is never served."""
    if length <= 0:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate(ctypes.c_int(fd), ctypes.c_int(0x02 | 0x01),  # PUNCH_HOLE | KEEP_SIZE
                       ctypes.c_longlong(offset), ctypes.c_longlong(length))
    except (OSError, AttributeError):
        pass


class LogRegistry:
    """One shared JobLog per active job (so followers wake on appends); a finished job's log is
    opened fresh for each reader. Lives on the service's event loop."""

    def __init__(self, max_size: int = 0) -> None:
        self._open: dict[str, JobLog] = {}
        self.max_size = max_size

    def is_open(self, job_id: str) -> bool:
        return job_id in self._open

    async def active(self, job_id: str, folder: Path) -> JobLog:
        """The log of a job that may still be written to."""
        if job_id not in self._open:
            return self.adopt(job_id, await asyncio.to_thread(self.load, folder, asyncio.get_running_loop()))
        return self._open[job_id]

    def new(self, job_id: str, folder: Path, loop: asyncio.AbstractEventLoop) -> JobLog:
        """The log of a job just recorded (its folder new and empty), registered without reading
        or opening anything; the job's start opens its files."""
        if job_id not in self._open:
            self._open[job_id] = JobLog(folder, loop, self.max_size, new=True)
        return self._open[job_id]

    def get(self, job_id: str) -> Optional[JobLog]:
        """The job's log if it is open (a follower's, a retried or preempted job's)."""
        return self._open.get(job_id)

    def load(self, folder: Path, loop: asyncio.AbstractEventLoop) -> JobLog:
        """A job's log, read and opened for appending (blocking: for a thread, which may do more
        of a job's preparation in the same hop); `adopt` it on the loop."""
        return JobLog(folder, loop, self.max_size).open_files()

    def adopt(self, job_id: str, loaded: JobLog) -> JobLog:
        """Make a `load`ed log the job's; one opened meanwhile wins (the other is closed)."""
        kept = self._open.setdefault(job_id, loaded)
        if kept is not loaded:
            loaded.close()
        return kept

    async def finished(self, folder: Path) -> JobLog:
        """The log of a job with a terminal status: its size is final."""
        log = await asyncio.to_thread(JobLog, folder)
        log.finished = True
        return log

    def close(self, job_id: str) -> None:
        """The job is terminal: its followers read to the end and stop."""
        found = self._open.pop(job_id, None)
        if found is not None:
            found.close()  # its files, opened ahead of output that may never have come
            found.finish()

    def forget(self, job_id: str) -> None:
        if (found := self._open.pop(job_id, None)) is not None:
            found.close()
