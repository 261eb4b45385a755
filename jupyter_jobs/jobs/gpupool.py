"""One GPU pool per host, whoever asks: every jupyter_jobs service on the machine (one Jupyter
server per JupyterHub user, the CLI's embedded service) allocates from the same folder.

Why lock files with owner records: they need nothing running (no daemon to crash, no Docker
engine for `local` jobs, no root), they work for every backend that uses the host's GPUs, and
what they say can be checked against the kernel: each record names the process that holds
the devices (a local job's supervisor, a container's init), by pid and start time, so a
record whose process is gone is free again, whoever wrote it, and one whose server died is
still held while its job runs. An allocation is a file written under `flock` on the folder's
lock; a job that must wait leaves a ticket, so servers serve the host's queue oldest first.

The folder is sticky and world-writable (as /tmp): anyone may add a record, only its owner
(or root) may remove it; a stale record of someone else is ignored, and removed by its owner.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from ..backends.base import start_time

DEFAULT_FOLDER = "/tmp/jupyter-jobs-gpus"
#: seconds a waiting job's ticket counts without being renewed (its server asks every half second)
TICKET_LIFE = 10.0




def _alive(proc: Any) -> bool:
    """Whether the process a record names still runs (the same one: pid and start time)."""
    if not isinstance(proc, dict) or not isinstance(proc.get("pid"), int) or proc["pid"] <= 0:
        return False
    return start_time(proc["pid"]) == proc.get("start")


def _valid(data: Any, ticket: bool) -> bool:
    """A record anyone could have written: only well-formed ones count."""
    if not isinstance(data, dict):
        return False
    if ticket:
        return isinstance(data.get("count"), int) and isinstance(data.get("since"), (int, float)) \
            and isinstance(data.get("at"), (int, float))
    return isinstance(data.get("gpus"), list) and all(isinstance(i, int) for i in data["gpus"])


class PoolError(ValueError):
    """The pool's folder cannot be used as it is (said at the server's start)."""


class HostGPUPool:
    """GPU indices handed out across every service on this host; `share` jobs per device."""

    def __init__(self, folder: Path, devices: list[int], share: int, service_id: str, per_user: int = 0):
        self.folder, self.devices, self.share, self.per_user = Path(folder), devices, max(1, share), per_user
        self.prefix = hashlib.sha256(service_id.encode()).hexdigest()[:12]  # this service's records
        me = os.getpid()
        self.server = {"pid": me, "start": start_time(me)}
        self._prepare()

    def _prepare(self) -> None:
        try:
            self.folder.mkdir(mode=0o1777, parents=True, exist_ok=True)
            info = self.folder.lstat()
        except OSError as exc:
            raise PoolError(f"the GPU pool folder {self.folder} cannot be made: {exc}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise PoolError(f"the GPU pool folder {self.folder} is not a folder (a link or a file)")
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != 0o1777:
            os.chmod(self.folder, 0o1777)  # sticky: every user adds records, each removes only its own
        elif info.st_uid not in (0, os.geteuid()) or not info.st_mode & stat.S_ISVTX:
            raise PoolError(f"the GPU pool folder {self.folder} must be sticky and owned by root or you "
                            "(c.JobsApp.gpu_pool_dir)")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        try:
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o666)  # the first user's umask must not lock the others out
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _name(self, owner: str, kind: str = "gpu") -> Path:
        return self.folder / f"{kind}-{self.prefix}-{owner}.json"

    def _read(self) -> tuple[list[dict], list[dict]]:
        """Live records and tickets; stale ones of this user are removed, others' ignored."""
        records, tickets = [], []
        for path in self.folder.glob("*.json"):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd) as fh:
                    data = json.load(fh)
            except (OSError, ValueError):
                continue
            ticket = path.name.startswith("wait-")
            if not _valid(data, ticket):
                continue
            held = data.get("holder")
            live = _alive(held) if held else _alive(data.get("server"))
            if not live:
                if os.stat(path, follow_symlinks=False).st_uid == os.geteuid():
                    with contextlib.suppress(OSError):
                        path.unlink()
                continue
            data["_path"] = path
            (tickets if ticket else records).append(data)
        return records, tickets

    def _write(self, path: Path, data: dict) -> None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)

    def _used(self, records: list[dict]) -> dict[int, int]:
        used = dict.fromkeys(self.devices, 0)
        for record in records:
            for i in record.get("gpus", []):
                if i in used:
                    used[i] += 1
        return used

    # -- the allocator's interface (blocking: call from a thread) ----------------------------
    def allocate(self, count: int, owner: str, since: float) -> tuple[Optional[list[int]], int]:
        """`count` devices for job `owner` (queued at `since`), least used first, or None: then
        it holds a ticket, and no younger job of any service takes devices it could use. Also
        returns how many device slots were free."""
        with self._locked():
            records, tickets = self._read()
            used = self._used(records)
            free = sum(self.share - n for n in used.values())
            mine = self._name(owner)
            now = time.time()
            older = [t for t in tickets if t["since"] < since and t["count"] <= free
                     and now - t["at"] < TICKET_LIFE and t["_path"] != self._name(owner, "wait")]
            uid = os.geteuid()
            over = self.per_user and sum(len(r["gpus"]) for r in records if r.get("user") == uid) + count \
                > self.per_user
            candidates = sorted((n, i) for i, n in used.items() if n < self.share)
            if older or over or len(candidates) < count:
                self._write(self._name(owner, "wait"), {"count": count, "since": since, "user": uid, "at": now,
                                                       "server": self.server, "job": owner})
                return None, free
            chosen = sorted(i for _, i in candidates[:count])
            self._write(mine, {"gpus": chosen, "user": uid, "server": self.server, "holder": None, "job": owner,
                               "since": time.time()})
            with contextlib.suppress(FileNotFoundError):
                self._name(owner, "wait").unlink()
            return chosen, free - count

    def held(self, owner: str, indices: list[int], holder: Optional[dict[str, Any]]) -> None:
        """The job runs: its devices are held by its own process from now on (also if this
        server goes away), or by this server again (a job found at start-up)."""
        with self._locked():
            self._write(self._name(owner), {"gpus": indices, "user": os.geteuid(), "server": self.server,
                                            "holder": holder, "job": owner, "since": time.time()})

    def claim(self, owner: str, indices: list[int]) -> None:
        """A job this service found running at start-up: its record stays as it is (held by the
        job's process); one that went missing is written again, held by this server."""
        with self._locked():
            if not self._name(owner).exists():
                self._write(self._name(owner), {"gpus": indices, "user": os.geteuid(), "server": self.server,
                                                "holder": None, "job": owner, "since": time.time()})

    def release(self, owner: str) -> None:
        with self._locked():
            for kind in ("gpu", "wait"):
                with contextlib.suppress(FileNotFoundError):
                    self._name(owner, kind).unlink()

    def usage(self) -> dict[int, int]:
        """Jobs (of any service) on each device now."""
        with self._locked():
            return self._used(self._read()[0])
