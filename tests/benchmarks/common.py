"""Helpers shared by the benchmarks: timing statistics, a results table, a server."""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator, Sequence
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support import ServerProcess


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


def rest_first_line(srv: ServerProcess, spec: dict, expect: str = "1\n") -> float:
    """Seconds from POSTing `spec` to its log's first line (`expect`) arriving on a follower."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    headers = {"Authorization": f"token {srv.token}", "Content-Type": "application/json"}
    start = time.perf_counter()
    conn.request("POST", "/jupyter-jobs/jobs", json.dumps(spec), headers)
    resp = conn.getresponse()
    job = json.loads(resp.read())
    assert resp.status == 201, job
    conn.request("GET", f"/jupyter-jobs/jobs/{job['id']}/logs?follow=true", headers=headers)
    resp = conn.getresponse()
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


def ms(seconds: float) -> float:
    return seconds * 1000


def median_ms(values: Sequence[float]) -> float:
    return ms(statistics.median(values))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes: checks the benchmark runs, measures little")
    return p


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
