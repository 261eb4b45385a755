"""Many followers, little memory: 100 running jobs (local backend, each printing a line a
second), 1,000 concurrent log followers (10 per job, `?follow=true` over HTTP), and meanwhile
GET /jupyter-jobs/jobs timed again and again. Baseline in the same run: the same GETs with the
100 jobs running and no follower. Targets: GET /jobs p95 < 50 ms with the followers; the
server's memory (RSS) under 300 MB."""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp
import psutil

from common import parser, percentile, server, table

JOB = "import time\nfor i in range(100000):\n    print('step', i, 'loss', 1 / (i + 1), flush=True)\n    time.sleep(1)\n"


async def list_latencies(srv, headers: dict, seconds: float) -> list[float]:
    out = []
    async with aiohttp.ClientSession(headers=headers) as session:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            async with session.get(f"{srv.url}/jupyter-jobs/jobs?limit=50") as resp:
                assert resp.status == 200
                await resp.read()
            out.append(time.perf_counter() - start)
            await asyncio.sleep(0.05)
    return out


async def windows(srv, headers: dict, seconds: float, rounds: int) -> list[list[float]]:
    return [await list_latencies(srv, headers, seconds) for _ in range(rounds)]


async def with_followers(srv, headers: dict, jobs: list[str], per_job: int, seconds: float,
                         rounds: int) -> tuple[list, int, int]:
    lines = [0]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=headers, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        async def follow(job_id: str) -> None:
            async with session.get(f"{srv.url}/jupyter-jobs/jobs/{job_id}/logs?follow=true") as resp:
                async for _ in resp.content:
                    lines[0] += 1

        tasks = [asyncio.ensure_future(follow(j)) for j in jobs for _ in range(per_job)]
        await asyncio.sleep(5)  # all connected and streaming
        server = psutil.Process(srv.proc.pid)
        before = lines[0]
        latencies = await windows(srv, headers, seconds, rounds)
        rss = server.memory_info().rss
        got = lines[0] - before
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies, rss, got


def main() -> None:
    args = parser(__doc__).parse_args()
    jobs_n, per_job, seconds, rounds = (10, 5, 3, 1) if args.quick else (100, 10, 15, 3)
    with server(["--LocalBackend.max_running=200", "--JobsApp.metrics_interval=2"]) as srv:
        headers = {"Authorization": f"token {srv.token}"}
        (srv.root / "w").mkdir()
        ids = [srv.request("POST", "/jupyter-jobs/jobs", {"command": ["python3", "-c", JOB], "workspace": "w"})["id"]
               for _ in range(jobs_n)]
        deadline = time.monotonic() + 120
        while srv.request("GET", "/jupyter-jobs/jobs?status=running&limit=500")["jobs"].__len__() < jobs_n:
            assert time.monotonic() < deadline, "the jobs did not all start"
            time.sleep(0.5)
        base = asyncio.run(windows(srv, headers, seconds, rounds))
        base_rss = psutil.Process(srv.proc.pid).memory_info().rss
        latencies, rss, got = asyncio.run(with_followers(srv, headers, ids, per_job, seconds, rounds))
        for job_id in ids:
            srv.request("POST", f"/jupyter-jobs/jobs/{job_id}/cancel")

    def row(name: str, runs: list[list[float]], memory: int, delivered: str) -> list:
        p95 = [percentile(values, 95) * 1000 for values in runs]
        every = [v for values in runs for v in values]
        return [name, len(every), f"{statistics.median(every) * 1000:.1f}",
                f"{min(p95):.1f} / {statistics.median(p95):.1f} / {max(p95):.1f}", f"{memory / 2**20:.0f}", delivered]

    table(f"GET /jupyter-jobs/jobs while {jobs_n} jobs run ({rounds} windows of {seconds:g} s; targets: p95 < 50 ms, "
          "RSS < 300 MB)",
          ["followers", "GETs", "median ms", "p95 ms per window (min / median / max)", "server RSS MB",
           "log lines delivered/s"],
          [row("none (baseline)", base, base_rss, ""),
           row(f"{jobs_n * per_job}", latencies, rss, f"{got / (seconds * rounds):.0f}")])


if __name__ == "__main__":
    main()
