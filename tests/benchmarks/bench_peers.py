"""Against the peers, each installed from the package index into its own environment by this
benchmark (uv, under .cache/peers, kept for the next run), measured in the same run, interleaved:
- jupyter-scheduler: the same 10-cell notebook with a parameter, as a notebook job on each,
  from POST to the end as its REST API reports it. Target: ours <= 0.5x at the median.
- Ray Jobs (a single-node `ray start --head`): submit to the first log line of
  `python -c 'print(1)'`, by tailing (`tail_job_logs`) and by polling (`get_job_logs` every
  10 ms), against ours (POST, then the log followed). No target: the lead is reported.
`--quick` runs the jupyter-scheduler pair only (Ray's head alone takes ~10 s and 1 GB to start)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

from bench_notebook import as_job, make_notebook
from common import median_ms, parser, rest_first_line, server, table
from support import ServerProcess, free_port

PEERS = Path(__file__).resolve().parents[2] / ".cache" / "peers"
DONE = ("COMPLETED", "FAILED")  # a new job reads STOPPED until its process starts: not an end


def peer_python(name: str, *packages: str) -> str:
    """The Python of a virtual environment holding `packages` from the index, made once."""
    env = PEERS / name
    python = env / "bin" / "python"
    if not (env / "ready").exists():
        shutil.rmtree(env, ignore_errors=True)
        uv = [str(Path(sys.executable).parent / "uv")] if (Path(sys.executable).parent / "uv").exists() else \
            [sys.executable, "-m", "uv"]
        subprocess.run([*uv, "venv", "-q", "-p", sys.executable, str(env)], check=True)
        subprocess.run([*uv, "pip", "install", "-q", "-p", str(python), *packages], check=True)
        (env / "ready").touch()
    return str(python)


def scheduler_job(srv: ServerProcess) -> float:
    """jupyter-scheduler: POST /scheduler/jobs until the job reads COMPLETED."""
    start = time.perf_counter()
    job = srv.request("POST", "/scheduler/jobs", {"input_uri": "w/bench.ipynb", "runtime_environment_name": "python",
                                                  "name": "bench", "output_formats": ["ipynb"],
                                                  "parameters": {"n": "20"}})
    while (state := srv.request("GET", f"/scheduler/jobs/{job['job_id']}"))["status"] not in DONE:
        time.sleep(0.02)
    assert state["status"] == "COMPLETED", state
    return time.perf_counter() - start


def versus_scheduler(runs: int) -> None:
    python = peer_python("jupyter-scheduler", "jupyter_scheduler", "ipykernel")
    version = subprocess.run([python, "-c", "import jupyter_scheduler as s; print(s.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with server() as ours, tempfile.TemporaryDirectory(prefix="jobs-peer-") as tmp:
        (ours.root / "w").mkdir()
        make_notebook(ours.root / "w" / "bench.ipynb", 10)
        root = Path(tmp) / "root"
        shutil.copytree(ours.root, root)
        peer = ServerProcess(root, Path(tmp) / "data", python=python,
                             env={"JUPYTER_DATA_DIR": f"{tmp}/jupyter-data"}).start(ready="/api/status")
        try:
            as_job(ours, 10), scheduler_job(peer)  # warm both
            mine, theirs = [], []
            for _ in range(runs):
                theirs.append(scheduler_job(peer))
                mine.append(as_job(ours, 10))
        finally:
            peer.stop()
    ratio = statistics.median(mine) / statistics.median(theirs)
    table(f"A 10-cell notebook as a job, POST to its end, s ({runs} runs each, interleaved)",
          ["path", "min s", "median s", "max s", "vs jupyter-scheduler", "target", "met"],
          [[f"jupyter-scheduler {version} (baseline)", *spread(theirs), "1.00x", "", ""],
           ["jupyter_jobs (local backend)", *spread(mine), f"{ratio:.2f}x", "<= 0.5x",
            "yes" if ratio <= 0.5 else "NO"]])


RAY_FIRST_LINE = """
import asyncio, sys, time
from ray.job_submission import JobSubmissionClient
client = JobSubmissionClient(sys.argv[1])
async def tail(job, start):
    async for chunk in client.tail_job_logs(job):
        if "1" in chunk.split():
            return time.perf_counter() - start
def poll(job, start):
    while "1" not in client.get_job_logs(job).split():
        time.sleep(0.01)
    return time.perf_counter() - start
start = time.perf_counter()
job = client.submit_job(entrypoint="python -c 'print(1)'")
print(asyncio.run(tail(job, start)) if sys.argv[2] == "tail" else poll(job, start))
"""


@contextmanager
def ray_head(python: str) -> Iterator[str]:
    """A single-node Ray cluster with its dashboard (the Jobs API) on a free port; stopped after."""
    ray = str(Path(python).parent / "ray")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ray-") as tmp:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        subprocess.run([ray, "start", "--head", f"--dashboard-port={port}", "--dashboard-host=127.0.0.1",
                        "--include-dashboard=true", f"--temp-dir={tmp}", "--num-cpus=2", "--disable-usage-stats"],
                       check=True, capture_output=True, env=env)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            subprocess.run([ray, "stop", "--force"], capture_output=True, env=env)


def versus_ray(runs: int) -> None:
    python = peer_python("ray", "ray[default]")
    version = subprocess.run([python, "-c", "import ray; print(ray.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ray_ms = {"tail": [], "poll": []}
    mine: list[float] = []
    with server() as ours, ray_head(python) as address:
        def ray(how: str) -> float:
            out = subprocess.run([python, "-c", RAY_FIRST_LINE, address, how], capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 0, out.stderr[-2000:]
            return float(out.stdout.split()[-1])

        ray("tail"), rest_first_line(ours, {"command": ["python", "-c", "print(1)"]})  # warm both
        for _ in range(runs):
            for how in ray_ms:
                ray_ms[how].append(ray(how))
            mine.append(rest_first_line(ours, {"command": ["python", "-c", "print(1)"]}))
    ours_ms = median_ms(mine)
    table(f"Submit to first log line, python -c 'print(1)', ms ({runs} runs each, interleaved)",
          ["path", "min ms", "median ms", "max ms", "vs jupyter_jobs"],
          [[f"Ray {version} Jobs, tail_job_logs", *spread_ms(ray_ms["tail"]),
            f"{median_ms(ray_ms['tail']) / ours_ms:.1f}x"],
           [f"Ray {version} Jobs, get_job_logs every 10 ms", *spread_ms(ray_ms["poll"]),
            f"{median_ms(ray_ms['poll']) / ours_ms:.1f}x"],
           ["jupyter_jobs (local backend): POST, then follow", *spread_ms(mine), "1.0x"]])


def spread(values: list[float]) -> list[str]:
    return [f"{min(values):.2f}", f"{statistics.median(values):.2f}", f"{max(values):.2f}"]


def spread_ms(values: list[float]) -> list[str]:
    return [f"{v * 1000:.1f}" for v in (min(values), statistics.median(values), max(values))]


def main() -> None:
    args = parser(__doc__).parse_args()
    versus_scheduler(2 if args.quick else 7)
    if not args.quick:
        versus_ray(7)


if __name__ == "__main__":
    main()
