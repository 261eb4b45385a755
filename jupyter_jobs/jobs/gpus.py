"""GPU inventory (pynvml, or configured where no NVIDIA driver is present) and allocation.

The service hands each job distinct device indices; a job asking for more than are free
waits in the queue. Backends only apply the indices they are given.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import getpass

from ..domain.policy import Limits, Policy, refuse

if TYPE_CHECKING:
    from .gpupool import HostGPUPool

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    memory: Optional[int] = None  # bytes
    uuid: Optional[str] = None


def _me() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "this user"


def discover() -> list[GPU]:
    """The host's NVIDIA GPUs through NVML; empty when there is no driver."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        log.debug("no NVIDIA GPUs: %s", exc)
        return []
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(
                GPU(
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else name,
                    memory=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                    uuid=str(pynvml.nvmlDeviceGetUUID(handle)),
                )
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


class GPUAllocator:
    """Hands out distinct GPU indices; `share` lets up to that many jobs use one device. With a
    host-wide `pool` (gpupool.py) every service on the host allocates from the same devices;
    its calls then touch files: call them through `run`, on the allocator's own thread (never
    the event loop's default executor, which the server's other work needs)."""

    def __init__(self, gpus: list[GPU], share: int = 1, pool: Optional[HostGPUPool] = None,
                 policy: Optional[Policy] = None):
        self.gpus = gpus
        self.base_policy = policy or Policy(default=Limits())  # one server alone: its own rule, no cap
        self.share = max(1, share)
        self.pool = pool
        self._used: dict[int, int] = {g.index: 0 for g in gpus}
        self.last_free = self.total * self.share  # as of the last allocation (for messages)
        self.last_why: Optional[str] = None  # the host's rule that held the last allocation, in words
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="jupyter-jobs-gpu-pool") if pool else None

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)`: on the pool's own thread with a host-wide pool, else at once."""
        if self._thread is None:
            return call(*args)
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    @property
    def total(self) -> int:
        return len(self.gpus)

    @property
    def shared(self) -> bool:
        """Whether allocations go through the host-wide pool (blocking calls)."""
        return self.pool is not None

    def usage(self) -> dict[int, int]:
        """Jobs on each device now (of every service on the host, with a pool)."""
        return self.pool.usage() if self.pool is not None else dict(self._used)

    def free(self) -> int:
        return sum(self.share - n for n in self.usage().values())

    def allocate(self, count: int, owner: str = "", since: float = 0.0, priority: int = 0,
                 project: Optional[str] = None) -> Optional[list[int]]:
        """`count` distinct indices for job `owner` (queued at `since`), least used first, or
        None if they are not free now (or, with the host's pool, its policy holds the job:
        `last_why` says why)."""
        self.last_why = None
        if count == 0:
            return []
        if self.pool is not None:
            chosen, self.last_free, self.last_why = self.pool.allocate(count, owner, since, priority, project)
            return chosen
        candidates = sorted((n, i) for i, n in self._used.items() if n < self.share)
        self.last_free = len(candidates)
        if len(candidates) < count:
            return None
        chosen = sorted(i for _, i in candidates[:count])
        for i in chosen:
            self._used[i] += 1
        return chosen

    @property
    def user(self) -> str:
        """Whose jobs this allocator's are (the server's Unix user)."""
        return self.pool.user if self.pool is not None else _me()

    def policy(self) -> Policy:
        """The rule in force: the host's as last read (no file system: safe on the event loop), or
        this server's own without a host pool."""
        return self.pool.admin.last() if self.pool is not None else self.base_policy

    def priority(self, asked: int) -> int:
        """A job's priority on this host: what it asks for, capped by the host's policy as last read."""
        return self.policy().priority(self.user, asked)

    def refusal(self, count: int, project: Optional[str]) -> Optional[str]:
        """Why a job asking for `count` GPUs can never start under the host's quotas, or None."""
        return refuse(self.user, project, count, self.policy())

    def claim(self, indices: list[int], owner: str = "") -> None:
        """Mark indices as used by a job found running at start-up."""
        if self.pool is not None:
            if indices:
                self.pool.claim(owner, indices)
            return
        for i in indices:
            if i in self._used:
                self._used[i] += 1

    def held(self, owner: str, indices: list[int], holder: Optional[dict]) -> None:
        """The job's own process holds its devices from now on (with a pool; else nothing to do)."""
        if self.pool is not None and indices:
            self.pool.held(owner, indices, holder)

    def release(self, indices: list[int], owner: str = "") -> None:
        if self.pool is not None:
            self.pool.release(owner)
            return
        for i in indices:
            if self._used.get(i, 0) > 0:
                self._used[i] -= 1

    def describe(self, usage: Optional[dict[int, int]] = None) -> list[dict]:
        used = usage if usage is not None else self.usage()
        return [
            {"index": g.index, "name": g.name, "memory": g.memory, "in_use": used.get(g.index, 0)}
            for g in self.gpus
        ]
