"""The docker backend: submit-to-first-log-line vs `docker run --rm IMAGE python3 -c 'print(1)'`
as a whole process (target <= 1.2x, median) and vs the engine's own floor, create + attach +
start through the SDK on a client already connected, as the server's is (target <= 1.1x), and 1,000,000 lines from a container to a REST
log follower (complete, >= 500,000 lines/s). Needs `bash scripts/docker-engine`."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time

from bench_logs import follow
from common import parser, ratio_table, rest_first_line, server, settle_disk, table, warm_memory

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


def sdk_floor(client) -> float:
    """Create, attach, start through the Docker SDK, to the first line; the container removed after."""
    start = time.perf_counter()
    container = client.containers.create(IMAGE, ["python3", "-c", "print(1)"])
    try:
        stream = container.attach(stdout=True, stderr=True, stream=True, logs=False)
        container.start()
        got = b""
        for chunk in stream:
            got += chunk
            if b"\n" in got:
                break
        elapsed = time.perf_counter() - start
        assert got == b"1\n", got
        return elapsed
    finally:
        container.remove(force=True)


def rest(srv) -> float:
    return rest_first_line(srv, {"backend": "docker", "image": IMAGE, "command": ["python3", "-c", "print(1)"]})


def main() -> None:
    args = parser(__doc__).parse_args()
    runs, lines, rounds = (3, 20_000, 1) if args.quick else (25, 1_000_000, 5)
    import docker

    client = docker.from_env(timeout=30)
    with server() as srv:
        for _ in range(2):
            docker_run(), sdk_floor(client), rest(srv)
        base, floor, ours = [], [], []
        for _ in range(runs):
            base.append(docker_run())
            floor.append(sdk_floor(client))
            ours.append(rest(srv))
        live, done, raw = [], [], []
        for _ in range(rounds):  # interleaved: the baseline and the follower see the same machine
            settle_disk()  # each starts with the last one's 80 MB of container log written back and trimmed,
            warm_memory()  # and with memory the guest holds (see common.warm_memory)
            job = srv.request("POST", "/jupyter-jobs/jobs", {"backend": "docker", "image": IMAGE,
                                                             "command": ["python3", "-c", WRITER.format(n=lines)]})
            live.append(follow(srv, job["id"], lines))
            done.append(follow(srv, job["id"], lines))
            settle_disk()
            warm_memory()
            raw.append(docker_run_lines(lines))
    ratio_table(f"Docker: submit to first log line, python3 -c 'print(1)', {runs} runs each",
                ("docker run --rm (baseline, whole process)", base), ("REST submit + follow (docker backend)", ours),
                1.2)
    ratio_table(f"Docker: submit to first log line against the engine's floor, {runs} runs each",
                ("SDK create + attach + start (baseline, connected client)", floor),
                ("REST submit + follow (docker backend)", ours), 1.1)
    def rates(results: list[tuple[float, int, bool]]) -> str:
        values = sorted(n / seconds for seconds, n, _ in results)
        return " / ".join(f"{v:,.0f}" for v in (values[0], statistics.median(values), values[-1]))

    ratios = sorted((n / s) / (lines / r) for (s, n, _), r in zip(live, raw))
    table(f"Docker: {lines:,} lines from a container to a REST follower ({rounds} rounds)",
          ["reader", "lines/s (min / median / max)", "complete, in order", ">= 500k lines/s (median)",
           "vs docker run (per-round ratio, min / median / max)"],
          [["docker run --rm, output counted (baseline)", " / ".join(f"{lines / r:,.0f}" for r in
                                                                   (max(raw), statistics.median(raw), min(raw))),
            "", "", ""],
           ["REST follow while the container writes", rates(live), "yes" if all(ok for *_, ok in live) else "NO",
            "yes" if statistics.median(n / s for s, n, _ in live) >= 500_000 else "NO",
            " / ".join(f"{v:.2f}x" for v in (ratios[0], statistics.median(ratios), ratios[-1]))],
           ["REST follow of the finished log", rates(done), "yes" if all(ok for *_, ok in done) else "NO",
            "yes" if statistics.median(n / s for s, n, _ in done) >= 500_000 else "NO", ""]])


if __name__ == "__main__":
    main()
