"""The workflow layer's cost. A run of 500 jobs of `true` in a chain of 10 stages x 50 (each
stage a 50-combination matrix needing the previous stage) against the same 500 jobs submitted
directly, stage by stage, by a client that waits for each stage before the next (what a user
would do without workflows), in the same run: the overhead per job (target <= 10 ms). Then a
1,000-combination matrix: checking and expanding it in the service (target < 1 s), and the
whole POST until the run is recorded."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common import parser, server, table

from jupyter_jobs.workflows.spec import plan


def chain(stages: int, width: int) -> dict:
    jobs = {}
    for s in range(stages):
        job = {"command": "true", "matrix": {"i": list(range(width))}}
        if s:
            job["needs"] = f"s{s - 1}"
        jobs[f"s{s}"] = job
    return {"name": "chain", "jobs": jobs}


def run_workflow(srv, spec: dict) -> float:
    start = time.perf_counter()
    run = srv.request("POST", "/jupyter-jobs/workflows", {"spec": spec, "workspace": "w"})
    while (state := srv.request("GET", f"/jupyter-jobs/workflows/{run['id']}"))["status"] not in (
            "succeeded", "failed", "cancelled"):
        time.sleep(0.1)  # a run's reply lists all its jobs: asked less often than one job's
    assert state["status"] == "succeeded", state["status"]
    return time.perf_counter() - start


def run_direct(srv, stages: int, width: int) -> float:
    start = time.perf_counter()
    for _ in range(stages):
        ids = [srv.request("POST", "/jupyter-jobs/jobs", {"command": "true", "workspace": "w"})["id"]
               for _ in range(width)]
        for job_id in ids:
            while srv.request("GET", f"/jupyter-jobs/jobs/{job_id}")["status"] not in ("succeeded", "failed"):
                time.sleep(0.02)
    return time.perf_counter() - start


def stats(values: list[float]) -> list[str]:
    return [f"{min(values):.3f}", f"{statistics.median(values):.3f}", f"{max(values):.3f}"]


def main() -> None:
    args = parser(__doc__).parse_args()
    stages, width, runs = (3, 5, 2) if args.quick else (10, 50, 3)
    count = stages * width
    with server(["--LocalBackend.max_running=50"]) as srv:
        (srv.root / "w").mkdir()
        run_workflow(srv, chain(2, 2))  # warm both paths
        run_direct(srv, 2, 2)
        flows, directs = [], []
        for _ in range(runs):  # interleaved, so both see the same machine
            flows.append(run_workflow(srv, chain(stages, width)))
            directs.append(run_direct(srv, stages, width))
        per_job = [(f - d) / count * 1000 for f, d in zip(flows, directs)]
        table(f"Workflow layer: {count} jobs of `true`, {stages} stages x {width} ({runs} runs)",
              ["path", "min s", "median s", "max s", "per job ms (median)", "target", "met"],
              [["the same jobs submitted directly, stage after stage (baseline)", *stats(directs),
                f"{statistics.median(directs) / count * 1000:.1f}", "", ""],
               ["one workflow run", *stats(flows), f"{statistics.median(flows) / count * 1000:.1f}", "", ""],
               ["overhead of the workflow layer per job", f"{min(per_job):.1f} ms",
                f"{statistics.median(per_job):.1f} ms", f"{max(per_job):.1f} ms", "", "<= 10 ms",
                "yes" if statistics.median(per_job) <= 10 else "NO"]])
        combos = 200 if args.quick else 1000
        spec = {"jobs": {"sweep": {"command": "echo ${{ matrix.a }} ${{ matrix.b }}",
                                   "matrix": {"a": list(range(combos // 20)), "b": list(range(20))}}}}
        expand, post = [], []
        for _ in range(runs):
            start = time.perf_counter()
            assert len(plan(spec).nodes) == combos
            expand.append(time.perf_counter() - start)
            start = time.perf_counter()
            run = srv.request("POST", "/jupyter-jobs/workflows", {"spec": spec, "workspace": "w"})
            post.append(time.perf_counter() - start)
            assert len(run["jobs"]) == combos
            srv.request("POST", f"/jupyter-jobs/workflows/{run['id']}/cancel", {})
        table(f"A {combos:,}-combination matrix ({runs} runs)", ["step", "min s", "median s", "max s", "target", "met"],
              [["check and expand (workflows.plan)", *stats(expand), "< 1 s",
                "yes" if max(expand) < 1 else "NO"],
               ["POST /workflows until the run is recorded (each job checked, one snapshot, all jobs stored)",
                *stats(post), "", ""]])


if __name__ == "__main__":
    main()
