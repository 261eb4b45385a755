"""System telemetry: every `interval` seconds the service samples each running job's CPU and
memory (through its backend: a cgroup, the engine's stats, sstat) and the host's GPUs (NVML,
once for all jobs), and appends one line per job to the job's telemetry file, which
`series.read` serves beside the job's own metrics. Telemetry never fails a job: a backend
that cannot tell gets one note on the job, saying why."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from collections.abc import Awaitable

from ..storage.series import TELEMETRY_FILE

log = logging.getLogger(__name__)


class GPUSampler:
    """Utilisation, memory, power and temperature of every GPU on the host, through NVML
    (`pynvml` from nvidia-ml-py, or any module with its functions: tests pass a fake)."""

    def __init__(self, nvml: Any = None):
        self._nvml = nvml
        self._ready: Optional[bool] = None

    def _start(self) -> bool:
        if self._ready is None:
            try:
                if self._nvml is None:
                    import pynvml

                    self._nvml = pynvml
                self._nvml.nvmlInit()
                self._ready = True
            except Exception as exc:  # no driver, no library: no GPU figures
                log.debug("no GPU telemetry: %s", exc)
                self._ready = False
        return self._ready

    def sample(self, indices: set[int]) -> dict[int, dict[str, float]]:
        """Figures for the devices in `indices` (blocking: call from a thread)."""
        if not indices or not self._start():
            return {}
        nvml, out = self._nvml, {}
        for index in sorted(indices):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                util = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                figures = {"util": float(util.gpu), "memory_used": float(memory.used),
                           "memory_total": float(memory.total)}
                try:
                    figures["power"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # mW -> W
                    figures["temperature"] = float(nvml.nvmlDeviceGetTemperature(handle, 0))  # 0: the GPU die
                except Exception:  # not every board reports them
                    pass
                out[index] = figures
            except Exception as exc:
                log.debug("GPU %s gave no telemetry: %s", index, exc)
        return out

    def close(self) -> None:
        if self._ready:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
        self._ready = None


@dataclass
class _Seen:
    """What the previous sample of one job was (CPU % is a rate between two samples)."""

    cpu: Optional[float] = None
    at: float = 0.0
    started: float = field(default_factory=time.monotonic)
    noted: bool = False


class Telemetry:
    """Samples the jobs `running()` returns: (job id, job folder, GPU indices, execution)."""

    def __init__(self, running: Callable[[], list[tuple[str, Path, list[int], Any]]], interval: float,
                 gpus: GPUSampler, note: Callable[[str, str], Awaitable[None]],
                 utilization: Optional[Callable[[dict[str, float]], Awaitable[None]]] = None):
        self.running, self.interval, self.gpus, self.note = running, interval, gpus, note
        self.utilization = utilization  # told each round of each GPU job's busiest device (percent)
        self._seen: dict[str, _Seen] = {}

    async def run(self) -> None:
        """Sample every `interval` seconds until cancelled; one failed round is only logged."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sample()
            except Exception:
                log.exception("telemetry round failed")

    async def sample(self) -> None:
        jobs = self.running()
        self._seen = {job_id: self._seen.get(job_id) or _Seen() for job_id, *_ in jobs}
        if not jobs:
            return
        lines, notes, busiest = await asyncio.to_thread(self._measure, jobs)
        await asyncio.to_thread(_append, lines)
        for job_id, text in notes:
            await self.note(job_id, f"telemetry: {text}")
        if self.utilization is not None:
            await self.utilization(busiest)

    def _measure(self, jobs: list[tuple[str, Path, list[int], Any]]
                 ) -> tuple[list[tuple[Path, str]], list, dict[str, float]]:
        gpu = self.gpus.sample({i for _, _, indices, _ in jobs for i in indices})
        now, wall = time.monotonic(), time.time()
        lines, notes = [], []
        busiest = {job_id: max(gpu[i]["util"] for i in indices) for job_id, _, indices, _ in jobs
                   if indices and all("util" in gpu.get(i, {}) for i in indices)}
        for job_id, folder, indices, execution in jobs:
            seen = self._seen[job_id]
            try:
                usage = execution.usage()
            except Exception as exc:
                usage = None
                log.debug("no usage for %s: %s", job_id, exc)
            point: dict[str, float] = {"time": round(wall, 3), "step": round(now - seen.started, 3)}
            if usage is not None and usage.cpu_seconds is not None:
                if seen.cpu is not None and now > seen.at:
                    point["cpu.percent"] = round(max(0.0, usage.cpu_seconds - seen.cpu) / (now - seen.at) * 100, 1)
                seen.cpu, seen.at = usage.cpu_seconds, now
            if usage is not None and usage.rss is not None:
                point["memory.rss"] = usage.rss
            if usage is not None and usage.note and not seen.noted:
                seen.noted = True
                notes.append((job_id, usage.note))
            for index in indices:
                for key, value in gpu.get(index, {}).items():
                    point[f"gpu.{index}.{key}"] = value
            if len(point) > 2:
                lines.append((folder, json.dumps(point)))
        return lines, notes, busiest


def _append(lines: list[tuple[Path, str]]) -> None:
    for folder, line in lines:
        try:
            fd = os.open(folder / TELEMETRY_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            continue  # the job's folder went (deleted): nothing to keep
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
