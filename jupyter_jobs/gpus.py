"""GPU inventory (pynvml, or configured where no NVIDIA driver is present) and allocation.

The service hands each job distinct device indices; a job asking for more than are free
waits in the queue. Backends only apply the indices they are given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    memory: Optional[int] = None  # bytes
    uuid: Optional[str] = None


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
    """Hands out distinct GPU indices; `share` lets up to that many jobs use one device."""

    def __init__(self, gpus: list[GPU], share: int = 1):
        self.gpus = gpus
        self.share = max(1, share)
        self._used: dict[int, int] = {g.index: 0 for g in gpus}

    @property
    def total(self) -> int:
        return len(self.gpus)

    def free(self) -> int:
        return sum(self.share - n for n in self._used.values())

    def allocate(self, count: int) -> Optional[list[int]]:
        """`count` distinct indices, least used first, or None if they are not free now."""
        if count == 0:
            return []
        candidates = sorted((n, i) for i, n in self._used.items() if n < self.share)
        if len(candidates) < count:
            return None
        chosen = sorted(i for _, i in candidates[:count])
        for i in chosen:
            self._used[i] += 1
        return chosen

    def claim(self, indices: list[int]) -> None:
        """Mark indices as used by a job found running at start-up."""
        for i in indices:
            if i in self._used:
                self._used[i] += 1

    def release(self, indices: list[int]) -> None:
        for i in indices:
            if self._used.get(i, 0) > 0:
                self._used[i] -= 1

    def describe(self) -> list[dict]:
        return [
            {"index": g.index, "name": g.name, "memory": g.memory, "in_use": self._used[g.index]}
            for g in self.gpus
        ]
