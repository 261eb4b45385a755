"""The GPU pool's files, read as claims anyone could have written: opened without following
links, never waited on (a FIFO, a device), never read past a cap, written whole then renamed."""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
from typing import Any

#: the largest record or ticket read (bytes); anything bigger is skipped
MAX_RECORD = 16 * 1024
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def number(value: Any) -> bool:
    """A finite JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Fd:
    """An open file descriptor, closed once."""

    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def load(dfd: int, name: str, uid: int, with_stat: bool = False, limit: int = MAX_RECORD) -> Any:
    """A small regular file of `uid` in folder `dfd`, parsed as JSON, or None: never follows
    a link, never waits (a FIFO, a device), never reads much."""
    try:
        if not stat.S_ISREG(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
            return None
        fd = os.open(name, READ, dir_fd=dfd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != uid or info.st_size > limit:
                return None
            raw = os.read(fd, limit + 1)
        finally:
            os.close(fd)
        if len(raw) > limit:
            return None
        data = json.loads(raw)
    except (OSError, ValueError):
        return None
    return (data, info) if with_stat else data


def write(dfd: int, name: str, data: dict) -> None:
    """Written whole under a temporary name in our own folder, then given its name."""
    tmp = f".tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
    try:
        os.fchmod(fd, 0o644)  # readable by every server, whatever the umask
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)


class Parsed:
    """The files parsed in the last reading of the pool, each with the stamp it had then (inode,
    size, times, owner): an unchanged file is not opened and parsed again (a host with a
    thousand waiting jobs is a thousand tickets, read on every decision). Files are only ever
    replaced by a rename, which gives a new inode, or rewritten by their owner, which moves
    their times; no one else can change them."""

    def __init__(self) -> None:
        self._last: dict[tuple, tuple[tuple, Any]] = {}
        self._now: dict[tuple, tuple[tuple, Any]] = {}

    def begin(self) -> None:
        """A new reading: what the last one parsed may be reused, what this one does not see is forgotten."""
        self._last, self._now = self._now, {}

    def load(self, dfd: int, folder: int, name: str, uid: int) -> Any:
        """(data, stat) of a small regular file of `uid`, as `load` gives it (a copy, free to change)."""
        try:
            info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid or info.st_size > MAX_RECORD:
            return None
        key, stamp = (folder, name), _stamp(info)
        hit = self._last.get(key)
        if hit is None or hit[0] != stamp:
            found = load(dfd, name, uid, with_stat=True)
            if found is None:
                return None
            data, info = found
            hit = (_stamp(info), data)
        self._now[key] = hit
        data = hit[1]
        return (dict(data) if isinstance(data, dict) else data), info


def _stamp(info: os.stat_result) -> tuple:
    return info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_uid
