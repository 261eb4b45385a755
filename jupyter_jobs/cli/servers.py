"""Which Jupyter server the CLI talks to, and which folder it serves.

Found as `jupyter server list` finds servers (the `jpserver-*.json` files each server writes
into the Jupyter runtime folder, kept only while their process lives), but without importing
`jupyter_server.serverapp`: that import alone took ~2.5 s of a command that should answer in
a fraction of one. Only `jupyter_core.paths` is imported, for where the runtime folder is.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

#: host names that all mean "this machine" when a given URL is matched to a server's file
_LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""}


@dataclass(frozen=True)
class Server:
    """A running Jupyter server: where to reach it, its token, and its root folder."""

    url: str
    token: str
    root: Path


def under(folder: Path, root: Path) -> bool:
    """Whether `folder` is `root` or inside it (both resolved)."""
    return folder == root or root in folder.parents


def runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def running() -> list[Server]:
    """The servers whose info file is in the runtime folder and whose process lives. Unlike
    `jupyter server list`, stale files are left alone: this is a read-only look."""
    folder = runtime_dir()
    try:
        names = sorted(p for p in os.listdir(folder) if p.startswith("jpserver-") and p.endswith(".json"))
    except OSError:
        return []
    found = []
    for name in names:
        try:
            info = json.loads((folder / name).read_text(encoding="utf-8"))
            root = Path(info.get("root_dir") or info.get("notebook_dir") or "/").expanduser().resolve()
            server = Server(info["url"], info.get("token") or "", root)
        except (OSError, ValueError, KeyError, TypeError):  # being written, or not a server's file
            continue
        if _alive(info.get("pid")):
            found.append(server)
    return found


def serving(here: Path) -> Optional[Server]:
    """The server for a command run in `here`: the one whose root holds it most closely, else
    any running one (its jobs can still be listed; a workspace from `here` is refused)."""
    servers = running()
    holding = [s for s in servers if under(here, s.root)]
    if holding:
        return max(holding, key=lambda s: len(s.root.parts))
    return servers[0] if servers else None


def _address(url: str) -> tuple[str, Optional[int], str]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    local = host in _LOCAL or host == socket.gethostname().lower()
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return ("local" if local else host), port, parts.path.rstrip("/")


def matching(url: str) -> Optional[Server]:
    """The running server that `url` reaches, if its info file is in the runtime folder (so
    this machine knows its root); None for a remote server or one started elsewhere."""
    wanted = _address(url)
    return next((s for s in running() if _address(s.url) == wanted), None)
