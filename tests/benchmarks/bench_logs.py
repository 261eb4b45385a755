"""Log follow over REST of 1,000,000 lines: complete, >= 300,000 lines/s, server RSS growth < 50 MB.

Two readers of the same job: one following while the job writes (live), one reading the
finished log from offset 0. Baseline: the same bytes read from the job's raw stdout file.
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

from common import parser, table

WRITER = "import sys\nw = sys.stdout.write\nfor i in range({n}):\n    w(f'line {{i}}\\n')\n"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def follow(srv, job_id: str, n: int) -> tuple[float, int, bool]:
    """Read the whole log as NDJSON; returns (seconds, lines, every line present in order).
    The clock covers what any REST follower does (read and parse each chunk); checking every
    line's number comes after it, as the `docker run` baseline only counts newlines."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    start = time.perf_counter()
    conn.request("GET", f"/jupyter-jobs/jobs/{job_id}/logs?follow=true",
                 headers={"Authorization": f"token {srv.token}"})
    resp = conn.getresponse()
    texts, end = [], None
    for raw in resp:
        item = json.loads(raw)
        if "text" in item:
            texts.append(item["text"])
        else:
            end = item
    elapsed = time.perf_counter() - start
    conn.close()
    assert end and end["status"] == "succeeded", end
    parts = "".join(texts).split("\n")
    pending = parts.pop()
    ordered = all(part == f"line {i}" for i, part in enumerate(parts))
    return elapsed, len(parts), ordered and len(parts) == n and pending == ""


def main() -> None:
    args = parser(__doc__).parse_args()
    n = 20_000 if args.quick else 1_000_000
    from common import server

    with server() as srv:
        pid = srv.proc.pid
        srv.request("GET", "/jupyter-jobs/jobs")  # warm
        rss_before = rss_mb(pid)
        job = srv.request("POST", "/jupyter-jobs/jobs", {"command": ["python", "-c", WRITER.format(n=n)]})
        live_s, live_lines, live_ok = follow(srv, job["id"], n)
        done_s, done_lines, done_ok = follow(srv, job["id"], n)
        rss_after = rss_mb(pid)
        raw_file = srv.data / "jobs" / job["id"] / "log"  # the log as stored, read whole
        start = time.perf_counter()
        raw_lines = raw_file.read_bytes().count(b"\n")
        raw_s = time.perf_counter() - start
    growth = rss_after - rss_before
    rows = [
        ["raw log file read (baseline)", raw_lines, raw_s, raw_lines / raw_s, "", ""],
        ["REST follow while the job writes", live_lines, live_s, live_lines / live_s,
         "yes" if live_ok else "NO", ""],
        ["REST follow of the finished log", done_lines, done_s, done_lines / done_s,
         "yes" if done_ok else "NO", "yes" if done_lines / done_s >= 300_000 else "NO"],
    ]
    table(f"Following a {n:,}-line log", ["reader", "lines", "seconds", "lines/s", "complete, in order",
                                          ">= 300k lines/s"], rows)
    table("Server memory", ["RSS before MB", "RSS after MB", "growth MB", "< 50 MB"],
          [[rss_before, rss_after, growth, "yes" if growth < 50 else "NO"]])


if __name__ == "__main__":
    main()
