"""A backlog of queued jobs on one slot: per-job overhead as the queue grows. 10, 1,000 and
10,000 jobs of `true` are put in the history as queued (one shared snapshot, the server down),
then the server is started with one local job at a time and the drain is timed until the last
one succeeded. A `sleep 2` queued ahead of them holds the slot while the server finishes
starting (its backends' probes), so the drain is timed on a server that is up, as a backlog
would meet it. Baseline in the same run: `true` run that many times by bare `subprocess`, one
after the other. Targets: the overhead per job <= 10 ms (100 jobs a second on one slot) at each
size, and with 10,000 queued within 10 % of that with 10."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import parser, table
from support import ServerProcess

BLOCKER = "f" * 12


async def fill(data: Path, root: Path, count: int) -> None:
    from jupyter_jobs.domain.job import Job
    from jupyter_jobs.domain.spec import JobSpec
    from jupyter_jobs.storage.snapshots import SnapshotStore
    from jupyter_jobs.storage.store import Store

    snapshots = SnapshotStore(data)
    snap = snapshots.snapshot(root / "w")
    snapshots.close()
    store = Store(data / "jobs.db")
    blocker = Job(id=BLOCKER, spec=JobSpec(command=["sleep", "2"], workspace="w"), backend="local", project="w",
                  snapshot=snap.id)  # created first: first in the queue
    for start in range(0, count, 5000):
        jobs = [Job(id=f"{i:012x}", spec=JobSpec(command=["true"], workspace="w"), backend="local", project="w",
                    snapshot=snap.id) for i in range(start, min(count, start + 5000))]
        if start == 0:
            jobs.insert(0, blocker)
        await store.insert_many([(job, data / "jobs" / job.id) for job in jobs])
    store.close()


def drain(count: int) -> float:
    """Seconds from the first of `count` queued jobs starting until the last one ended (the
    server's own start-up is not in it)."""
    with tempfile.TemporaryDirectory(prefix="jobs-bench-queue-") as tmp:
        root, data = Path(tmp) / "root", Path(tmp) / "data"
        (root / "w").mkdir(parents=True)
        data.mkdir()
        asyncio.run(fill(data, root, count))
        srv = ServerProcess(root, data, extra=["--LocalBackend.max_running=1", "--JobsApp.metrics_interval=0"])
        srv.start()
        try:
            db = sqlite3.connect(f"file:{data / 'jobs.db'}?mode=ro", uri=True)
            while db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'").fetchone()[0] < count + 1:
                failed = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('failed', 'cancelled')").fetchone()[0]
                assert not failed, f"{failed} jobs did not succeed"
                time.sleep(0.05)
            first, last = db.execute("SELECT MIN(started_at), MAX(finished_at) FROM jobs WHERE id != ?",
                                     (BLOCKER,)).fetchone()
            db.close()
            return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
        finally:
            srv.stop()


def bare(count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        subprocess.run(["true"], check=True)
    return time.perf_counter() - start


def main() -> None:
    args = parser(__doc__).parse_args()
    sizes, runs = ((10, 100), 1) if args.quick else ((10, 1000, 10000), 3)
    rows, overheads = [], {}
    for size in sizes:
        per_job, rates = [], []
        for _ in range(runs if size < 10000 else max(1, runs - 1)):
            took, base = drain(size), bare(size)
            per_job.append((took - base) / size * 1000)
            rates.append(size / took)
        overheads[size] = per_job
        rows.append([size, *(f"{f(per_job):.2f}" for f in (min, statistics.median, max)),
                     f"{base / size * 1000:.2f}", f"{statistics.median(rates):.0f}",
                     "yes" if statistics.median(per_job) <= 10 else "NO"])
    small = statistics.median(overheads[sizes[0]])
    for row, size in zip(rows, sizes):
        row.append(f"{statistics.median(overheads[size]) / small:.2f}x")
    table(f"Draining a backlog of `true` jobs on one slot: overhead per job over bare subprocess ({runs} runs; "
          "from the first job's start to the last one's end)",
          ["queued jobs", "overhead ms/job min", "median", "max", "bare ms/job", "jobs/s", "<= 10 ms",
           "vs 10 queued"], rows)


if __name__ == "__main__":
    main()
