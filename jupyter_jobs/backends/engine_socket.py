"""Finding a user's own container engine safely on a shared host: a private runtime folder, a
socket that this user owns (never a link, never in a folder another user can write), and
which resource limits a rootless engine applies. Nothing here starts anything."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Optional

from . import cgroups


class UnsafeSocket(Exception):
    """The engine's socket or a folder above it is not the user's own (the message says why)."""


def _private(path: Path, what: str, make: bool = False) -> Path:
    """`path` is a real folder (not a link) owned by this user that no one else may write."""
    if make:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise UnsafeSocket(f"cannot make {what} {path}: {exc.strerror}") from None
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UnsafeSocket(f"{what} {path} cannot be used: {exc.strerror}") from None
    uid = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeSocket(f"{what} {path} is a symbolic link; refusing it")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeSocket(f"{what} {path} is not a folder")
    if st.st_uid != uid:
        raise UnsafeSocket(f"{what} {path} belongs to uid {st.st_uid}, not to this server's user (uid {uid}); "
                           "refusing an engine another user could control")
    if st.st_mode & 0o022:
        raise UnsafeSocket(f"{what} {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                           "make it private (chmod 700)")
    return path


def default_runtime_dir(configured: str = "") -> Path:
    """The user's private runtime folder: `configured` (made if missing), else $XDG_RUNTIME_DIR
    (a login session's, /run/user/<uid>), else /run/user/<uid> where it is theirs, else
    <tmp>/jupyter-jobs-podman-<uid>, made 0700 (a server started without a login session).
    Checked: the user's own, private, not a link."""
    if configured:
        return _private(Path(configured), "the configured runtime folder", make=True)
    uid = os.geteuid()
    given = os.environ.get("XDG_RUNTIME_DIR")
    if given:
        return _private(Path(given), "XDG_RUNTIME_DIR")
    login = Path(f"/run/user/{uid}")
    try:
        return _private(login, "the runtime folder")
    except UnsafeSocket:
        pass
    return _private(Path(tempfile.gettempdir()) / f"jupyter-jobs-podman-{uid}", "the runtime folder", make=True)


def checked_socket(path: Path, make_parent: bool = False) -> Path:
    """`path` if its folder is private to this user and it is absent or a socket of theirs."""
    path = Path(os.path.abspath(path))
    _private(path.parent, "the engine socket's folder", make=make_parent)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    uid = os.geteuid()
    if not stat.S_ISSOCK(st.st_mode):
        raise UnsafeSocket(f"{path} is not a socket{' (a symbolic link)' if stat.S_ISLNK(st.st_mode) else ''}; "
                           "refusing it")
    if st.st_uid != uid:
        raise UnsafeSocket(f"the engine socket {path} belongs to uid {st.st_uid}, not to this server's user "
                           f"(uid {uid}); refusing it")
    return path


def answers(path: Path, timeout: float = 2.0) -> bool:
    """Whether an engine answers Docker's `/_ping` at the socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: engine\r\n\r\n")
            reply = b""
            while len(reply) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def rootless_limits(rootless: bool, version: Optional[str], controllers: Optional[list[str]]) -> dict[str, bool]:
    """Which limits the engine applies: all for a root engine; for a rootless one, those whose
    cgroup v2 controller is delegated to the user (none on cgroup v1). `version` and
    `controllers` as the engine reports them; None: what this host's cgroups say."""
    if not rootless:
        return {"memory": True, "cpus": True, "pids": True}
    if version is None:
        version = {2: "v2", 1: "v1"}.get(cgroups.version() or 0, "")
        controllers = _delegated() if version == "v2" else []
    if version != "v2":
        return {"memory": False, "cpus": False, "pids": False}
    have = set(controllers or [])
    return {"memory": "memory" in have, "cpus": "cpu" in have, "pids": "pids" in have}


def _delegated() -> list[str]:
    """The cgroup v2 controllers systemd delegates to this user's services."""
    uid = os.geteuid()
    path = Path(f"/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers")
    try:
        return path.read_text().split()
    except OSError:
        return []
