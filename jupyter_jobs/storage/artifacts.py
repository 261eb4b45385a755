"""A job's artifacts folder, read without ever following a link the job may have planted.

The job owns every file under the folder (a container's root included) and can swap any of
them for a symlink at any moment, so no check-then-open on paths: every component is opened
relative to its parent's descriptor with O_NOFOLLOW, and the file served is the one opened.
Blocking: call these off the event loop.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from ..domain.replies import Artifact

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO must not hang us


class ArtifactMissing(LookupError):
    """No regular file at that path inside the artifacts folder (or the path leaves it)."""


def _parts(path: str) -> list[str]:
    parts = path.split("/")
    if not path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise ArtifactMissing(path)
    return parts


def list_artifacts(root: Path) -> list[Artifact]:
    """Every regular file under `root`, sorted by path; links and special files are left out."""
    try:
        root_fd = os.open(root, _DIR)
    except OSError:
        return []
    found = []
    try:
        for folder, _dirs, files, dir_fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
            for name in files:
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:  # removed while being listed
                    continue
                if stat.S_ISREG(st.st_mode):
                    rel = os.path.normpath(os.path.join(folder, name))
                    found.append(Artifact(path=rel, size=st.st_size, modified=st.st_mtime))
    finally:
        os.close(root_fd)
    return sorted(found, key=lambda a: a.path)


def open_artifact(root: Path, path: str) -> tuple[BinaryIO, int]:
    """The artifact at `path`, opened, and its size now (a growing file is served up to it)."""
    parts = _parts(path)
    fd = -1
    try:
        fd = os.open(root, _DIR)
        for part in parts[:-1]:
            inner = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(parts[-1], _FILE, dir_fd=fd)
    except OSError:  # ELOOP / ENOTDIR: a link on the way; ENOENT: nothing there
        raise ArtifactMissing(path) from None
    finally:
        if fd >= 0:
            os.close(fd)
    st = os.fstat(file_fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(file_fd)
        raise ArtifactMissing(path)
    os.set_blocking(file_fd, True)
    return os.fdopen(file_fd, "rb"), st.st_size


def write_zip(root: Path, out: BinaryIO, prefix: str = "") -> int:
    """Every artifact under `root` (whose path starts with `prefix`) into a zip written to `out`,
    which need not seek (a stream to the client: zip's data descriptors carry the sizes). Each
    file is the one `open_artifact` opens, so a link the job swaps in is never followed.
    Stored, not deflated: checkpoints and weights do not compress, and the copy stays I/O-bound.
    Returns how many files went in."""
    import shutil
    import zipfile

    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for artifact in list_artifacts(root):
            if not artifact.path.startswith(prefix):
                continue
            try:
                fh, size = open_artifact(root, artifact.path)
            except ArtifactMissing:  # removed or swapped for a link since it was listed
                continue
            with fh:
                info = zipfile.ZipInfo(artifact.path, date_time=_zip_time(artifact.modified))
                with archive.open(info, "w", force_zip64=size >= 1 << 31) as entry:
                    shutil.copyfileobj(_Upto(fh, size), entry, 1 << 20)  # a growing file: as it was listed
            count += 1
    return count


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    import time

    year, month, day, hour, minute, second = time.localtime(max(mtime, 315532800))[:6]  # zip starts in 1980
    return year, month, day, hour, minute, second


class _Upto:
    """The first `size` bytes of a file, as a readable."""

    def __init__(self, fh: BinaryIO, size: int):
        self.fh, self.left = fh, size

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        return data
