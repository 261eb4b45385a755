"""The host-wide GPU pool: what a job's allocation and release cost when every service on the
host shares the pool folder, vs the in-memory allocator of a server alone (the baseline, in the
same run). Other services' live records are in the folder (each holds a device), as on a busy
shared host. Run with ab.py to compare two checkouts' pools on the same machine.
Target: an allocate + release cycle well under the queue's half-second retry (< 20 ms)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from common import parser, table


def cycles(allocator, count: int) -> list[float]:
    """Seconds of each allocate(1) + release of one device."""
    out = []
    for i in range(count):
        start = time.perf_counter()
        got = allocator.allocate(1, owner=f"bench{i}", since=time.time())
        assert got is not None, "a free device was not given"
        allocator.release(got, owner=f"bench{i}")
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    from jupyter_jobs.jobs.gpupool import HostGPUPool
    from jupyter_jobs.jobs.gpus import GPU, GPUAllocator

    args = parser(__doc__).parse_args()
    runs, count, others = (2, 20, 3) if args.quick else (5, 300, 6)
    devices = list(range(8))
    inventory = [GPU(index=i, name="configured GPU") for i in devices]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pool"
        neighbours = [HostGPUPool(folder, devices, 1, service_id=f"other-{n}") for n in range(others)]
        for n, pool in enumerate(neighbours):  # each other service holds one device
            assert pool.allocate(1, f"theirs{n}", time.time())[0] is not None
        shared = GPUAllocator(inventory, pool=HostGPUPool(folder, devices, 1, service_id="bench"))
        alone = GPUAllocator(inventory)
        results: dict[str, list[float]] = {"in memory (baseline)": [], "host-wide pool": []}
        for _ in range(runs):  # interleaved: both see the same machine state
            results["in memory (baseline)"].append(statistics.median(cycles(alone, count)))
            results["host-wide pool"].append(statistics.median(cycles(shared, count)))
        base = statistics.median(results["in memory (baseline)"])
        table(f"Allocate + release one GPU, ms per cycle (median of {count} per run, {runs} runs; "
              f"8 devices, {others} other services holding one each)",
              ["allocator", "min", "median", "max", "vs baseline"],
              [[name, min(v) * 1e3, statistics.median(v) * 1e3, max(v) * 1e3,
                f"{statistics.median(v) / base:.0f}x"] for name, v in results.items()])


if __name__ == "__main__":
    main()
