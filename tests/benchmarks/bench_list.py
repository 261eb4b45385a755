"""`GET /jupyter-jobs/jobs?limit=50` with 100,000 jobs in history: p95 under 50 ms.

Baseline: the same page read straight from the store (SQLite, no HTTP) in the same run.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import tempfile
import time
from pathlib import Path

from common import fill_history, ms, parser, percentile, table
from support import ServerProcess

from jupyter_jobs.storage.store import Store

def timed_pages(srv: ServerProcess, query: str, runs: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    headers = {"Authorization": f"token {srv.token}"}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        conn.request("GET", f"/jupyter-jobs/jobs?{query}", headers=headers)
        resp = conn.getresponse()
        page = json.loads(resp.read())
        times.append(time.perf_counter() - start)
        assert resp.status == 200 and len(page["jobs"]) == 50, page
    conn.close()
    return times


async def store_pages(db: Path, runs: int) -> list[float]:
    store = Store(db)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jobs, _ = await store.list(limit=50)
        [j.public() for j in jobs]
        times.append(time.perf_counter() - start)
    store.close()
    return times


def main() -> None:
    args = parser(__doc__).parse_args()
    count, runs = (2_000, 20) if args.quick else (100_000, 200)
    with tempfile.TemporaryDirectory(prefix="jobs-bench-list-") as tmp:
        root, data = Path(tmp) / "root", Path(tmp) / "data"
        root.mkdir()
        data.mkdir()
        started = time.perf_counter()
        asyncio.run(fill_history(data / "jobs.db", count))
        fill_s = time.perf_counter() - started
        baseline = asyncio.run(store_pages(data / "jobs.db", runs))
        srv = ServerProcess(root, data).start()
        try:
            timed_pages(srv, "limit=50", 5)  # warm
            first_page = timed_pages(srv, "limit=50", runs)
            cursor = srv.request("GET", "/jupyter-jobs/jobs?limit=50")["next_cursor"]
            deep = timed_pages(srv, f"limit=50&cursor={int(cursor) // 2}", runs)
            filtered = timed_pages(srv, "limit=50&status=failed&project=project-7", runs)
        finally:
            srv.stop()
    rows = [["store.list, no HTTP (baseline)", ms(percentile(baseline, 50)), ms(percentile(baseline, 95)), ""]]
    for name, values in [("GET /jobs?limit=50", first_page), ("... deep page (cursor halfway)", deep),
                         ("... status=failed&project=...", filtered)]:
        p95 = ms(percentile(values, 95))
        rows.append([name, ms(percentile(values, 50)), p95, "yes" if p95 < 50 else "NO"])
    table(f"Listing with {count:,} jobs in history ({runs} requests each; filled in {fill_s:.1f} s)",
          ["request", "p50 ms", "p95 ms", "p95 < 50 ms"], rows)


if __name__ == "__main__":
    main()
