"""Docker's multiplexed output stream: 8-byte frame headers, split per stream by hand (the
SDK's per-frame generators are ~9x slower than this loop)."""

from __future__ import annotations

import socket
import struct
from typing import Any, Callable

_FRAME = struct.Struct(">BxxxL")
_STREAMS = {1: "stdout", 2: "stderr"}


class Demux:
    """Splits Docker's multiplexed stream (8-byte frame headers) into per-stream bytes,
    skipping the first `skip[stream]` bytes of each (already in the job's log)."""

    def __init__(self, emit: Callable[[str, bytes], None], skip: dict[str, int]):
        self.emit = emit
        self.skip = dict(skip)
        self.buf = bytearray()

    def feed(self, data: bytes | memoryview) -> None:
        self.buf += data
        if any(self.skip.values()):
            self._feed_skipping()
            return
        buf, view, emit, unpack = self.buf, memoryview(self.buf), self.emit, _FRAME.unpack_from
        pos, size, current, parts = 0, len(buf), 0, []
        while size - pos >= 8:  # the hot loop: one frame per write() in the container
            kind, length = unpack(buf, pos)
            end = pos + 8 + length
            if end > size:
                break
            if kind != current:
                if parts and current in _STREAMS:
                    emit(_STREAMS[current], b"".join(parts))
                parts, current = [], kind
            parts.append(view[pos + 8 : end])
            pos = end
        if parts and current in _STREAMS:
            emit(_STREAMS[current], b"".join(parts))
        parts = []
        view.release()
        del buf[:pos]

    def _feed_skipping(self) -> None:
        pos, size = 0, len(self.buf)
        while size - pos >= 8:
            kind, length = _FRAME.unpack_from(self.buf, pos)
            if size - pos - 8 < length:
                break
            payload = bytes(self.buf[pos + 8 : pos + 8 + length])
            pos += 8 + length
            stream = _STREAMS.get(kind)
            if stream is None:
                continue
            cut = min(self.skip[stream], len(payload))
            self.skip[stream] -= cut
            if payload[cut:]:
                self.emit(stream, payload[cut:])
        del self.buf[:pos]


def upgraded(response: Any) -> tuple[bytes, socket.socket]:
    """The socket under an HTTP 101 (upgraded) response, made non-blocking, with the bytes that
    arrived with the headers (read them first).

    No public call reaches it: http.client treats a 101 reply as bodiless (length 0), so
    requests' and urllib3's read methods return nothing; the SDK's own `attach_socket` takes
    the same private path (`raw._fp.fp`) but then drops the reader's buffer, which can hold
    the first frames. This is the one place that knows; the SDK pins urllib3 and requests."""
    reader = response.raw._fp.fp
    sock = reader.raw._sock
    sock.setblocking(False)
    return reader.read1(1 << 18) or b"", sock  # what is buffered (or ready); b"" also when nothing is
