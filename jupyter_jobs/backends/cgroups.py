"""A cgroup per local job: every process the job makes stays countable and killable, however it
daemonizes (setsid, double fork), and the job's `cpus` and `memory` are enforced.

cgroup v1 (a hierarchy per controller: freezer, memory, cpu, pids) and v2 (one unified tree)
are both handled. Where the server may not create cgroups (not root, no delegation), `create`
returns None and the local backend falls back to killing the job's process group. Blocking
file I/O: call from a worker thread.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path
from typing import Optional

ROOT = Path("/sys/fs/cgroup")
_V1 = ("freezer", "memory", "cpu", "pids")
#: v1 hierarchies used when mounted on their own (CPU time, for telemetry)
_V1_OPTIONAL = ("cpuacct",)
_PERIOD = 100_000  # CFS period, microseconds


@functools.cache
def version() -> Optional[int]:
    """1 or 2, by what is mounted; None when neither is usable. Looked at once: the mounts do not
    change under a running server, and this is asked on every submit, on the event loop."""
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
        if v == 2:
            self.dirs = [ROOT / self.name]
        else:
            extra = [c for c in _V1_OPTIONAL if (ROOT / c).is_dir() and not (ROOT / "cpu" / f"{c}.usage").exists()]
            self.dirs = [ROOT / c / self.name for c in (*_V1, *extra)]

    def _dir(self, controller: str) -> Path:
        return ROOT / self.name if self.v == 2 else ROOT / controller / self.name

    def usage(self) -> tuple[Optional[float], Optional[int]]:
        """CPU seconds used so far and resident memory now (anonymous pages: what the job's
        processes hold, not the page cache), summed over every process of the job."""
        return _read_usage(self._usage_files())

    def _usage_files(self) -> tuple[Path, Path]:
        if self.v == 2:
            return ROOT / self.name / "cpu.stat", ROOT / self.name / "memory.stat"
        cpu = self._dir("cpu") / "cpuacct.usage"
        if not cpu.exists():
            cpu = self._dir("cpuacct") / "cpuacct.usage"
        return cpu, self._dir("memory") / "memory.stat"

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


def _stat(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _read_usage(files: tuple[Path, Path]) -> tuple[Optional[float], Optional[int]]:
    cpu_file, memory_file = files
    cpu: Optional[float] = None
    rss: Optional[int] = None
    try:
        if cpu_file.name == "cpu.stat":
            cpu = _stat(cpu_file)["usage_usec"] / 1e6
        else:
            cpu = int(cpu_file.read_text()) / 1e9
    except (OSError, KeyError, ValueError):
        pass
    try:
        stats = _stat(memory_file)
        rss = stats["anon"] if "anon" in stats else stats.get("total_rss", stats.get("rss", 0)) + stats.get(
            "total_rss_huge", stats.get("rss_huge", 0))
    except (OSError, KeyError, ValueError):
        pass
    return cpu, rss


def container_usage(cgroup_path: str) -> tuple[Optional[float], Optional[int]]:
    """The same figures for a cgroup named by its path below each hierarchy (a container's,
    e.g. "docker/<id>" or "system.slice/docker-<id>.scope"), read from this host's files."""
    if version() == 2:
        return _read_usage((ROOT / cgroup_path / "cpu.stat", ROOT / cgroup_path / "memory.stat"))
    cpu = ROOT / "cpu" / cgroup_path / "cpuacct.usage"
    if not cpu.exists():
        cpu = ROOT / "cpuacct" / cgroup_path / "cpuacct.usage"
    return _read_usage((cpu, ROOT / "memory" / cgroup_path / "memory.stat"))


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
