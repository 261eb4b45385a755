"""The benchmarks keep working: each runs at small sizes and prints its table."""

import subprocess
import sys
from pathlib import Path

import pytest

from support import browser_problem, docker_problem, require, slurm_problem

BENCH = Path(__file__).parent / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_benchmark_runs(script):
    if script == "bench_docker.py":
        require("docker", docker_problem())
    if script in ("bench_panel_log.py", "bench_jobs_page.py", "bench_metrics.py"):
        require("browser", browser_problem())
    if script == "bench_slurm.py":
        require("slurm", slurm_problem())
    out = subprocess.run([sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True,
                         timeout=240, cwd=BENCH)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "## " in out.stdout and "| ---" in out.stdout
