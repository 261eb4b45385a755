"""Files and folders private to the server's user: the history, job folders and anything that
may hold a secret (a job's environment) are never readable by other users of the host."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Optional


def _open_plain(path: Path, flags: int, mode: int = 0o600) -> int:
    """`path` opened as a regular file reached without a link (O_NOFOLLOW), never waiting on a
    FIFO (O_NONBLOCK, cleared once open); OSError for anything else."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def open_regular(path: Path) -> Optional[int]:
    """A descriptor for `path` if it is a regular file reached without a link; else None (a
    job's own files are read this way: a link it planted leads nowhere)."""
    try:
        return _open_plain(path, os.O_RDONLY)
    except OSError:
        return None


def read_regular(path: Path, limit: int) -> Optional[bytes]:
    """The first `limit` bytes of a job's small file (its exit code, its runner's status), read
    as `open_regular` opens it; None where there is no such file."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        return os.pread(fd, limit, 0)
    except OSError:
        return None
    finally:
        os.close(fd)


def open_append(path: Path) -> int:
    """`path` opened to append (created 0600), as `open_regular` opens it. For a file in a job's
    folder, within a local job's reach: a link put in its place must not send what is written
    into another of the user's files, and a FIFO is refused at once (ENXIO), not waited on."""
    return _open_plain(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) with mode 0700; tighten it if it exists."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only the server's user can read (0600), created that way."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fd, 0o600)
        fh.write(text)


def secret_file(path: Path, size: int = 32) -> bytes:
    """The random secret kept in `path` (0600, made on first use): it outlives restarts, so
    what was derived from it (an endpoint's address) stays valid while its job runs."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        fd = open_regular(path)  # type: ignore[assignment]
        if fd is None:
            raise OSError(f"{path} is not a regular file") from None
        with os.fdopen(fd, "rb") as fh:
            secret = fh.read(size + 1)
        if len(secret) == size:
            return secret
        raise OSError(f"{path} does not hold a {size}-byte secret: remove it to make a new one") from None
    secret = os.urandom(size)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
    return secret


def remove_tree(path: Path) -> list[str]:
    """Remove a folder and everything in it; returns what could not be removed, and why."""
    left: list[str] = []

    def note(_function: object, failed: str, exc_info: tuple) -> None:
        error = exc_info[1]
        left.append(f"{failed} ({getattr(error, 'strerror', None) or error})")

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=note)
    return left
