"""Datasets through a running server's REST API, baselines in the same run:
1. a version of a 1 GiB / 10,000-file folder (POST .../versions) against `tar -cf` of the same
   folder on the same disk (target: >= 0.7x tar's throughput);
2. the next version with one file changed, against the first (target: <= 5 % of its time);
3. a job that reads a 1 GiB dataset, from POST to its first log line, against the same job
   without it (target: within +50 ms), on local and, where an engine answers, docker.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_snapshot import make_tree, settle
from common import parser, rest_first_line, server, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support import docker_problem


def post_version(srv, name: str, folder: str) -> float:
    request = urllib.request.Request(f"{srv.url}/jupyter-jobs/datasets/{name}/versions", method="POST",
                                     data=json.dumps({"folder": folder}).encode(),
                                     headers={"Authorization": f"token {srv.token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as reply:
        assert reply.status == 201, reply.read()
    return time.perf_counter() - start


def tar(src: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["tar", "-cf", str(out), "-C", str(src), "."], check=True)
    elapsed = time.perf_counter() - start
    out.unlink()
    return elapsed


def main() -> None:
    args = parser(__doc__).parse_args()
    files, total, runs = (1000, 64 << 20, 2) if args.quick else (10_000, 1 << 30, 3)
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as tmp, server(["--JobsApp.metrics_interval=0"]) as srv:
        data = srv.root / "data"
        (srv.root / "w").mkdir()
        taken: dict[str, list[float]] = {"tar -cf (baseline)": [], "first version": [],
                                         "next version, one file changed": []}
        for i in range(runs):  # fresh random files each run: the content store has none of them yet
            shutil.rmtree(data, ignore_errors=True)
            make_tree(data, files, total)
            settle(data)
            taken["tar -cf (baseline)"].append(tar(data, Path(tmp) / "out.tar"))
            settle(data)
            taken["first version"].append(post_version(srv, f"big{i}", "data"))
            (data / "d00" / "f00000.bin").write_bytes(f"changed {i}".encode())
            taken["next version, one file changed"].append(post_version(srv, f"big{i}", "data"))
        base, first = statistics.median(taken["tar -cf (baseline)"]), statistics.median(taken["first version"])
        table(f"A dataset version of {total >> 20} MiB in {files} files, s ({runs} runs)",
              ["step", "min", "median", "max", "MB/s", "target"],
              [[name, min(v), statistics.median(v), max(v), f"{total / 1e6 / statistics.median(v):.0f}",
                {"first version": f">= 0.7x tar: {'yes' if base / first >= 0.7 else 'NO'} ({base / first:.2f}x)",
                 "next version, one file changed": f"<= 5% of first: "
                 f"{'yes' if statistics.median(v) <= 0.05 * first else 'NO'} "
                 f"({100 * statistics.median(v) / first:.1f}%)"}.get(name, "")]
               for name, v in taken.items()])
        starts(srv, runs * 3, f"{total >> 20} MiB")


def starts(srv, runs: int, size: str) -> None:
    """POST to first log line, with and without the big dataset (big0), interleaved."""
    specs = {"local": {"command": "echo 1", "workspace": "w"}}
    if docker_problem() is None:
        specs["docker"] = {"command": "echo 1", "workspace": "w", "backend": "docker",
                           "image": "jupyter-jobs/busybox:test"}
    rows = []
    for backend, spec in specs.items():
        rest_first_line(srv, {**spec, "datasets": [{"name": "big0"}]})  # written out once, before timing
        plain, reading = [], []
        for _ in range(runs):
            plain.append(rest_first_line(srv, spec))
            reading.append(rest_first_line(srv, {**spec, "datasets": [{"name": "big0"}]}))
        added = (statistics.median(reading) - statistics.median(plain)) * 1000
        rows += [[f"{backend}: no dataset (baseline)", min(plain), statistics.median(plain), max(plain), ""],
                 [f"{backend}: reading a {size} dataset", min(reading), statistics.median(reading), max(reading),
                  f"+{added:.0f} ms: {'yes' if added <= 50 else 'NO'} (<= +50 ms)"]]
    table(f"A job's start to its first log line, s ({runs} runs each, interleaved)",
          ["job", "min", "median", "max", "target"], rows)


if __name__ == "__main__":
    main()
