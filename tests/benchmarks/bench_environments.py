"""Environments. A job of `python3 -c "import tinypkg"` with its requirements already built
(a cached environment) against the same job with no requirements (`python3 -c "pass"`), POST
until succeeded, interleaved in the same run: local (target <= +50 ms) and docker (target
<= +10 %). Then the first build of an environment (uv, from a folder of wheels) against a
plain `pip install` of the same requirements into a fresh venv."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import parser, server, table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_environments import make_wheel
from support import docker_problem


def timed(srv, spec: dict) -> float:
    start = time.perf_counter()
    job = srv.request("POST", "/jupyter-jobs/jobs", spec)
    while (state := srv.request("GET", f"/jupyter-jobs/jobs/{job['id']}"))["status"] not in (
            "succeeded", "failed", "cancelled"):
        time.sleep(0.01)
    assert state["status"] == "succeeded", state["message"]
    return time.perf_counter() - start


def stats(values: list[float]) -> list[str]:
    return [f"{min(values) * 1000:.0f}", f"{statistics.median(values) * 1000:.0f}", f"{max(values) * 1000:.0f}"]


def main() -> None:
    args = parser(__doc__).parse_args()
    runs = 3 if args.quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        wheels = Path(tmp) / "wheels"
        for i in range(20):  # a few packages, as a small requirements file has
            make_wheel(wheels, f"pkg{i}", "1.0", f"VALUE = {i}\n")
        requirements = [f"pkg{i}==1.0" for i in range(20)]
        rows = []
        with server(["--JobsApp.pip_index_url=none", f"--JobsApp.pip_find_links={wheels}",
                     "--JobsApp.metrics_interval=0"]) as srv:
            (srv.root / "w").mkdir()
            kinds = [("local", {})]
            if not docker_problem():
                kinds.append(("docker", {"backend": "docker", "image": "jupyter-jobs/python:test"}))
            for kind, extra in kinds:
                with_env = {"command": ["python3", "-c", "import pkg0, pkg19"], "workspace": "w",
                            "requirements": requirements, **extra}
                plain = {"command": ["python3", "-c", "pass"], "workspace": "w", **extra}
                first = timed(srv, with_env)  # builds it
                timed(srv, plain)
                envs, plains = [], []
                for _ in range(runs):
                    envs.append(timed(srv, with_env))
                    plains.append(timed(srv, plain))
                extra_ms = (statistics.median(envs) - statistics.median(plains)) * 1000
                share = statistics.median(envs) / statistics.median(plains) - 1
                target = "<= +50 ms" if kind == "local" else "<= +10 %"
                met = extra_ms <= 50 if kind == "local" else share <= 0.10
                rows += [[f"{kind}: no requirements (baseline)", *stats(plains), "", "", ""],
                         [f"{kind}: cached environment", *stats(envs), f"{extra_ms:+.0f} ms ({share:+.1%})", target,
                          "yes" if met else "NO"],
                         [f"{kind}: the first job, building it", f"{first * 1000:.0f}", "", "", "", "", ""]]
        with tempfile.TemporaryDirectory() as venv:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pip", "--python", f"{venv}/bin/python", "install", "-q",
                            "--no-index", "--find-links", str(wheels), *requirements], check=True)
            rows.append(["plain pip install of the same requirements into a new venv",
                         f"{(time.perf_counter() - start) * 1000:.0f}", "", "", "", "", ""])
        if len(kinds) > 1:  # the engine outlives the benchmark: its environment images go
            import docker

            client = docker.from_env()
            for image in client.images.list(filters={"label": "jupyter-jobs.environment"}):
                client.images.remove(image.id, force=True)
        table(f"A job with a cached environment of 20 packages vs none ({runs} runs each, interleaved; ms)",
              ["path", "min", "median", "max", "extra (medians)", "target", "met"], rows)


if __name__ == "__main__":
    main()
