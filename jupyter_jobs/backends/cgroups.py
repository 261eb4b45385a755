"""A cgroup per local job: every process the job makes stays countable and killable, however it
daemonizes (setsid, double fork), and the job's `cpus` and `memory` are enforced.

cgroup v1 (a hierarchy per controller: freezer, memory, cpu, pids) and v2 (one unified tree)
are both handled. Where the server may not create cgroups (not root, no delegation), `create`
returns None and the local backend falls back to killing the job's process group. Blocking
file I/O: call from a worker thread.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Optional

ROOT = Path("/sys/fs/cgroup")
_V1 = ("freezer", "memory", "cpu", "pids")
#: v1 hierarchies used when mounted on their own (CPU time, for telemetry)
_V1_OPTIONAL = ("cpuacct",)
_PERIOD = 100_000  # CFS period, microseconds
#: charged memory a job's cgroup may have left at its end that is reclaimed before its removal
_RECLAIM_UP_TO = 64 << 20
#: removals waiting beyond which the janitor removes without reclaiming
_BACKLOG = 8


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

    def retire(self) -> None:
        """Remove it, once what its ended job left charged to it is reclaimed, in the janitor's
        thread (`_Janitor`): the caller (the thread that follows every job) does not wait."""
        _JANITOR.put(self)

    def _reclaim(self) -> None:
        """A memory cgroup removed while pages are still charged to it (the page cache of files
        its job wrote, even the supervisor's own output) lives on in the kernel, dying, until they
        are reclaimed: measured, ~35 of them left per 226 jobs without this, ~10 with it, and 369
        on a host after ~1,000 jobs. A remainder over 64 MiB (a dataset the job read, worth
        keeping cached for the next job) is left to the kernel."""
        memory = self._dir("memory")
        try:
            if self.v == 2:
                left = int((memory / "memory.current").read_text())
                if 0 < left <= _RECLAIM_UP_TO:
                    _write(memory / "memory.reclaim", str(left))
            else:
                left = int((memory / "memory.usage_in_bytes").read_text())
                if 0 < left <= _RECLAIM_UP_TO:
                    _write(memory / "memory.force_empty", "0")
        except (OSError, ValueError):  # gone, or (v2) reclaimed in part: the kernel does the rest
            pass


class _Janitor:
    """Removes ended jobs' cgroups in a daemon thread of its own: reclaiming what one has left can
    wait ~100 ms on writeback (measured). With a backlog (a queue drained fast) it removes without
    reclaiming, so it never falls far behind; a cgroup a killed process has not yet left is tried
    again a little later (for up to 10 s)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[JobCgroup] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._later: list[tuple[float, int, JobCgroup]] = []  # (when, tries, cgroup) to try again

    def put(self, group: JobCgroup) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="jobs-cgroup-janitor", daemon=True)
                self._thread.start()
        self._queue.put(group)

    def _run(self) -> None:
        while True:
            try:
                group = self._queue.get(timeout=0.25 if self._later else None)
            except queue.Empty:
                group = None
            if group is not None:
                try:
                    self._remove(group, 0, reclaim=self._queue.qsize() < _BACKLOG)
                finally:
                    self._queue.task_done()
            now, due = time.monotonic(), self._later
            self._later = [item for item in due if item[0] > now]
            for _, tries, again in (item for item in due if item[0] <= now):
                self._remove(again, tries)

    def _remove(self, group: JobCgroup, tries: int, reclaim: bool = False) -> None:
        try:
            if reclaim:
                group._reclaim()
            group.remove()
            if tries < 40 and any(d.is_dir() for d in group.dirs):
                self._later.append((time.monotonic() + 0.25, tries + 1, group))
        except Exception:  # this thread must go on for the others, whatever one cgroup does
            logging.getLogger(__name__).exception("removing cgroup %s failed", group.name)

    def flush(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until the cgroups handed over are removed (a server stopping)."""
        deadline = time.monotonic() + timeout
        while (self._queue.unfinished_tasks or self._later) and time.monotonic() < deadline:
            time.sleep(0.01)


_JANITOR = _Janitor()
flush_removals = _JANITOR.flush


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
