"""A cgroup per local job: every process the job makes stays countable and killable, however it
daemonizes (setsid, double fork), and the job's `cpus` and `memory` are enforced.

cgroup v1 (a hierarchy per controller: freezer, memory, cpu, pids) and v2 (one unified tree)
are both handled. Where the server may not create cgroups (not root, no delegation), `create`
returns None and the local backend falls back to killing the job's process group. Blocking
file I/O: call from a worker thread.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Optional

ROOT = Path("/sys/fs/cgroup")
_V1 = ("freezer", "memory", "cpu", "pids")
_PERIOD = 100_000  # CFS period, microseconds


def version() -> Optional[int]:
    """1 or 2, by what is mounted; None when neither is usable."""
    if (ROOT / "cgroup.controllers").exists():
        return 2
    if all((ROOT / c).is_dir() for c in _V1):
        return 1
    return None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


class JobCgroup:
    """The cgroup(s) of one job, named `<parent>/<job id>` in each hierarchy."""

    def __init__(self, parent: str, leaf: str, v: int):
        self.v = v
        self.leaf = leaf
        self.name = f"{parent}/{leaf}"
        self.dirs = [ROOT / self.name] if v == 2 else [ROOT / c / self.name for c in _V1]

    def _dir(self, controller: str) -> Path:
        return ROOT / self.name if self.v == 2 else ROOT / controller / self.name

    @classmethod
    def create(cls, parent: str, leaf: str, *, cpus: Optional[float] = None,
               memory: Optional[int] = None) -> Optional[JobCgroup]:
        v = version()
        if v is None:
            return None
        group = cls(parent, leaf, v)
        try:
            if v == 2:
                _enable_v2_controllers(parent)
            for d in group.dirs:
                d.mkdir(parents=True, exist_ok=True)
            group.limit(cpus, memory)
        except OSError:
            group.remove()
            return None
        return group

    @classmethod
    def find(cls, parent: str, leaf: str) -> Optional[JobCgroup]:
        """The cgroup of a job started before a restart, if it is still there."""
        v = version()
        if v is None:
            return None
        group = cls(parent, leaf, v)
        return group if group.dirs[0].is_dir() else None

    def limit(self, cpus: Optional[float], memory: Optional[int]) -> None:
        """Enforce the job's `cpus` and `memory` (a quick write, unlike moving a process)."""
        if memory:
            if self.v == 2:
                _write(self._dir("memory") / "memory.max", str(memory))
                _write(self._dir("memory") / "memory.swap.max", "0")
            else:
                _write(self._dir("memory") / "memory.limit_in_bytes", str(memory))
                swap = self._dir("memory") / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    _write(swap, str(memory))
        if cpus:
            quota = max(1000, int(cpus * _PERIOD))
            if self.v == 2:
                _write(self._dir("cpu") / "cpu.max", f"{quota} {_PERIOD}")
            else:
                _write(self._dir("cpu") / "cpu.cfs_period_us", str(_PERIOD))
                _write(self._dir("cpu") / "cpu.cfs_quota_us", str(quota))

    def add(self, pid: int) -> None:
        """Move a process (before it runs the job's command) into the job's cgroup(s). Slow on
        cgroup v1 (~10 ms: the kernel waits for an RCU grace period): done ahead of need."""
        for d in self.dirs:
            _write(d / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        try:
            text = (self._dir("pids") / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the job for going over its memory limit."""
        events = self._dir("memory") / ("memory.events" if self.v == 2 else "memory.oom_control")
        try:
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL every process of the job; frozen first, so none can fork away meanwhile."""
        if self.v == 2 and (self._dir("pids") / "cgroup.kill").exists():
            _write(self._dir("pids") / "cgroup.kill", "1")
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            self._freeze(True)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._freeze(False)  # a frozen process cannot die: thaw so the kills land
            time.sleep(0.005)

    def _freeze(self, frozen: bool) -> None:
        try:
            if self.v == 2:
                _write(self._dir("freezer") / "cgroup.freeze", "1" if frozen else "0")
            else:
                _write(self._dir("freezer") / "freezer.state", "FROZEN" if frozen else "THAWED")
        except OSError:
            pass

    def remove(self) -> None:
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass


def _enable_v2_controllers(parent: str) -> None:
    """v2: controllers reach a child only when each ancestor's subtree_control names them."""
    path = ROOT
    for part in ["", *parent.split("/")]:
        path = path / part if part else path
        path.mkdir(exist_ok=True)
        try:
            _write(path / "cgroup.subtree_control", "+cpu +memory +pids")
        except OSError:
            pass
