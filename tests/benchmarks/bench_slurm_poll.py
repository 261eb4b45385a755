"""Cluster-friendly polling: how often the server calls slurmctld while N Slurm jobs run, read
from `sdiag` (its RPC counts by user), and the server's CPU, for 20 and then 200 running jobs
(`sleep` on the test cluster's `many` partition, oversubscribed), with the default settings (one squeue a
second, one job's sstat per 2-second telemetry round). Baseline in the same run: the
controller's RPC rate over the same window with the server stopped (what else calls it).
Target: <= 5 RPCs per second from the service, whatever the job count. (The test cluster
samples job accounting on demand only, JobAcctGatherFrequency=task=0: sampling every second,
each job's two slurmstepds scanned /proc and 200 jobs put the load above 300.)"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from common import parser, require_part, table
from support import SLURM_CONF, ServerProcess, slurm_problem

ENV = {**os.environ, "SLURM_CONF": SLURM_CONF}


def rpc_count() -> int:
    """All RPCs slurmctld served (by user), from sdiag; sdiag's own call is counted too."""
    out = subprocess.run(["sdiag"], env=ENV, capture_output=True, text=True, check=True).stdout
    block = out.split("Remote Procedure Call statistics by user", 1)[1]
    return sum(int(n) for n in re.findall(r"count:\s*(\d+)", block.split("Pending RPC", 1)[0]))


def rate(seconds: float, proc: psutil.Process | None = None) -> tuple[float, float]:
    """RPCs per second over `seconds` (less sdiag's own two), and the server's CPU share."""
    cpu0 = sum(proc.cpu_times()[:2]) if proc else 0.0
    first = rpc_count()
    time.sleep(seconds)
    last = rpc_count()
    cpu = (sum(proc.cpu_times()[:2]) - cpu0) / seconds if proc else 0.0
    return max(0, last - first - 1) / seconds, cpu


def cancel_gently() -> None:
    """Twenty jobs at a time: two small nodes killing 200 jobs at once miss Slurm's KillWait
    and get drained."""
    ids = subprocess.run(["squeue", "-h", "-p", "many", "-o", "%i"], env=ENV, capture_output=True,
                         text=True).stdout.split()
    for start in range(0, len(ids), 20):
        subprocess.run(["scancel", *ids[start:start + 20]], env=ENV, capture_output=True)
        time.sleep(2)


def running(srv: ServerProcess, n: int) -> None:
    deadline = time.monotonic() + 600
    while len(srv.request("GET", "/jupyter-jobs/jobs?status=running&limit=500")["jobs"]) < n:
        assert time.monotonic() < deadline, "the Slurm jobs did not all start"
        time.sleep(1)


def main() -> None:
    args = parser(__doc__).parse_args()
    require_part(slurm_problem(), "bench_slurm_poll")
    most = int(os.environ.get("BENCH_SLURM_JOBS", "200"))  # how many the cluster at hand can hold
    sizes, window, rounds = ((5, 10), 5.0, 1) if args.quick else ((20, most), 10.0, 3)
    cancel_gently()
    rows = []
    bases = [rate(window)[0] for _ in range(rounds)]
    base = statistics.median(bases)
    rows.append(["no server (baseline)", 0, spread(bases), ""])
    with tempfile.TemporaryDirectory(prefix="jobs-bench-slurm-poll-") as tmp:
        root = Path(tmp) / "root"
        (root / "w").mkdir(parents=True)
        srv = ServerProcess(root, Path(tmp) / "data", extra=[
            f"--SlurmBackend.slurm_conf={SLURM_CONF}",
            f"--SlurmBackend.shared_dir={tmp}/shared", "--JobsApp.metrics_interval=2"]).start()
        try:
            spec = {"backend": "slurm", "workspace": "w", "command": "sleep 3600",
                    "slurm": {"partition": "many", "sbatch_args": ["--mem=1M", "--oversubscribe"]}}
            submitted: list[str] = []
            for size in sizes:
                while len(submitted) < size:  # in steps of 20: the test cluster has two small nodes
                    for _ in range(min(20, size - len(submitted))):
                        submitted.append(srv.request("POST", "/jupyter-jobs/jobs", spec)["id"])
                    running(srv, len(submitted))
                time.sleep(3)  # the launches' own calls (sbatch, release) are over
                measured = [rate(window, psutil.Process(srv.proc.pid)) for _ in range(rounds)]
                rows.append([f"server watching {size} running jobs", size,
                             spread([max(0.0, r - base) for r, _ in measured]),
                             spread([c * 100 for _, c in measured], "{:.1f} %")])
        finally:
            srv.stop()
            cancel_gently()
    table(f"slurmctld RPCs per second from the service ({rounds} windows of {window:g} s each; target <= 5, "
          "whatever the count)",
          ["what", "running jobs", "RPC/s less the baseline (min / median / max)", "server CPU (min / median / max)"],
          rows)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


if __name__ == "__main__":
    main()
