"""Helpers shared by the benchmarks: timing statistics, a results table, a server."""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
import tempfile
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support import ServerProcess

if TYPE_CHECKING:
    from jupyter_jobs.domain.job import Job


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in header]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}\n")
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if n == 0:
            print("| " + " | ".join("-" * w for w in widths) + " |")
    sys.stdout.flush()


def plain_job(i: int, count: int, now: datetime) -> Job:
    """Job `i` of a history of `count`: alike but for the seed; 6 in 10 succeeded, 3 failed, 1 cancelled."""
    from jupyter_jobs.domain.job import Job
    from jupyter_jobs.domain.status import JobStatus
    from jupyter_jobs.domain.spec import JobSpec

    statuses = [JobStatus.SUCCEEDED] * 6 + [JobStatus.FAILED] * 3 + [JobStatus.CANCELLED]
    spec = JobSpec(command=["python", "train.py", f"--seed={i}"], name=f"run-{i}", tags=["bench"])
    return Job(id=f"{i:012x}", spec=spec, backend="local", project=f"project-{i % 20}",
               status=statuses[i % len(statuses)], created_at=now - timedelta(seconds=count - i))


async def fill_history(db: Path, count: int, make: Callable[[int, int, datetime], Job] = plain_job) -> None:
    """Put `count` finished jobs, `make(i, count, now)`, straight into the store at `db` (the
    server is not running yet): a history of 100,000 takes seconds, not a POST each."""
    from jupyter_jobs.domain.job import utcnow
    from jupyter_jobs.storage.store import Store

    store = Store(db)
    now = utcnow()
    for start in range(0, count, 5000):
        jobs = [make(i, count, now) for i in range(start, min(count, start + 5000))]
        await store.insert_many([(job, db.parent / "jobs" / job.id) for job in jobs])
    store.close()


def rest_first_line(srv: ServerProcess, spec: dict, expect: str = "1\n") -> float:
    """Seconds from POSTing `spec` to its log's first line (`expect`) arriving on a follower."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    headers = {"Authorization": f"token {srv.token}", "Content-Type": "application/json"}
    start = time.perf_counter()
    conn.request("POST", "/jupyter-jobs/jobs?follow=true", json.dumps(spec), headers)  # submit and
    resp = conn.getresponse()  # follow in one request, as `jupyter jobs run` and %%job do
    assert resp.status == 201, resp.read()
    assert "job" in json.loads(resp.readline())
    text = ""
    while "\n" not in text:  # unbuffered print() may write "1" and "\n" apart
        text += json.loads(resp.readline())["text"]
    elapsed = time.perf_counter() - start
    assert text == expect, text
    resp.read()
    conn.close()
    return elapsed


def ratio_table(title: str, baseline: tuple[str, Sequence[float]], ours: tuple[str, Sequence[float]],
                limit: float) -> None:
    """Medians of two latency samples, and whether ours stays within `limit` x the baseline's."""
    (base_name, base), (our_name, mine) = baseline, ours
    b, r = median_ms(base), median_ms(mine)
    table(title, ["path", "median ms", "p90 ms", "ratio", "target", "meets target"],
          [[base_name, b, ms(percentile(base, 90)), "1.0x", "", ""],
           [our_name, r, ms(percentile(mine, 90)), f"{r / b:.2f}x", f"<= {limit:g}x",
            "yes" if r <= limit * b else "NO"]])


def require_part(problem: Optional[str], script: str) -> None:
    """Stop a benchmark whose part (browser, Slurm) is missing, saying what to run."""
    if problem:
        sys.exit(f"{script}: {problem}")


def settle_disk() -> None:
    """Flush, then wait until the disks have been idle for a second (at most 30 s): deleted files
    are discarded (TRIM) and written back after `sync` returns on some machines (the test machine
    mounts its root with `discard`), and whichever step runs next would pay for the last one's."""
    subprocess.run(["sync"], check=True)

    def io() -> list[str]:
        with open("/proc/diskstats") as fh:
            return [" ".join(line.split()[3:]) for line in fh]  # counters; in-flight included

    deadline, last, since = time.monotonic() + 30, io(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < 1.0:
        time.sleep(0.1)
        now = io()
        if now != last:
            last, since = now, time.monotonic()


def warm_memory(size: int = 2 << 30) -> None:
    """Touch `size` bytes of fresh memory in a child process, then free them. On a virtual
    machine whose host takes back idle guest memory, the next step to fill the page cache
    otherwise pays the host's faults: measured, the same 1 GiB snapshot took 3.7-4.1 CPU
    seconds in such rounds and 1.1 in others (tar alike: 1.7-2.1 vs 0.7)."""
    subprocess.run([sys.executable, "-c", f"b = b'x' * {size}"], check=True)


def ms(seconds: float) -> float:
    return seconds * 1000


def median_ms(values: Sequence[float]) -> float:
    return ms(statistics.median(values))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes: checks the benchmark runs, measures little")
    return p


@contextmanager
def lab_server(prepare: Optional[Callable[[Path], None]] = None) -> Iterator[ServerProcess]:
    """A server for the browser benchmarks: JupyterLab's news and update checks off. `prepare`
    gets the data folder (e.g. to fill the store) before the server starts."""
    with tempfile.TemporaryDirectory(prefix="jobs-bench-ui-") as tmp:
        settings = Path(tmp) / "settings"
        notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notification.parent.mkdir(parents=True)
        notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        root, data = Path(tmp) / "root", Path(tmp) / "data"
        root.mkdir()
        data.mkdir()
        if prepare:
            prepare(data)
        srv = ServerProcess(root, data, env={"JUPYTERLAB_SETTINGS_DIR": str(settings),
                                             "JUPYTERLAB_WORKSPACES_DIR": str(Path(tmp) / "workspaces")})
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


@contextmanager
def lab_page(srv: ServerProcess) -> Iterator:
    """Chromium on /lab with the jobs sidebar shown (a Playwright page)."""
    from playwright.sync_api import sync_playwright

    from support import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.set_default_timeout(120_000)
            page.goto(f"{srv.url}/lab?token={srv.token}")
            page.wait_for_selector("#jupyter-jobs-panel", state="attached")
            if not page.is_visible("#jupyter-jobs-panel"):
                page.click("li[data-id='jupyter-jobs-panel']")
            page.wait_for_selector("#jupyter-jobs-panel .jp-JobsHeader", state="visible")
            yield page
        finally:
            browser.close()


@contextmanager
def server(extra: Sequence[str] = ()) -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="jobs-bench-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        srv = ServerProcess(root, Path(tmp) / "data", extra=list(extra)).start()
        try:
            yield srv
        finally:
            srv.stop()
