"""A deployment's stable address: requests/s through it vs through a single job's endpoint (the
same aiohttp app, tests/data/endpoint_app.py, one replica each) and straight to the app, and the
latency each adds (sequential GETs, p50/p99), measured in the same run, interleaved.
Target: the deployment >= 0.9x the job endpoint's requests/s."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time

import aiohttp

from bench_endpoints import APP, requests_per_second, serve, stats
from common import parser, percentile, server, table


async def latencies(url: str, headers: dict, count: int) -> list[float]:
    async with aiohttp.ClientSession(headers=headers) as session:
        took = []
        for _ in range(count + 20):
            start = time.perf_counter()
            async with session.get(url) as resp:
                assert resp.status == 200, resp.status
                await resp.read()
            took.append(time.perf_counter() - start)
        return took[20:]  # after the connection and the first requests


def deployed(srv) -> dict:
    srv.request("POST", "/jupyter-jobs/deployments", {"name": "bench", "spec": {
        "command": "exec python3 app.py", "workspace": "w", "expose": [{"port": 8000, "name": "api"}]}})
    deadline = time.monotonic() + 60
    while (found := srv.request("GET", "/jupyter-jobs/deployments/bench"))["status"] != "ready":
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    return found


def main() -> None:
    args = parser(__doc__).parse_args()
    runs, count, sequential, clients = (2, 400, 100, 8) if args.quick else (5, 4000, 1000, 8)
    with server(["--JobsApp.metrics_interval=0"]) as srv:
        auth = {"Authorization": f"token {srv.token}"}
        (srv.root / "w").mkdir()
        shutil.copy(APP, srv.root / "w" / "app.py")
        job = serve(srv, "exec python3 app.py")
        deployment = deployed(srv)
        paths = {"direct to the app (baseline)": (f"http://127.0.0.1:{job['endpoints'][0]['port']}/small", {}),
                 "a job's endpoint": (f"{srv.url}/{job['endpoints'][0]['path']}small", auth),
                 "the deployment's address": (f"{srv.url}/{deployment['endpoints'][0]['path']}small", auth)}
        rps: dict[str, list[float]] = {name: [] for name in paths}
        p50: dict[str, list[float]] = {name: [] for name in paths}
        p99: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(runs):  # interleaved: every path sees the same machine state
            for name, (url, headers) in paths.items():
                rps[name].append(asyncio.run(requests_per_second(url, headers, count, clients)))
                took = asyncio.run(latencies(url, headers, sequential))
                p50[name].append(percentile(took, 50) * 1000)
                p99[name].append(percentile(took, 99) * 1000)
        srv.request("DELETE", "/jupyter-jobs/deployments/bench")
        srv.request("POST", f"/jupyter-jobs/jobs/{job['id']}/cancel")
    endpoint, ours = rps["a job's endpoint"], rps["the deployment's address"]
    ratio = statistics.median(o / e for o, e in zip(ours, endpoint))
    table(f"Small responses, requests/s ({runs} interleaved runs of {count} GETs over {clients} connections)",
          ["path", "min", "median", "max", "vs the job's endpoint (median of per-run ratios)", "target"],
          [[name, *stats(values), f"{ratio:.2f}x" if values is ours else "",
            f">= 0.9x: {'yes' if ratio >= 0.9 else 'NO'}" if values is ours else ""] for name, values in rps.items()])
    direct50, direct99 = statistics.median(p50[next(iter(paths))]), statistics.median(p99[next(iter(paths))])
    table(f"Latency of {sequential} sequential GETs, ms ({runs} runs; min/median/max of each run's percentile)",
          ["path", "p50 min", "p50 median", "p50 max", "p99 min", "p99 median", "p99 max", "added at p50 / p99"],
          [[name, *stats(p50[name], "{:.2f}"), *stats(p99[name], "{:.2f}"),
            "" if name.startswith("direct") else
            f"+{statistics.median(p50[name]) - direct50:.2f} / +{statistics.median(p99[name]) - direct99:.2f}"]
           for name in paths])


if __name__ == "__main__":
    main()
