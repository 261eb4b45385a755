"""The docker backend: submit-to-first-log-line vs `docker run --rm IMAGE python3 -c 'print(1)'`
as a whole process (target <= 1.2x, median), and 1,000,000 lines from a container to a REST
log follower (complete, >= 500,000 lines/s). Needs `bash scripts/docker-engine`."""

from __future__ import annotations

import shutil
import subprocess
import time

from bench_logs import follow
from common import parser, ratio_table, rest_first_line, server, table

IMAGE = "jupyter-jobs/python:test"
WRITER = "import sys\nw = sys.stdout.write\nfor i in range({n}):\n    w(f'line {{i}}\\n')\n"


def docker_run() -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([shutil.which("docker") or "docker", "run", "--rm", IMAGE, "python3", "-c", "print(1)"],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.wait()
    assert line == b"1\n", line
    return elapsed


def docker_run_lines(n: int) -> float:
    """The same writer under `docker run` (unbuffered, as jobs run), its output counted."""
    start = time.perf_counter()
    out = subprocess.run([shutil.which("docker") or "docker", "run", "--rm", "-e", "PYTHONUNBUFFERED=1", IMAGE,
                          "python3", "-c", WRITER.format(n=n)], capture_output=True, check=True).stdout
    elapsed = time.perf_counter() - start
    assert out.count(b"\n") == n
    return elapsed


def rest(srv) -> float:
    return rest_first_line(srv, {"backend": "docker", "image": IMAGE, "command": ["python3", "-c", "print(1)"]})


def main() -> None:
    args = parser(__doc__).parse_args()
    runs, lines = (3, 20_000) if args.quick else (25, 1_000_000)
    with server() as srv:
        for _ in range(2):
            docker_run(), rest(srv)
        base, ours = [], []
        for _ in range(runs):
            base.append(docker_run())
            ours.append(rest(srv))
        job = srv.request("POST", "/jupyter-jobs/jobs", {"backend": "docker", "image": IMAGE,
                                                         "command": ["python3", "-c", WRITER.format(n=lines)]})
        live_s, live_lines, live_ok = follow(srv, job["id"], lines)
        done_s, done_lines, done_ok = follow(srv, job["id"], lines)
        raw_s = docker_run_lines(lines)
    ratio_table(f"Docker: submit to first log line, python3 -c 'print(1)', {runs} runs each",
                ("docker run --rm (baseline, whole process)", base), ("REST submit + follow (docker backend)", ours),
                1.2)
    table(f"Docker: {lines:,} lines from a container to a REST follower",
          ["reader", "lines", "seconds", "lines/s", "complete, in order", ">= 500k lines/s"],
          [["docker run --rm, output counted (baseline)", lines, raw_s, lines / raw_s, "", ""],
           ["REST follow while the container writes", live_lines, live_s, live_lines / live_s,
            "yes" if live_ok else "NO", "yes" if live_lines / live_s >= 500_000 else "NO"],
           ["REST follow of the finished log", done_lines, done_s, done_lines / done_s, "yes" if done_ok else "NO",
            "yes" if done_lines / done_s >= 500_000 else "NO"]])


if __name__ == "__main__":
    main()
